"""Searching with a sound: steering by words, aspects, recordings and the CLI verbs.

The steering tests use a family with one property that can be turned (the same pluck low-passed
at rising cut-offs, steer_models.py) and a tiny CLAP fitted to captions "dark" to "bright".
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import _built_once, family_sound, index_folder, write_sound
from steer_models import CUTOFFS_HZ, brightness_pluck, build_brightness_clap

from clapdesk.cli import main
from clapdesk.core.ingest import recording
from clapdesk.core.library import Library
from clapdesk.core.search import aspects
from clapdesk.core.search.sound_query import (
    MAX_STEER_DEGREES,
    from_file,
    from_samples,
    read_words,
    search_sound,
    steer,
)

sys.path.insert(0, str(Path(__file__).parent / "gui"))
from asound import alsa_env, portaudio_loads, run_script, write_input_config  # noqa: E402

LEVELS = len(CUTOFFS_HZ)
PER_LEVEL = 4


@pytest.fixture(scope="session")
def bright_model(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny CLAP fitted from "dark" to "bright" (kept between runs like the others)."""
    digest = hashlib.sha256(Path(sys.modules[build_brightness_clap.__module__].__file__)
                            .read_bytes()).hexdigest()[:8]
    return _built_once(request, tmp_path_factory, f"bright-clap-{digest}", build_brightness_clap)


@pytest.fixture
def plucks(tmp_path: Path, bright_model: Path) -> tuple[Library, Path]:
    """An indexed library of PER_LEVEL plucks per cut-off level, and a level-2 pluck outside it."""
    for level in range(LEVELS):
        for seed in range(PER_LEVEL):
            write_sound(tmp_path / "samples" / f"pluck_l{level}_{seed}.wav",
                        brightness_pluck(level, 100 + seed))
    query = write_sound(tmp_path / "elsewhere" / "my_pluck.wav", brightness_pluck(2, 777))
    index_folder(tmp_path / "samples", bright_model)
    library = Library(model=str(bright_model))
    yield library, query
    library.close()


def _level(hit: object) -> int:
    return int(hit.file.name.split("_")[1][1])  # type: ignore[attr-defined]


def _mean_level(library: Library, sound: object, words: str, amount: float, k: int = 4) -> float:
    hits = search_sound(library, sound, k, words=words, amount=amount).hits  # type: ignore[arg-type]
    assert len(hits) == k
    return float(np.mean([_level(h) for h in hits]))


AMOUNTS = (0.0, 0.25, 0.5, 0.75, 1.0)


def test_words_move_the_results_their_way_monotonically_with_the_amount(
        plucks: tuple[Library, Path]) -> None:
    library, query = plucks
    files_before = library.catalog.count_files()
    sound = from_file(library, str(query))
    assert sound.file_id is None, "a file from outside the library is searched, not added"
    brighter = [_mean_level(library, sound, "bright", a) for a in AMOUNTS]
    darker = [_mean_level(library, sound, "dark", a) for a in AMOUNTS]
    away_from_dark = [_mean_level(library, sound, "-dark", a) for a in AMOUNTS]
    assert all(b >= a for a, b in zip(brighter, brighter[1:])), brighter
    assert all(b <= a for a, b in zip(darker, darker[1:])), darker
    assert all(b >= a for a, b in zip(away_from_dark, away_from_dark[1:])), away_from_dark
    # Each moves clearly, not by a tie-break: the unsteered results sit around level 2.
    assert brighter[-1] - brighter[0] >= 0.75 and brighter[-1] >= 3.5, brighter
    assert darker[0] - darker[-1] >= 1.0 and darker[-1] <= 1.0, darker
    assert away_from_dark[-1] > away_from_dark[0], away_from_dark
    assert library.catalog.count_files() == files_before
    assert library.catalog.file_by_path(str(query)) is None


def test_constraints_in_the_words_still_filter(plucks: tuple[Library, Path]) -> None:
    library, query = plucks
    sound = from_file(library, str(query))
    # Every pluck is 1 s long: "under 0.5 s" leaves nothing, whatever the steering.
    assert search_sound(library, sound, 5, words="bright, under 0.5 s", amount=1.0).hits == []
    response = search_sound(library, sound, 5, words="bright, over 0.5 s", amount=1.0)
    assert len(response.hits) == 5 and response.query.duration_min == 0.5


def test_timbre_ranks_by_brightness_and_loudness_beside_the_sound(
        plucks: tuple[Library, Path]) -> None:
    library, query = plucks
    sound = from_file(library, str(query))
    plain = search_sound(library, sound, 6).hits
    timbre = search_sound(library, sound, 6, aspect="timbre").hits

    def spread(hits: list) -> float:
        return float(np.mean([abs(h.file.brightness - sound.facts.brightness) for h in hits]))

    assert spread(timbre) < spread(plain)
    assert [_level(h) for h in timbre[:PER_LEVEL]] == [2] * PER_LEVEL
    scores = [h.score for h in timbre]
    assert scores == sorted(scores, reverse=True) and all(0 <= h.match <= 100 for h in timbre)


def test_reading_the_words_beside_a_sound() -> None:
    steering = read_words("darker, more punch, -reverb, less noise, at 120 BPM, in A minor")
    assert steering.toward == ("darker", "punch")
    assert steering.away == ("reverb", "noise")
    assert steering.constraints.bpm == 120 and steering.constraints.key == "A minor"
    assert steering.constraints.exclude == (), "a negated word steers, it does not filter"
    assert read_words("no vocals").away == ("vocal",)
    assert not read_words("").steers and not read_words(" , ,").steers


def test_steering_turns_the_vector_by_the_amount_times_the_largest_angle() -> None:
    rng = np.random.default_rng(0)
    q = rng.standard_normal(16).astype(np.float32)
    q /= np.linalg.norm(q)
    d = rng.standard_normal(16).astype(np.float32) * 0.01  # the length of d must not matter
    for amount in (0.0, 0.3, 1.0):
        out = steer(q, d, amount)
        assert abs(np.linalg.norm(out) - 1) < 1e-5
        angle = math.degrees(math.acos(min(1.0, float(out @ q))))
        assert abs(angle - amount * MAX_STEER_DEGREES) < 0.01
    assert np.allclose(steer(q, 5 * d, 0.5), steer(q, d, 0.5), atol=1e-6)
    assert np.allclose(steer(q, q * 3, 0.7), q, atol=1e-6), "along q itself there is no turn"


def test_key_and_tempo_closeness() -> None:
    assert aspects.key_closeness("A minor", "A minor") == 1.0
    relative = aspects.key_closeness("A minor", "C major")
    fifth = aspects.key_closeness("A minor", "E minor")
    far = aspects.key_closeness("A minor", "F# major")
    assert 1.0 > relative > fifth > far >= 0
    assert aspects.key_closeness(None, "C major") is None
    assert aspects.key_closeness("C major", None) == 0.0
    assert aspects.tempo_closeness(120, 120) == 1.0
    assert aspects.tempo_closeness(120, 60) == pytest.approx(aspects.HALF_DOUBLE_CREDIT)
    assert aspects.tempo_closeness(120, 124) > aspects.tempo_closeness(120, 132) > 0
    assert aspects.onset_closeness(4.0, 4.0) == 1.0
    assert aspects.onset_closeness(4.0, 5.0) > aspects.onset_closeness(4.0, 8.0) > 0
    assert aspects.onset_closeness(0.0, 0.0) == 1.0 and aspects.onset_closeness(0.0, 3.0) == 0.0
    assert aspects.onset_closeness(4.0, None) is None, "an old row is unknown, not different"


def test_rhythm_blends_tempo_onsets_and_kind_and_skips_what_is_unknown() -> None:
    query = aspects.Facts(bpm=120.0, kind="loop", onset_rate=8.0)
    busy = aspects.Facts(bpm=120.0, kind="loop", onset_rate=8.0)
    sparse = aspects.Facts(bpm=120.0, kind="loop", onset_rate=2.0)
    old_row = aspects.Facts(bpm=120.0, kind="loop", onset_rate=None)
    slower = aspects.Facts(bpm=100.0, kind="loop", onset_rate=8.0)
    score = {name: aspects.blend(0.5, query, facts, "rhythm")
             for name, facts in (("busy", busy), ("sparse", sparse), ("old", old_row),
                                 ("slower", slower))}
    assert score["busy"] > score["sparse"] and score["busy"] > score["slower"]
    assert score["old"] > score["sparse"], "an unknown onset rate is not held against a file"
    # A sound with no tempo of its own (a one-shot) ranks by the cosine, onsets and kind.
    hit = aspects.Facts(kind="one-shot", onset_rate=1.0)
    assert aspects.blend(0.9, hit, aspects.Facts(kind="one-shot", onset_rate=1.0), "rhythm") > \
        aspects.blend(0.9, hit, aspects.Facts(kind="loop", onset_rate=6.0), "rhythm")


@pytest.fixture
def named_library(tmp_path: Path, tiny_model: Path) -> Path:
    """Pads and basses whose names state keys and tempos, as sample packs do."""
    folder = tmp_path / "samples"
    names = {
        "pad": ["pad_01_F#.wav", "pad_02_D#m.wav", "pad_03_G#.wav", "pad_04_Am.wav"],
        "bass": ["bass_01_Am.wav", "bass_02_Cmaj.wav", "bass_03_F#.wav", "bass_04_Bb.wav"],
        "kick": ["kick_loop_90bpm_1.wav", "kick_loop_90bpm_2.wav", "kick_loop_120bpm_3.wav"],
        "hihat": ["hihat_loop_120bpm_1.wav", "hihat_loop_120bpm_2.wav", "hihat_loop_60bpm.wav"],
    }
    for family, files in names.items():
        for seed, name in enumerate(files):
            write_sound(folder / name, family_sound(family, 40 + seed, seconds=2.0))
    index_folder(folder, tiny_model)
    return tmp_path


def test_pitch_and_rhythm_rank_by_key_and_tempo(named_library: Path, tiny_model: Path) -> None:
    outside = named_library / "outside"
    pad = write_sound(outside / "my pad Am.wav", family_sound("pad", 3, seconds=2.0))
    kick = write_sound(outside / "my kick loop 120bpm.wav", family_sound("kick", 3, seconds=2.0))
    library = Library(model=str(tiny_model))
    try:
        sound = from_file(library, str(pad))
        assert sound.facts.key == "A minor"
        plain = [h.file.name for h in search_sound(library, sound, 4).hits]
        assert all(n.startswith("pad") for n in plain), plain
        pitch = search_sound(library, sound, 3, aspect="pitch").hits
        # The A minor files first, whatever they are, then C major (the same notes).
        assert {h.file.name for h in pitch[:2]} == {"pad_04_Am.wav", "bass_01_Am.wav"}
        assert pitch[2].file.name == "bass_02_Cmaj.wav"

        sound = from_file(library, str(kick))
        assert sound.facts.bpm == 120 and sound.facts.kind == "loop"
        plain = [h.file.name for h in search_sound(library, sound, 3).hits]
        assert all(n.startswith("kick") for n in plain), plain
        rhythm = [h.file.name for h in search_sound(library, sound, 4, aspect="rhythm").hits]
        assert set(rhythm[:3]) == {"kick_loop_120bpm_3.wav", "hihat_loop_120bpm_1.wav",
                                   "hihat_loop_120bpm_2.wav"}, rhythm
        # Half time is next: it plays along.
        assert rhythm[3] == "hihat_loop_60bpm.wav", rhythm
    finally:
        library.close()


def test_trimming_keeps_the_sound_and_drops_the_silence_at_both_ends() -> None:
    rate = 44100
    sound = family_sound("kick", 1, rate, 0.5)
    padded = np.concatenate([np.zeros(rate, np.float32), 1e-4 * np.ones(rate // 2, np.float32),
                             sound, np.zeros(rate, np.float32)])
    start, end = recording.sound_bounds(padded, rate, -45.0)
    pad = round(recording.TRIM_PAD_SECONDS * rate)
    assert abs(start - (rate + rate // 2 - pad)) <= round(0.01 * rate)
    # The kick decays below -45 dBFS before its end: the tail that is left is under a second.
    assert end - start <= len(sound) + 2 * pad and end - start >= 0.2 * rate
    assert len(recording.trim_silence(padded, rate, -45.0)) == end - start
    # A lower threshold keeps the quiet hum before the kick; a higher one trims into the kick.
    assert recording.sound_bounds(padded, rate, -90.0)[0] < start
    assert recording.sound_bounds(padded, rate, -12.0)[1] < end
    assert recording.trim_silence(np.zeros(rate, np.float32), rate).size == 0


def test_a_recording_and_the_same_sound_in_a_file_give_the_same_vector(
        tmp_path: Path, tiny_model: Path) -> None:
    wave = family_sound("bass", 9, 44100, 1.5)
    path = write_sound(tmp_path / "outside" / "bass.wav", wave, subtype="FLOAT")
    library = Library(model=str(tiny_model))
    try:
        from_disk = from_file(library, str(path))
        recorded = from_samples(library, wave, 44100, "your recording")
        assert float(from_disk.vector @ recorded.vector) > 0.9999
        assert recorded.facts == from_disk.facts
    finally:
        library.close()


@pytest.fixture
def family_library(tmp_path: Path, tiny_model: Path) -> Path:
    for family in ("kick", "hihat", "pad", "bass", "noise"):
        for seed in range(3):
            write_sound(tmp_path / "samples" / f"{family}_{seed:02d}.wav",
                        family_sound(family, 20 + seed))
    index_folder(tmp_path / "samples", tiny_model)
    return tmp_path / "samples"


@pytest.mark.skipif(not portaudio_loads(), reason="PortAudio (libportaudio2) is not installed")
def test_recording_from_an_alsa_input_trims_and_finds_the_family(
        tmp_path: Path, tiny_model: Path, family_library: Path) -> None:
    """The input device is an ALSA `file` PCM that plays a WAV into the recorder: a second of
    silence, a hihat, a second of silence."""
    rate = 44100
    hihat = family_sound("hihat", 5, rate, 1.0)
    take = np.concatenate([np.zeros(rate, np.float32), hihat, np.zeros(rate, np.float32)])
    wav = write_sound(tmp_path / "take.wav", take, rate, subtype="FLOAT")
    config, rate = write_input_config(tmp_path / "alsa", wav)
    code = f"""
import json
from clapdesk.core.ingest import recording
from clapdesk.core.library import Library
from clapdesk.core.search.sound_query import from_samples, search_sound
samples, rate = recording.record(3.5, rate={rate})
bounds = recording.sound_bounds(samples, rate, -45.0)
trimmed = recording.trim_silence(samples, rate, -45.0)
library = Library(model={str(tiny_model)!r})
sound = from_samples(library, trimmed, rate, "your recording")
hits = search_sound(library, sound, 3).hits
print(json.dumps({{"seconds": len(samples) / rate, "bounds": bounds,
                  "names": [h.file.name for h in hits], "files": library.catalog.count_files()}}))
library.close()
"""
    result = run_script(code, alsa_env(config), timeout=120)
    assert result["seconds"] == pytest.approx(3.5)
    start, end = result["bounds"]
    pad = round(recording.TRIM_PAD_SECONDS * rate)
    assert abs(start - (rate - pad)) <= round(0.011 * rate), "the leading second is trimmed"
    assert rate + 0.05 * rate < end <= 2 * rate + pad, "the trailing silence is trimmed"
    assert all(name.startswith("hihat") for name in result["names"]), result["names"]
    assert result["files"] == 15, "a recording is never added to the library"


@pytest.mark.skipif(not portaudio_loads(), reason="PortAudio (libportaudio2) is not installed")
def test_cli_record_then_similar_with_words_and_an_aspect(
        tmp_path: Path, tiny_model: Path, family_library: Path) -> None:
    rate = 44100
    pad = family_sound("pad", 8, rate, 1.5)
    take = np.concatenate([np.zeros(rate // 2, np.float32), pad, np.zeros(rate // 2, np.float32)])
    config, rate = write_input_config(tmp_path / "alsa", write_sound(tmp_path / "take.wav", take,
                                                                     rate, subtype="FLOAT"))
    out = tmp_path / "recorded.wav"
    code = f"""
import json, sys
from clapdesk.cli import main
sys.exit(main(["--json", "record", "-o", {str(out)!r}, "--seconds", "2.5", "--rate", "{rate}",
               "--trim"]))
"""
    result = run_script(code, alsa_env(config), timeout=120)
    assert result["recorded_seconds"] == pytest.approx(2.5)
    assert 1.0 < result["seconds"] < 2.0, result
    assert out.is_file()

    assert main(["--model", str(tiny_model), "--json", "similar", str(out), "-k", "3"]) == 0


@pytest.mark.skipif(not portaudio_loads(), reason="PortAudio (libportaudio2) is not installed")
def test_recording_without_an_input_device_is_one_plain_line(tmp_path: Path) -> None:
    from asound import write_missing_device_config

    config = write_missing_device_config(tmp_path / "alsa")
    code = f"""
import contextlib, io, json
from clapdesk.cli import main
err = io.StringIO()
with contextlib.redirect_stderr(err):
    status = main(["record", "-o", {str(tmp_path / "x.wav")!r}, "--seconds", "1"])
print(json.dumps({{"status": status, "err": err.getvalue()}}))
"""
    result = run_script(code, alsa_env(config))
    assert result["status"] == 1
    lines = [line for line in result["err"].splitlines() if line.startswith("clapdesk:")]
    assert lines and lines[0].startswith("clapdesk: cannot record from the default input"), result
    assert "Traceback" not in result["err"] and not (tmp_path / "x.wav").exists()


def test_cli_similar_json_names_the_sound_and_refuses_bad_options(
        tmp_path: Path, tiny_model: Path, family_library: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    query = write_sound(tmp_path / "outside" / "kick_07.wav", family_sound("kick", 99))
    code = main(["--json", "similar", str(query), "-k", "3", "--words", "bass, -noise",
                 "--amount", "0.3", "--aspect", "timbre"])
    found = json.loads(capsys.readouterr().out)
    assert code == 0
    assert found["sound"] == {"name": "kick_07", "in_library": False, "toward": ["bass"],
                              "away": ["noise"], "amount": 0.3, "aspect": "timbre"}
    assert len(found["results"]) == 3
    code = main(["similar", str(query)])
    text = capsys.readouterr().out
    assert code == 0 and text.startswith("Sounds like kick_07\n")
    assert "kick_" in text.splitlines()[1]
    assert main(["similar", str(query), "--amount", "2"]) == 2
    assert "--amount must be between 0 and 1" in capsys.readouterr().err
    assert main(["record", "-o", str(tmp_path / "x.wav"), "--seconds", "11"]) == 2
    assert "at most 10" in capsys.readouterr().err


def test_words_beside_a_sound_on_an_untrained_text_tower_are_ignored_and_said_so(
        tmp_path: Path, untrained_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for family in ("kick", "pad"):
        for seed in range(2):
            write_sound(tmp_path / "samples" / f"{family}_{seed}.wav", family_sound(family, seed))
    index_folder(tmp_path / "samples", untrained_model)
    query = write_sound(tmp_path / "outside" / "my kick.wav", family_sound("kick", 50))
    code = main(["--json", "similar", str(query), "-k", "2", "--words", "darker, under 5 s"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "the words are ignored, the sound alone is searched" in captured.err
    found = json.loads(captured.out)
    assert found["sound"]["amount"] == 0.0 and len(found["results"]) == 2
    assert found["query"]["duration_max"] == 5.0, "the constraints in the words still apply"
