"""What file names say: words, tempo, key and loop/one-shot."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clapdesk.core.analysis.names import (
    KEY_NAMES,
    bpm_from_name,
    format_key_short,
    key_from_name,
    key_pitch_class,
    kind_from_name,
    name_tokens,
)


@pytest.mark.parametrize(
    ("name", "tokens"),
    [
        ("808_Kick_Hard_03.wav", ["808", "kick", "hard"]),
        ("DeepKick", ["deep", "kick"]),
        ("808Kick", ["808", "kick"]),
        ("BD_Tight_v2_take3.wav", ["kick", "tight"]),
        ("SNR-Crack 01", ["snare", "crack"]),
        ("Hi-Hat Closed", ["hihat", "closed"]),
        ("OHH_Long", ["open", "hihat", "long"]),
        ("Vox_Chop_Final_Copy.wav", ["vocal", "chop"]),
        ("Perc Loop 120bpm 24bit", ["percussion", "loop"]),
        ("GTR_Strum_Am", ["guitar", "strum"]),
        ("Pno Chords", ["piano", "chord"]),
        ("BS_Reese", ["bass", "reese"]),
        ("SFX_Riser_Long", ["fx", "riser", "long"]),
        ("1shot_Stab", ["one-shot", "stab"]),
        ("one shot perc", ["one-shot", "percussion"]),
        ("DrumLoop_90_Am.wav", ["drum", "loop"]),
        ("Lo-Fi Keys", ["lofi", "keys"]),
        ("TR909_Clap", ["tr", "909", "clap"]),
        ("Kick_A", ["kick"]),
        ("A_min_pad", ["pad"]),
        ("Snare snare SNARES", ["snare"]),
        ("", []),
    ],
)
def test_name_tokens(name: str, tokens: list[str]) -> None:
    assert name_tokens(name) == tokens


@pytest.mark.parametrize(
    ("name", "bpm"),
    [
        ("Loop_90bpm.wav", 90.0),
        ("Loop 90 BPM", 90.0),
        ("bpm90_thing", 90.0),
        ("Groove_90_bpm", 90.0),
        ("Synth 128-bpm", 128.0),
        ("Break BPM 174", 174.0),
        ("Loop 120", 120.0),
        ("DrumLoop_90_Am.wav", 90.0),
        ("Pack_Top_Loop_03_124_Fm.wav", 124.0),
        ("Loops/120 BPM/foo_03.wav", 120.0),
        ("Loop_97.5bpm", 97.5),
        # never a tempo:
        ("Kick_01", None),
        ("Snare 120", None),  # no loop word: a sample number
        ("Loop_07", None),  # leading zero: a loop number
        ("Loop 12", None),
        ("Loop_2019", None),  # a year
        ("808 Loop", None),
        ("Loop 909", None),
        ("Loop 10bpm", None),  # out of range
        ("Loop 999bpm", None),
        ("Kick_Cmin_03", None),
        ("", None),
    ],
)
def test_bpm_from_name(name: str, bpm: float | None) -> None:
    assert bpm_from_name(name) == bpm


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("Pad_Cmin.wav", "C minor"),
        ("Vox_C#m_03", "C# minor"),
        ("Piano F# minor", "F# minor"),
        ("DrumLoop_90_Am.wav", "A minor"),
        ("Stab_Ebmaj", "D# major"),
        ("Pad_A_min", "A minor"),
        ("Bass_Dbm_120", "C# minor"),
        ("Chord_Gmaj7", "G major"),
        ("Pad C Major", "C major"),
        ("Bass F sharp minor", "F# minor"),
        ("Lead_Bb", "A# major"),
        ("Lead_F#", "F# major"),
        ("Bass_Key_C", "C major"),
        ("PadAm_Wide", "A minor"),
        ("Keys/C minor/pad_01.wav", "C minor"),
        # never a key:
        ("Bass_Deep", None),
        ("Ambient Pad", None),
        ("Kick -6dB", None),
        ("Kick_A", None),  # a variant letter
        ("Snare_B_02", None),
        ("am_radio", None),
        ("FM Bass", None),
        ("Loop C7", None),
        ("", None),
    ],
)
def test_key_from_name(name: str, key: str | None) -> None:
    assert key_from_name(name) == key


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("Drum Loop 01", "loop"),
        ("TopLoop_Shaker", "loop"),
        ("Kick One Shot", "one-shot"),
        ("Orchestral_Hit", "one-shot"),
        ("Loops/Deep/pad_01.wav", "loop"),
        ("One Shots/Snares/snare 3.wav", "one-shot"),
        ("Kick_01", None),
    ],
)
def test_kind_from_name(name: str, kind: str | None) -> None:
    assert kind_from_name(name) == kind


def test_key_names_are_canonical_and_round_trip() -> None:
    assert len(KEY_NAMES) == 24
    assert format_key_short("D# minor") == "D#m"
    assert format_key_short("C major") == "C"
    assert format_key_short(None) == ""
    for key in KEY_NAMES:
        assert key_from_name(f"Pad {format_key_short(key) if 'minor' in key else key}") == key
        pitch, minor = key_pitch_class(key)
        assert 0 <= pitch < 12 and minor == key.endswith("minor")
    with pytest.raises(ValueError):
        key_pitch_class("H major")


_WORDS = ["kick", "snare", "Clap", "Hat", "Perc", "Vox", "Bass", "808", "909", "Tom", "Crash",
          "Deep", "Dark", "Wide", "Tight", "Punchy", "Pad", "FX", "Riser", "Shaker", "Rim", "Stab"]


@settings(max_examples=300, deadline=None)
@given(
    words=st.lists(st.sampled_from(_WORDS), min_size=1, max_size=3),
    number=st.integers(min_value=0, max_value=999),
    style=st.sampled_from(["{w}_{n:02d}", "{w} {n}", "{w}-{n:03d}", "{w}{n}", "{n:02d} {w}"]),
    folder=st.sampled_from(["", "Drums/", "Pack 2019/Kicks/", "Samples/808s/"]),
)
def test_bpm_never_read_from_sample_numbers(words: list[str], number: int, style: str, folder: str) -> None:
    name = folder + style.format(w="_".join(words), n=number) + ".wav"
    assert bpm_from_name(name) is None


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_name_functions_never_raise(text: str) -> None:
    name_tokens(text)
    bpm_from_name(text)
    key_from_name(text)
    kind_from_name(text)
