"""Search queries: the text left for CLAP and the constraints read out of it."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clapdesk.core.search.query import ParsedQuery, bpm_match, parse_query

# (query, expected text, expected fields); fields not named must be None / empty.
CASES: list[tuple[str, str, dict]] = [
    ("dark drum loop at 90 bpm in A minor without vocals", "dark drum",
     {"bpm": 90, "key": "A minor", "kind": "loop", "exclude": ("vocal",)}),
    ("90 BPM", "", {"bpm": 90}),
    ("90bpm", "", {"bpm": 90}),
    ("bpm 128 techno", "techno", {"bpm": 128}),
    ("tempo 128 techno", "techno", {"bpm": 128}),
    ("@140 trap loop", "trap", {"bpm": 140, "kind": "loop"}),
    ("drum loop at 90", "drum", {"bpm": 90, "kind": "loop"}),
    ("drum loop 120", "drum", {"bpm": 120, "kind": "loop"}),
    ("lo-fi hip hop beat 85bpm", "lo-fi hip hop beat", {"bpm": 85}),
    ("90-100 bpm", "", {"bpm_range": (90, 100)}),
    ("between 90 and 100 bpm", "", {"bpm_range": (90, 100)}),
    ("170 to 175 bpm dnb", "dnb", {"bpm_range": (170, 175)}),
    ("around 120 bpm", "", {"bpm": 120, "approx": True}),
    ("~ 100", "", {"bpm": 100, "approx": True}),
    ("slow drum loop", "drum", {"bpm_range": (None, 95), "kind": "loop"}),
    ("fast hihat loop", "hihat", {"bpm_range": (125, None), "kind": "loop"}),
    ("uptempo house loop", "house", {"bpm_range": (125, None), "kind": "loop"}),
    ("slow pad", "slow pad", {}),
    ("fast attack pluck", "fast attack pluck", {}),
    ("808 kick", "808 kick", {}),
    ("909 hats", "909 hats", {}),
    ("tr 808 cowbell one shot", "tr 808 cowbell", {"kind": "one-shot"}),
    ("kick one-shot", "kick", {"kind": "one-shot"}),
    ("one shot snare", "snare", {"kind": "one-shot"}),
    ("oneshot clap", "clap", {"kind": "one-shot"}),
    ("snare shots", "snare", {"kind": "one-shot"}),
    ("orchestral hit", "orchestral hit", {"kind": "one-shot"}),
    ("loops", "", {"kind": "loop"}),
    ("no loops", "", {"kind": "one-shot"}),
    ("short punchy kick", "punchy kick", {"duration": (None, 1.5)}),
    ("long evolving pad", "evolving pad", {"duration": (4.0, None)}),
    ("long reverb tail", "long reverb tail", {}),
    ("short decay snare", "short decay snare", {}),
    ("under 2 seconds", "", {"duration": (None, 2.0)}),
    ("less than 500 ms", "", {"duration": (None, 0.5)}),
    ("riser over 5 s", "riser", {"duration": (5.0, None)}),
    ("at least 3 s", "", {"duration": (3.0, None)}),
    ("1-3 seconds", "", {"duration": (1.0, 3.0)}),
    ("2 second riser", "riser", {"duration": (1.5, 2.5)}),
    ("-vocal", "", {"exclude": ("vocal",)}),
    ("pad -vocals -choir", "pad", {"exclude": ("vocal", "choir")}),
    ("no vocals", "", {"exclude": ("vocal",)}),
    ("without vox", "", {"exclude": ("vocal",)}),
    ("snare with no reverb", "snare", {"exclude": ("reverb",)}),
    ("lo-fi piano", "lo-fi piano", {}),
    ("a warm pad", "a warm pad", {}),
    ("A warm pad in a cave", "A warm pad in a cave", {}),
    ("pad in a", "pad", {"key": "A major"}),
    ("pad in A", "pad", {"key": "A major"}),
    ("piano in c", "piano", {"key": "C major"}),
    ("pad in e", "pad", {"key": "E major"}),
    ("in the key of F# minor", "", {"key": "F# minor"}),
    ("key of C", "", {"key": "C major"}),
    ("Am chord", "chord", {"key": "A minor"}),
    ("c#m bass", "bass", {"key": "C# minor"}),
    ("C major piano", "piano", {"key": "C major"}),
    ("a minor piano loop", "piano", {"key": "A minor", "kind": "loop"}),
    ("F# major", "", {"key": "F# major"}),
    ("F#", "", {"key": "F# major"}),
    ("Bb lead", "lead", {"key": "A# major"}),
    ("Ebmaj stab", "stab", {"key": "D# major"}),
    ("bass in eb", "bass", {"key": "D# major"}),
    ("F sharp minor pad", "pad", {"key": "F# minor"}),
    ("dB meter", "dB meter", {}),
    ("fm bass", "fm bass", {}),
    ("am radio", "am radio", {}),
    ("", "", {}),
    ("   ", "", {}),
]


@pytest.mark.parametrize(("query", "text", "expected"), CASES, ids=[c[0] or "<empty>" for c in CASES])
def test_parse_query_table(query: str, text: str, expected: dict) -> None:
    parsed = parse_query(query)
    assert parsed.text == text
    assert parsed.key == expected.get("key")
    assert parsed.kind == expected.get("kind")
    assert parsed.exclude == expected.get("exclude", ())
    if "bpm" in expected:
        tolerance = 0.08 if expected.get("approx") else 0.04
        assert parsed.bpm == expected["bpm"]
        assert parsed.bpm_min == pytest.approx(expected["bpm"] * (1 - tolerance))
        assert parsed.bpm_max == pytest.approx(expected["bpm"] * (1 + tolerance))
    elif "bpm_range" in expected:
        assert parsed.bpm is None
        assert (parsed.bpm_min, parsed.bpm_max) == expected["bpm_range"]
    else:
        assert (parsed.bpm, parsed.bpm_min, parsed.bpm_max) == (None, None, None)
    low, high = expected.get("duration", (None, None))
    assert parsed.duration_min == (pytest.approx(low) if low is not None else None)
    assert parsed.duration_max == (pytest.approx(high) if high is not None else None)


def test_table_is_large_enough() -> None:
    assert len(CASES) >= 50


def test_chips_and_their_removal() -> None:
    parsed = parse_query("dark drum loop at 90 bpm in A minor under 4 seconds no vocals -choir")
    labels = [c.label for c in parsed.constraints()]
    assert labels == ["90 BPM", "A minor", "loop", "< 4 s", "no vocal", "no choir"]
    assert [c.kind for c in parsed.constraints()] == ["bpm", "key", "kind", "duration", "exclude", "exclude"]

    no_tempo = parsed.without("bpm")
    assert not no_tempo.has_bpm and no_tempo.key == "A minor"
    no_key = parsed.without("A minor")
    assert no_key.key is None and no_key.bpm == 90
    one_exclusion = parsed.without("no vocal")
    assert one_exclusion.exclude == ("choir",)
    assert parsed.without("exclude").exclude == ()
    chip = parsed.constraints()[3]
    assert parsed.without(chip).has_duration is False
    assert parsed.without("kind").kind is None
    assert parsed.without("nonsense") == parsed
    assert parsed.text == no_key.text == "dark drum"


def test_chip_labels_for_ranges_and_durations() -> None:
    assert [c.label for c in parse_query("90-100 bpm").constraints()] == ["90–100 BPM"]
    assert [c.label for c in parse_query("around 120 bpm").constraints()] == ["~120 BPM"]
    assert [c.label for c in parse_query("slow drum loop").constraints()] == ["≤ 95 BPM", "loop"]
    assert [c.label for c in parse_query("less than 500 ms").constraints()] == ["< 500 ms"]
    assert [c.label for c in parse_query("over 5 s").constraints()] == ["> 5 s"]


def test_to_json_round_trips_through_json() -> None:
    parsed = parse_query("drum loop at 90 bpm in A minor no vocals")
    data = json.loads(json.dumps(parsed.to_json()))
    assert data["bpm"] == 90 and data["key"] == "A minor" and data["kind"] == "loop"
    assert data["exclude"] == ["vocal"]
    assert [c["label"] for c in data["constraints"]] == ["90 BPM", "A minor", "loop", "no vocal"]


def test_bpm_match_counts_half_and_double_time() -> None:
    query = parse_query("90 bpm")
    assert bpm_match(query, 90) == "exact"
    assert bpm_match(query, 92.5) == "exact"
    assert bpm_match(query, 95) is None
    assert bpm_match(query, 45) == "half"
    assert bpm_match(query, 180) == "double"
    assert bpm_match(query, None) is None
    assert bpm_match(query, float("nan")) is None
    assert bpm_match(ParsedQuery(text="x"), 90) is None
    slow = parse_query("slow loop")
    assert bpm_match(slow, 90) == "exact"
    assert bpm_match(slow, 170) is None  # an open range has no half time


def test_accepts_checks_every_constraint() -> None:
    query = parse_query("drum loop 120 bpm in A minor under 10 s -vocal")
    assert query.accepts(120, "A minor", "loop", 8.0, "drums/DrumLoop_01.wav") == (True, None)
    assert query.accepts(60, "A minor", "loop", 8.0, "DrumLoop_01") == (True, "half")
    assert query.accepts(240, "A minor", "loop", 8.0, "DrumLoop_01") == (True, "double")
    assert query.accepts(None, "A minor", "loop", 8.0, "")[0] is False  # unknown tempo
    assert query.accepts(120, None, "loop", 8.0, "")[0] is False  # unknown key
    assert query.accepts(120, "C major", "loop", 8.0, "")[0] is False
    assert query.accepts(120, "A minor", "one-shot", 8.0, "")[0] is False
    assert query.accepts(120, "A minor", "loop", 12.0, "")[0] is False
    assert query.accepts(120, "A minor", "loop", None, "")[0] is False
    assert query.accepts(120, "A minor", "loop", 8.0, "Loops/Vocals/Chop_01.wav")[0] is False
    assert query.accepts(120, "A minor", "loop", 8.0, "VoxLoop_120")[0] is False
    assert ParsedQuery(text="anything").accepts(None, None, None, None, "") == (True, None)


@settings(max_examples=500, deadline=None)
@given(st.text())
def test_parse_query_never_raises(text: str) -> None:
    parsed = parse_query(text)
    assert isinstance(parsed.text, str)
    json.dumps(parsed.to_json())
    for chip in parsed.constraints():
        parsed.without(chip)


_PIECES = ["loop", "90", "bpm", "-", "in", "a", "A", "minor", "#", "b", "no", "under", "2", "s", "ms",
           "808", "around", "~", "@", "between", "and", "to", "key", "of", "short", "long", "1e999", "0"]


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=10), st.sampled_from([" ", "", "-", "_"]))
def test_parse_query_never_raises_on_near_misses(pieces: list[str], joiner: str) -> None:
    parsed = parse_query(joiner.join(pieces))
    if parsed.bpm_min is not None and parsed.bpm_max is not None:
        assert parsed.bpm_min <= parsed.bpm_max
    if parsed.duration_min is not None and parsed.duration_max is not None:
        assert parsed.duration_min <= parsed.duration_max
