"""Understanding a search box query: the words for CLAP and the hard constraints.

"dark drum loop at 90 bpm in A minor without vocals" becomes the text "dark drum" for the
model and the constraints 90 BPM (±4 %), A minor, loop, no vocal, which the search filters
on and the UI shows as removable chips.

The rules, chosen to be predictable:
- Tempo: "90 bpm", "90bpm", "bpm 90", "at 90", "@90", "tempo 90" -> 90 ±4 %;
  "around/about/~ 120" -> ±8 %; "90-100 bpm", "between 90 and 100 bpm" -> that range;
  "uptempo" -> >= 125; "mid-tempo" -> 95..125; "slow" -> <= 95 and "fast" -> >= 125, but
  only in a rhythmic query (a loop, beat, groove, drums...), since a "slow pad" means its
  attack. A bare number is a tempo only beside a loop word ("drum loop 120"), never
  "808"/"909". Half or double time counts as a match for a closed range.
- Key: a note with a spelled mode ("A minor", "a min", "F# major"), a compact key token
  ("Am", "C#m", "Cmin", "Ebmaj", "F#", "Bb"), or a note after "in"/"key"/"key of" ("in C",
  "key of F#"). A lone lowercase "a" is the article unless it ends the query ("pad in a");
  lowercase "am", "fm", "db" are words. Flats are stored as sharps ("Eb" -> "D# major").
- Kind: "one-shot", "one shot", "oneshot", "1-shot", "shot(s)", "hit(s)" -> one-shot
  ("hit" stays in the text: it describes the sound); "loop(s)" -> loop; "no loops" -> one-shot.
- Length: "under/less than/shorter than/below/< 2 s", "over/more than/longer than/> 5 s",
  "1-3 seconds", "500 ms" (±25 %); "short" -> <= 1.5 s, "long" -> >= 4 s, except before
  reverb/tail/decay/release/attack/fade ("long reverb tail" is a sound).
- Exclusions: "-vocal", "no vocals", "without vocals", "minus vox" -> "vocal" (singular,
  abbreviations expanded), matched against the file's name and tag words.
The parser never raises: anything it cannot read stays in the text.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace

from clapdesk.core.analysis import names

EXACT_BPM_TOLERANCE = 0.04
APPROX_BPM_TOLERANCE = 0.08
SLOW_BPM_MAX = 95.0
FAST_BPM_MIN = 125.0
SHORT_MAX_SECONDS = 1.5
LONG_MIN_SECONDS = 4.0
APPROX_DURATION_TOLERANCE = 0.25
HALF_DOUBLE_MAX_SPAN = 1.25

_NUM = r"(\d{1,5}(?:\.\d{1,3})?)"
_TEMPO_NUM = r"(?<![\d.])(\d{2,3}(?:\.\d{1,2})?)(?![\d.]*\d)"
_DURATION_UNIT = r"(ms|msec|millisecond|milliseconds|s|sec|secs|second|seconds|mins?|minutes?)\b"
_NOT_A_UNIT = r"(?!\s*(?:%|ms|msec|s|sec|secs|seconds?|milliseconds?|mins?|minutes?|hz|khz|db|k|bars?|beats?|x)\b)"
_RHYTHM_WORDS = re.compile(r"\b(?:loops?|beats?|grooves?|breaks?|breakbeats?|drums?|rhythms?|tempo|percussion|perc|tops?)\b", re.I)
_SOUND_AFTER_LENGTH_WORD = r"(?!\s+(?:reverb|verb|tail|tails|decay|release|attack|fade|sustain|delay)\b)"


@dataclass(frozen=True)
class Constraint:
    """One removable chip: `kind` is "bpm", "key", "kind", "duration" or "exclude"."""

    kind: str
    label: str
    value: str = ""


@dataclass(frozen=True)
class ParsedQuery:
    text: str = ""
    bpm: float | None = None
    bpm_min: float | None = None
    bpm_max: float | None = None
    key: str | None = None
    kind: str | None = None
    duration_min: float | None = None
    duration_max: float | None = None
    exclude: tuple[str, ...] = field(default_factory=tuple)

    @property
    def has_bpm(self) -> bool:
        return self.bpm_min is not None or self.bpm_max is not None

    @property
    def has_duration(self) -> bool:
        return self.duration_min is not None or self.duration_max is not None

    @property
    def has_constraints(self) -> bool:
        return bool(self.constraints())

    def constraints(self) -> list[Constraint]:
        chips: list[Constraint] = []
        if self.has_bpm:
            chips.append(Constraint("bpm", _bpm_label(self)))
        if self.key:
            chips.append(Constraint("key", self.key, self.key))
        if self.kind:
            chips.append(Constraint("kind", self.kind, self.kind))
        if self.has_duration:
            chips.append(Constraint("duration", _duration_label(self.duration_min, self.duration_max)))
        chips.extend(Constraint("exclude", f"no {word}", word) for word in self.exclude)
        return chips

    def without(self, chip: Constraint | str) -> ParsedQuery:
        """This query less one chip, named by a Constraint, its kind id or its label.

        The kind id "exclude" drops every exclusion; a label ("no vocal") drops one.
        """
        if isinstance(chip, Constraint):
            kind, label = chip.kind, chip.label
        else:
            wanted = str(chip).strip().lower()
            match = next((c for c in self.constraints() if c.label.lower() == wanted), None)
            kind, label = (match.kind, match.label) if match else (wanted, "")
        if kind == "bpm":
            return replace(self, bpm=None, bpm_min=None, bpm_max=None)
        if kind == "key":
            return replace(self, key=None)
        if kind == "kind":
            return replace(self, kind=None)
        if kind == "duration":
            return replace(self, duration_min=None, duration_max=None)
        if kind == "exclude":
            if not label:
                return replace(self, exclude=())
            return replace(self, exclude=tuple(w for w in self.exclude if f"no {w}" != label))
        return self

    def to_json(self) -> dict:
        return {
            "text": self.text,
            "bpm": self.bpm,
            "bpm_min": self.bpm_min,
            "bpm_max": self.bpm_max,
            "key": self.key,
            "kind": self.kind,
            "duration_min": self.duration_min,
            "duration_max": self.duration_max,
            "exclude": list(self.exclude),
            "constraints": [{"kind": c.kind, "label": c.label, "value": c.value} for c in self.constraints()],
        }

    def accepts(
        self,
        bpm: float | None,
        key: str | None,
        kind: str | None,
        duration: float | None,
        text_fields: str = "",
    ) -> tuple[bool, str | None]:
        """Whether a file meets every constraint, and "half"/"double" when its tempo only
        matches at half or double time. An unknown value never meets a constraint on it."""
        tempo_note: str | None = None
        if self.has_bpm:
            tempo = bpm_match(self, bpm)
            if tempo is None:
                return False, None
            tempo_note = None if tempo == "exact" else tempo
        if self.key and key != self.key:
            return False, None
        if self.kind and kind != self.kind:
            return False, None
        if self.has_duration:
            if duration is None or not math.isfinite(duration):
                return False, None
            if self.duration_min is not None and duration < self.duration_min:
                return False, None
            if self.duration_max is not None and duration > self.duration_max:
                return False, None
        if self.exclude and text_fields and _mentions_any(text_fields, self.exclude):
            return False, None
        return True, tempo_note


def bpm_match(query: ParsedQuery, bpm: float | None) -> str | None:
    """"exact" when `bpm` is in the query's range, "half"/"double" when the file plays at
    half/double the wanted tempo (a stated tempo or a range up to 25 % wide only: "slow"
    or "mid-tempo" have no half time), else None."""
    if not query.has_bpm or bpm is None or not math.isfinite(bpm) or bpm <= 0:
        return None
    low = query.bpm_min if query.bpm_min is not None else -math.inf
    high = query.bpm_max if query.bpm_max is not None else math.inf

    def inside(value: float) -> bool:
        return low <= value <= high

    if inside(bpm):
        return "exact"
    if query.bpm_min is None or query.bpm_max is None or query.bpm_max > query.bpm_min * HALF_DOUBLE_MAX_SPAN:
        return None  # open ranges and tempo words ("mid-tempo") have no half or double time
    if inside(bpm * 2):
        return "half"
    if inside(bpm / 2):
        return "double"
    return None


def _mentions_any(text_fields: str, words: tuple[str, ...]) -> bool:
    tokens = names.name_tokens(text_fields)
    tokens += [names.singular(t) for t in tokens]
    for word in words:
        for token in tokens:
            if token == word or (len(word) >= 4 and token.startswith(word)):
                return True
    return False


def _fmt(value: float) -> str:
    return f"{value:.0f}" if abs(value - round(value)) < 1e-6 else f"{value:g}"


def _bpm_label(q: ParsedQuery) -> str:
    if q.bpm is not None:
        if q.bpm_min is not None and q.bpm_min >= q.bpm * (1 - EXACT_BPM_TOLERANCE) - 1e-9:
            return f"{_fmt(q.bpm)} BPM"
        return f"~{_fmt(q.bpm)} BPM"
    if q.bpm_min is not None and q.bpm_max is not None:
        return f"{_fmt(q.bpm_min)}–{_fmt(q.bpm_max)} BPM"
    if q.bpm_max is not None:
        return f"≤ {_fmt(q.bpm_max)} BPM"
    return f"≥ {_fmt(q.bpm_min or 0)} BPM"


def _seconds_label(seconds: float) -> str:
    if seconds < 1:
        return f"{_fmt(round(seconds * 1000, 1))} ms"
    return f"{_fmt(round(seconds, 2))} s"


def _duration_label(low: float | None, high: float | None) -> str:
    if low is not None and high is not None:
        if low < 1 and high < 1:
            return f"{_fmt(round(low * 1000, 1))}–{_seconds_label(high)}"
        return f"{_fmt(round(low, 2))}–{_seconds_label(high)}"
    if high is not None:
        return f"< {_seconds_label(high)}"
    return f"> {_seconds_label(low or 0)}"


def _to_seconds(value: float, unit: str) -> float:
    unit = unit.lower()
    if unit.startswith("m") and unit not in ("min", "mins", "minute", "minutes"):
        return value / 1000.0
    if unit.startswith("min"):
        return value * 60.0
    return value


class _Parser:
    """Consumes constraint phrases from the query, one rule after another."""

    def __init__(self, text: str) -> None:
        self.rest = " " + " ".join(text.split()) + " "
        self.fields: dict = {}
        self.exclude: list[str] = []

    def take(self, pattern: str, flags: int = re.I) -> re.Match | None:
        """Remove and return the first match of `pattern`, or None."""
        match = re.search(pattern, self.rest, flags)
        if match:
            self.rest = self.rest[: match.start()] + " " + self.rest[match.end():]
        return match

    def set_bpm(self, low: float, high: float, target: float | None) -> bool:
        if "bpm_min" in self.fields or "bpm_max" in self.fields:
            return False
        self.fields.update(bpm=target, bpm_min=round(low, 2), bpm_max=round(high, 2))
        return True

    def parse(self) -> ParsedQuery:
        self._exclusions()
        self._tempo()
        self._durations()
        self._kind()
        self._tempo_words()
        self._bare_tempo()
        self._key()
        return ParsedQuery(text=_clean_text(self.rest), exclude=tuple(self.exclude), **self.fields)

    def _exclusions(self) -> None:
        while match := self.take(r"\b(?:no|without|minus|except|exclude|excluding)\s+(?:any\s+)?(loops?|one[\s-]?shots?|oneshots?)\b"):
            word = match.group(1).lower()
            self.fields.setdefault("kind", "one-shot" if word.startswith("loop") else "loop")
        # "-vocal" or "no vocals", in the order written.
        pattern = (r"(?:(?<=\s)|^)[-−]([^\W\d_][\w'#-]*)"
                   r"|\b(?:no|without|minus|except|exclude|excluding)\s+(?:any\s+)?([^\W\d_][\w'#-]*)")
        while match := self.take(pattern):
            word = names.singular((match.group(1) or match.group(2)).lower().strip("'-"))
            canonical = names.normalise_word(word)
            word = canonical[0] if len(canonical) == 1 else word
            if word and word not in self.exclude:
                self.exclude.append(word)

    def _tempo(self) -> None:
        ranges = (
            rf"\b(?:between|from)\s+{_TEMPO_NUM}\s*(?:and|to|-|–)\s*{_TEMPO_NUM}\s*bpm\b",
            rf"{_TEMPO_NUM}\s*(?:-|–|to)\s*{_TEMPO_NUM}\s*bpm\b",
            rf"\bbpm\s*[:=]?\s*{_TEMPO_NUM}\s*(?:-|–|to)\s*{_TEMPO_NUM}",
        )
        for pattern in ranges:
            match = re.search(pattern, self.rest, re.I)
            if match:
                low, high = sorted((float(match.group(1)), float(match.group(2))))
                if names.BPM_MIN <= low and high <= names.BPM_MAX:
                    self.take(re.escape(match.group(0)))
                    self.set_bpm(low, high, None)
                    return
        approx = rf"(?:\b(?:around|about|approx(?:imately)?|roughly|circa|near|like)\s*|~\s*){_TEMPO_NUM}\s*(?:bpm\b)?{_NOT_A_UNIT}"
        exact = (
            rf"{_TEMPO_NUM}\s*-?\s*bpm\b",
            rf"\bbpm\s*[:=]?\s*{_TEMPO_NUM}",
            rf"(?:\bat|@|\btempo(?:\s+of)?)\s*{_TEMPO_NUM}{_NOT_A_UNIT}",
        )
        for pattern, tolerance in [(approx, APPROX_BPM_TOLERANCE)] + [(p, EXACT_BPM_TOLERANCE) for p in exact]:
            match = re.search(pattern, self.rest, re.I)
            if match:
                value = float(match.group(1))
                if names.BPM_MIN <= value <= names.BPM_MAX:
                    self.take(re.escape(match.group(0)))
                    self.set_bpm(value * (1 - tolerance), value * (1 + tolerance), value)
                    return

    def _durations(self) -> None:
        unit = _DURATION_UNIT
        match = self.take(rf"\b(?:between\s+)?{_NUM}\s*(?:-|–|to|and)\s*{_NUM}\s*{unit}")
        if match:
            second_unit = match.group(3)
            low, high = sorted((_to_seconds(float(match.group(1)), second_unit), _to_seconds(float(match.group(2)), second_unit)))
            self.fields.update(duration_min=low, duration_max=high)
            return
        upper = rf"(?:\bunder|\bless\s+than|\bshorter\s+than|\bbelow|\bmax(?:imum)?|\bup\s+to|\bat\s+most|\bwithin|<=?)\s*{_NUM}\s*{unit}"
        lower = rf"(?:\bover|\bmore\s+than|\blonger\s+than|\babove|\bat\s+least|\bmin(?:imum)?|>=?)\s*{_NUM}\s*{unit}"
        found = False
        if match := self.take(upper):
            self.fields["duration_max"] = _to_seconds(float(match.group(1)), match.group(2))
            found = True
        if match := self.take(lower):
            self.fields["duration_min"] = _to_seconds(float(match.group(1)), match.group(2))
            found = True
        if found:
            return
        if match := self.take(rf"(?<![\w.]){_NUM}\s*-?\s*{unit}(?:\s+long)?"):
            seconds = _to_seconds(float(match.group(1)), match.group(2))
            self.fields["duration_min"] = round(seconds * (1 - APPROX_DURATION_TOLERANCE), 4)
            self.fields["duration_max"] = round(seconds * (1 + APPROX_DURATION_TOLERANCE), 4)
            return
        if self.take(rf"\b(?:very\s+)?short(?:er)?\b{_SOUND_AFTER_LENGTH_WORD}"):
            self.fields["duration_max"] = SHORT_MAX_SECONDS
        elif self.take(rf"\blong(?:er)?\b{_SOUND_AFTER_LENGTH_WORD}"):
            self.fields["duration_min"] = LONG_MIN_SECONDS

    def _kind(self) -> None:
        if "kind" in self.fields:
            return
        one_shot = self.take(r"\b(?:one|1)[\s-]?shots?\b|\boneshots?\b|\bshots?\b")
        if one_shot:
            self.fields["kind"] = "one-shot"
            return
        if re.search(r"\bhits?\b", self.rest, re.I):
            self.fields["kind"] = "one-shot"  # "hit" stays: "orchestral hit" is a sound
            return
        if self.take(r"\bloop(?:s|ed|able)?\b"):
            self.fields["kind"] = "loop"

    def _tempo_words(self) -> None:
        if self.take(r"\bup[\s-]?tempo\b"):
            self.fields.update(bpm=None, bpm_min=FAST_BPM_MIN, bpm_max=None)
            return
        if self.take(r"\bmid[\s-]?tempo\b"):
            self.set_bpm(SLOW_BPM_MAX, FAST_BPM_MIN, None)
            return
        rhythmic = self.fields.get("kind") == "loop" or _RHYTHM_WORDS.search(self.rest)
        if not rhythmic or "bpm_min" in self.fields or "bpm_max" in self.fields:
            return
        if self.take(r"\b(?:very\s+)?slow\b"):
            self.fields.update(bpm=None, bpm_min=None, bpm_max=SLOW_BPM_MAX)
        elif self.take(r"\b(?:very\s+)?fast\b"):
            self.fields.update(bpm=None, bpm_min=FAST_BPM_MIN, bpm_max=None)

    def _bare_tempo(self) -> None:
        if "bpm_min" in self.fields or "bpm_max" in self.fields or self.fields.get("kind") != "loop":
            return
        for match in re.finditer(rf"{_TEMPO_NUM}{_NOT_A_UNIT}", self.rest):
            value = float(match.group(1))
            if match.group(1) in names.INSTRUMENT_NUMBERS or match.group(1).startswith("0"):
                continue
            if 60 <= value <= 200:
                self.rest = self.rest[: match.start()] + " " + self.rest[match.end():]
                self.set_bpm(value * (1 - EXACT_BPM_TOLERANCE), value * (1 + EXACT_BPM_TOLERANCE), value)
                return

    def _key(self) -> None:
        note = r"([A-Ga-g])(\s*(?:#|♯|b|♭)|\s+sharp|\s+flat|-sharp|-flat)?"
        mode = r"(major|minor|maj|min|m)"
        rules: list[tuple[str, int, bool]] = [
            # "in the key of F# minor", "key of C", "key: Am"
            (rf"\b(?:in\s+)?(?:the\s+)?key(?:\s+of)?\s*:?\s*{note}\s*{mode}?(?![\w#])", re.I, True),
            # "A minor", "f# major", "c min"
            (rf"(?<![\w#]){note}\s+(major|minor|maj|min)\b", re.I, True),
            # "in F#", "in Am", "in C" (a capital letter or an accidental or mode)
            (rf"\bin\s+([A-G])(\s*(?:#|♯|b|♭)|\s+sharp|\s+flat)?{mode}?(?![\w#])", 0, True),
            (rf"\bin\s+([a-g])(\s*(?:#|♯|b|♭)|\s+sharp|\s+flat)?{mode}?(?![\w#])", re.I, False),
        ]
        for pattern, flags, loose in rules:
            for match in re.finditer(pattern, self.rest, flags):
                root = match.group(1)
                accidental = _accidental(match.group(2))
                mode_word = (match.group(3) or "").lower()
                rest_after = self.rest[match.end():].strip()
                if not loose and not accidental and not mode_word and root == "a" and rest_after:
                    continue  # "in a" is the article unless it ends the query: "pad in a"
                key = names.key_from_token(root.upper() + accidental, _short_mode(mode_word), loose=True)
                if key:
                    self.rest = self.rest[: match.start()] + " " + self.rest[match.end():]
                    self.fields["key"] = key
                    return
        # Compact tokens anywhere: "Am", "C#m", "Cmin", "Ebmaj", "F#", "Bb".
        for match in re.finditer(r"(?<![\w#♯♭])([A-Ga-g](?:#|♯|b|♭)?(?:maj|min|m)?)(?![\w#♯♭])", self.rest):
            key = names.key_from_token(match.group(1))
            if key:
                self.rest = self.rest[: match.start()] + " " + self.rest[match.end():]
                self.fields["key"] = key
                return


def _accidental(text: str | None) -> str:
    text = (text or "").strip(" -").lower()
    if text in ("#", "♯", "sharp"):
        return "#"
    if text in ("b", "♭", "flat"):
        return "b"
    return ""


def _short_mode(word: str) -> str | None:
    if not word:
        return None
    return "m" if word in ("m", "min", "minor") else "maj"


_CONNECTORS = {"in", "at", "with", "and", "or", "of", "the", "key", "around", "about", "a", "an", "but", "for", "that", "is", "bpm"}


def _clean_text(rest: str) -> str:
    words = [w for w in rest.split() if re.search(r"\w", w)]
    words = [w.strip(",;:") for w in words]
    while words and words[-1].lower() in _CONNECTORS:
        words.pop()
    while words and words[0].lower() in _CONNECTORS - {"a", "an", "the"}:
        words.pop(0)
    return " ".join(w for w in words if w)


def parse_query(text: str) -> ParsedQuery:
    """Split a query into the text for CLAP and its constraints. Never raises."""
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    try:
        return _Parser(text).parse()
    except Exception:  # a search box must never crash: fall back to plain text
        return ParsedQuery(text=" ".join(text.split()))
