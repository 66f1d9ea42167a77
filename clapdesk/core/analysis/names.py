"""What a sample's file name and folders say about it: words, tempo and key.

Pure functions, no I/O. Producers' file names are terse ("808_Kick_Hard_03.wav",
"DrumLoop_90_Am.wav", "BS_Cmin_120bpm.wav"), so this module splits them into words,
expands the common abbreviations, and reads a tempo or key only where the name
states one plainly: a wrong tempo or key is worse than none.
"""

from __future__ import annotations

import re
from pathlib import PurePath, PurePosixPath, PureWindowsPath

PITCH_CLASSES: tuple[str, ...] = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
KEY_NAMES: tuple[str, ...] = tuple(f"{pc} major" for pc in PITCH_CLASSES) + tuple(
    f"{pc} minor" for pc in PITCH_CLASSES
)

BPM_MIN = 40.0
BPM_MAX = 300.0
# A bare number (no "bpm" beside it) is read as a tempo only in this narrower range, where
# sample numbers ("Loop 12", "Loop 07") rarely reach.
_BARE_BPM_MIN = 60.0
_BARE_BPM_MAX = 200.0

# Drum machines and synths named by number are instrument words, not counts.
INSTRUMENT_NUMBERS = frozenset({"808", "909", "606", "707", "727", "303", "101", "202", "106", "1010"})

LOOP_WORDS = frozenset({"loop", "groove", "beat", "break", "breakbeat", "riddim"})
ONE_SHOT_WORDS = frozenset({"one-shot", "hit", "shot", "stab"})

# Abbreviations and variants found in sample-pack names, mapped to the words a
# producer would type. A value may hold several words.
_ABBREVIATIONS: dict[str, tuple[str, ...]] = {
    "bd": ("kick",), "kik": ("kick",), "kck": ("kick",), "kic": ("kick",), "kicks": ("kick",),
    "sn": ("snare",), "snr": ("snare",), "sd": ("snare",), "snares": ("snare",),
    "hh": ("hihat",), "hat": ("hihat",), "hats": ("hihat",), "hihats": ("hihat",),
    "hi-hat": ("hihat",), "hi-hats": ("hihat",),
    "ohh": ("open", "hihat"), "ohat": ("open", "hihat"), "oh-hat": ("open", "hihat"),
    "chh": ("closed", "hihat"), "chat": ("closed", "hihat"), "clhh": ("closed", "hihat"),
    "cym": ("cymbal",), "cymb": ("cymbal",), "cymbals": ("cymbal",),
    "perc": ("percussion",), "percs": ("percussion",), "percussions": ("percussion",),
    "vox": ("vocal",), "voc": ("vocal",), "vocals": ("vocal",), "vocs": ("vocal",),
    "gtr": ("guitar",), "gtrs": ("guitar",), "guit": ("guitar",), "guitars": ("guitar",),
    "pno": ("piano",), "pianos": ("piano",),
    "bs": ("bass",), "basses": ("bass",), "sub": ("sub", "bass"),
    "syn": ("synth",), "synths": ("synth",), "snth": ("synth",),
    "fx": ("fx",), "sfx": ("fx",), "efx": ("fx",), "effects": ("fx",), "effect": ("fx",),
    "os": ("one-shot",), "1shot": ("one-shot",), "oneshot": ("one-shot",),
    "oneshots": ("one-shot",), "1shots": ("one-shot",), "one-shots": ("one-shot",),
    "loops": ("loop",), "lps": ("loop",), "drumloop": ("drum", "loop"),
    "drumloops": ("drum", "loop"), "toploop": ("top", "loop"), "grooves": ("groove",),
    "beats": ("beat",), "breaks": ("break",), "breakbeats": ("breakbeat",),
    "hits": ("hit",), "shots": ("shot",), "stabs": ("stab",),
    "clp": ("clap",), "claps": ("clap",), "rim": ("rimshot",), "rims": ("rimshot",),
    "toms": ("tom",), "shakers": ("shaker",), "tamb": ("tambourine",),
    "drums": ("drum",), "dr": ("drum",), "keys": ("keys",), "pads": ("pad",),
    "leads": ("lead",), "plucks": ("pluck",), "chords": ("chord",), "chrd": ("chord",),
    "arps": ("arp",), "arpeggio": ("arp",), "bells": ("bell",), "strings": ("strings",),
    "str": ("strings",), "brs": ("brass",), "atmo": ("atmosphere",), "atmos": ("atmosphere",),
    "amb": ("ambient",), "risers": ("riser",), "sweeps": ("sweep",), "impacts": ("impact",),
    "crashes": ("crash",), "rides": ("ride",), "fills": ("fill",), "foley": ("foley",),
}

# Words that say nothing about the sound: file formats, versions, pack jargon.
_NOISE_WORDS = frozenset({
    "wav", "wave", "aif", "aiff", "mp3", "flac", "ogg", "m4a", "sample", "samples", "final",
    "copy", "new", "prod", "free", "master", "bounce", "bounced", "export", "edit", "untitled",
    "audio", "track", "the", "and", "of", "a", "an", "by", "for", "with", "bpm", "stereo", "mono",
    "bit", "khz", "render", "rendered", "version", "ver", "take", "tk", "demo", "preview",
})

# Take numbers, versions and recording formats: "take3", "v2", "24bit", "44k", "120bpm".
_DROP_TOKEN_RE = re.compile(
    r"^(?:(?:take|tk|v|ver|version|var|alt|no|nr|num|x)\d+[a-z]?"
    r"|\d+(?:bit|k|khz|hz|bpm|st|nd|rd|th|x)"
    r"|bpm\d+|\d+[a-z]?|#\d+)$"
)
_SEPARATORS_RE = re.compile(r"[\s_.,;:+&=~!?'\"()\[\]{}<>|/\\]+")
_CAMEL_RE = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+|#")


def _path_parts(text: str) -> tuple[str, list[str]]:
    """The file stem and its folder names, nearest folder first."""
    path: PurePath = PureWindowsPath(text) if "\\" in text else PurePosixPath(text)
    stem = path.name
    # Strip a plausible audio extension only: "Loop 120.5" has no extension to lose.
    stem = re.sub(r"\.(?:wav|wave|aif|aiff|flac|mp3|ogg|m4a|opus|wv|caf)$", "", stem, flags=re.I)
    folders = [part for part in reversed(path.parts[:-1]) if part not in ("/", "\\")]
    return stem, folders


def _split_camel(piece: str) -> list[str]:
    """Split "DeepKick" -> Deep, Kick and "808Kick" -> 808, Kick, keeping all-caps words."""
    if piece.islower() or piece.isupper() or piece.isdigit():
        # Still separate letters from digits: "kick808" -> kick, 808.
        return [p for p in re.findall(r"[^\W\d_]+|\d+|#", piece) if p] or [piece]
    return _CAMEL_RE.findall(piece) or [piece]


def _raw_pieces(text: str) -> list[str]:
    return [p for p in _SEPARATORS_RE.split(text) if p]


def normalise_word(word: str) -> tuple[str, ...]:
    """Map one lowercased word to the canonical word(s) a producer would search for."""
    word = word.lower()
    if word in _ABBREVIATIONS:
        return _ABBREVIATIONS[word]
    return (word,)


def singular(word: str) -> str:
    """A simple English singular, good enough for sample words ("vocals" -> "vocal")."""
    if len(word) <= 3 or word.endswith(("ss", "us", "is", "ics")):
        return word
    if word.endswith("ies"):
        return word[:-3] + "y"
    if word.endswith(("ches", "shes", "xes")):
        return word[:-2]
    if word.endswith("s"):
        return word[:-1]
    return word


def name_tokens(text: str) -> list[str]:
    """The meaningful words of a file name or folder name, lowercased, in order, unique.

    Splits on separators and camelCase, drops numbers (except instrument numbers like
    "808"), take/version numbers, formats and filler words, and expands abbreviations
    ("BD" -> "kick", "Vox" -> "vocal", "1shot" -> "one-shot").
    """
    out: list[str] = []
    seen: set[str] = set()

    def add(word: str) -> None:
        if word and word not in seen:
            seen.add(word)
            out.append(word)

    pieces: list[str] = []
    for raw in _raw_pieces(text):
        for dash_piece in raw.split("-"):
            low = dash_piece.lower()
            if low in _ABBREVIATIONS or _DROP_TOKEN_RE.match(low):
                pieces.append(dash_piece)
            else:
                pieces.extend(_split_camel(dash_piece))
    # "one shot" / "hi hat" written as two words.
    lowered = [p.lower() for p in pieces]
    i = 0
    while i < len(lowered):
        word = lowered[i]
        nxt = lowered[i + 1] if i + 1 < len(lowered) else ""
        if word in ("one", "1") and nxt in ("shot", "shots"):
            add("one-shot")
            i += 2
            continue
        if word == "hi" and nxt in ("hat", "hats"):
            add("hihat")
            i += 2
            continue
        if word == "lo" and nxt == "fi":
            add("lofi")
            i += 2
            continue
        i += 1
        if word in INSTRUMENT_NUMBERS:
            add(word)
            continue
        if word == "#" or _DROP_TOKEN_RE.match(word) or word in _NOISE_WORDS:
            continue
        if len(word) == 1 and not word.isdigit():
            continue  # variant letters ("Kick_A") and stray key letters
        if _KEY_TOKEN_RE.match(pieces[i - 1]) and key_from_token(pieces[i - 1]):
            continue  # "Am", "C#min": a key, not a word
        if word in _SPELLED_MODES or word in ("sharp", "flat"):
            before = lowered[i - 2] if i >= 2 else ""
            if word in ("min", "maj") or before in _NOTE_WORDS or before in ("sharp", "flat"):
                continue  # "A_min", "F sharp minor": part of a key
        for canonical in normalise_word(word):
            add(canonical)
    return out


def has_loop_word(tokens: list[str]) -> bool:
    return any(t in LOOP_WORDS or t.endswith("loop") for t in tokens)


# --- tempo -------------------------------------------------------------------------------

_BPM_AFTER_RE = re.compile(r"(?<![\d.])(\d{2,3}(?:\.\d{1,2})?)\s*[-_ ]?\s*bpm(?![a-z])", re.I)
_BPM_BEFORE_RE = re.compile(r"(?<![a-z])bpm\s*[-_ :=]?\s*(\d{2,3}(?:\.\d{1,2})?)(?![\d.]*\d)", re.I)
_BARE_NUMBER_RE = re.compile(r"^[1-9]\d{1,2}(?:\.\d{1,2})?$")


def _valid_bpm(value: float, low: float = BPM_MIN, high: float = BPM_MAX) -> bool:
    return low <= value <= high


def _explicit_bpm(text: str) -> float | None:
    for pattern in (_BPM_AFTER_RE, _BPM_BEFORE_RE):
        for match in pattern.finditer(text):
            value = float(match.group(1))
            if _valid_bpm(value):
                return value
    return None


def _bare_bpm(stem: str) -> float | None:
    """A bare number in a name that has a loop word: "DrumLoop_90_Am", "Loop 120"."""
    pieces: list[str] = []
    for raw in _raw_pieces(stem):
        for dash_piece in raw.split("-"):
            pieces.extend(_split_camel(dash_piece) if not _BARE_NUMBER_RE.match(dash_piece) else [dash_piece])
    lowered = [p.lower() for p in pieces]
    if not has_loop_word([w for p in lowered for w in normalise_word(p)]):
        return None
    candidates = [
        float(p) for p in lowered
        if _BARE_NUMBER_RE.match(p) and p not in INSTRUMENT_NUMBERS
        and _valid_bpm(float(p), _BARE_BPM_MIN, _BARE_BPM_MAX)
    ]
    # Several candidates ("Loop 75 120") cannot be told apart reliably: the last one is
    # where pack names put the tempo ("Pack_Loop_03_120_Am"); a single one is the tempo.
    return candidates[-1] if candidates else None


def bpm_from_name(text: str) -> float | None:
    """The tempo a file name (or path) states, or None.

    Reads "90bpm", "90 BPM", "bpm90", "90_bpm", "128-bpm" anywhere in the stem or its
    folders, and a bare number (60..200, no leading zero) only in a stem that also has a
    loop word ("DrumLoop_90_Am", "Loop 120"). Never reads sample numbers ("Kick_01"),
    instrument numbers ("808") or years.
    """
    if not text:
        return None
    stem, folders = _path_parts(text)
    value = _explicit_bpm(stem)
    if value is not None:
        return value
    value = _bare_bpm(stem)
    if value is not None:
        return value
    for folder in folders:
        value = _explicit_bpm(folder)
        if value is not None:
            return value
    return None


# --- key ---------------------------------------------------------------------------------

_ROOT_INDEX = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
_KEY_TOKEN_RE = re.compile(
    r"^(?P<root>[A-Ga-g])(?P<acc>#|♯|b|♭|sharp|flat)?"
    r"(?P<mode>maj(?:or)?|min(?:or)?|m|dur|moll)?(?P<ext>maj7|m7|7|9|11|13|add9|6)?$"
)
_SPELLED_MODES = frozenset({"min", "minor", "maj", "major"})
_NOTE_WORDS = frozenset("abcdefg") | {n + a for n in "abcdefg" for a in ("#", "b", "sharp", "flat")}


def canonical_key(pitch_class: int, minor: bool) -> str:
    return f"{PITCH_CLASSES[pitch_class % 12]} {'minor' if minor else 'major'}"


def key_pitch_class(key: str) -> tuple[int, bool]:
    """("D# minor") -> (3, True). Raises ValueError for anything not in KEY_NAMES."""
    root, _, mode = key.partition(" ")
    if key not in KEY_NAMES:
        raise ValueError(f"not a canonical key: {key!r}")
    return PITCH_CLASSES.index(root), mode == "minor"


def format_key_short(key: str | None) -> str:
    """"D# minor" -> "D#m", "C major" -> "C", None -> ""."""
    if not key:
        return ""
    root, _, mode = key.partition(" ")
    return root + ("m" if mode == "minor" else "")


def _accidental_shift(acc: str) -> int:
    if acc in ("#", "♯", "sharp"):
        return 1
    if acc in ("b", "♭", "flat"):
        return -1
    return 0


def key_from_token(token: str, mode_word: str | None = None, loose: bool = False) -> str | None:
    """A key from one token such as "Am", "C#min", "Ebmaj", "Gmaj7", "F#".

    Strict by default, because names are full of letters: the root must be a capital
    letter unless an accidental or a spelled-out mode follows ("c#m", "cmin"); a bare
    letter ("C", "A") is not a key unless `loose` (used after "key" or with a mode word);
    "dB", "Bass", "Ambient" never match.
    """
    match = _KEY_TOKEN_RE.match(token)
    if not match:
        return None
    root, acc, mode, ext = match.group("root"), match.group("acc") or "", match.group("mode"), match.group("ext")
    if acc == "b" and root.islower():
        return None  # "db", "ab", "eb" lowercase: decibels and words, not keys
    if root.islower() and not acc and (mode is None or len(mode) < 3):
        return None  # "am", "em", "fm" (FM synth), "cm"
    if mode is None and mode_word is not None:
        mode = mode_word
    if mode is None and ext:
        return None  # "C7", "A9": sample numbers as often as chords
    if mode is None and not acc and not loose:
        return None  # a bare letter: variant "Kick_A", the article "A"
    minor = mode in ("m", "min", "minor", "moll")
    pitch = (_ROOT_INDEX[root.upper()] + _accidental_shift(acc)) % 12
    return canonical_key(pitch, minor)


def _key_in_pieces(pieces: list[str]) -> str | None:
    lowered = [p.lower() for p in pieces]
    for i, piece in enumerate(pieces):
        nxt = lowered[i + 1] if i + 1 < len(pieces) else ""
        prev = lowered[i - 1] if i > 0 else ""
        after = lowered[i + 2] if i + 2 < len(pieces) else ""
        # "F sharp minor", "B flat major"
        if len(piece) == 1 and nxt in ("sharp", "flat") and after in _SPELLED_MODES:
            accidental = "#" if nxt == "sharp" else "b"
            key = key_from_token(piece.upper() + accidental, _mode_abbrev(after), loose=True)
            if key:
                return key
        # "A min", "F# minor", "C Major": a root token followed by a spelled mode word.
        if nxt in _SPELLED_MODES and re.fullmatch(r"[A-Ga-g](#|♯|b|♭)?", piece):
            key = key_from_token(piece, _mode_abbrev(nxt), loose=True)
            if key:
                return key
        key = key_from_token(piece, loose=prev == "key")
        if key:
            return key
    return None


def _mode_abbrev(word: str) -> str:
    return "m" if word.startswith("min") else "maj"


def _key_pieces(text: str) -> list[str]:
    """Tokens for key reading: split on separators, and camelCase only where that
    leaves key-shaped pieces ("PadAm" -> Pad, Am), keeping "#" attached ("C#m")."""
    pieces: list[str] = []
    for raw in _raw_pieces(text):
        for dash_piece in raw.split("-"):
            if not dash_piece:
                continue
            if _KEY_TOKEN_RE.match(dash_piece):
                pieces.append(dash_piece)
                continue
            # Split before capitals and between letters and digits, keep "#"/"b" with root.
            parts = re.findall(r"[A-G](?:#|♯)?(?:maj|min|m)?(?![a-z])|[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+|[#♯]", dash_piece)
            pieces.extend(parts or [dash_piece])
    return pieces


def key_from_name(text: str) -> str | None:
    """The key a file name (or path) states, in canonical form ("D# minor"), or None.

    Reads "Cmin", "C#m", "F# minor", "Am", "Ebmaj", "A_min", "Dbm", "Gmaj7" (root and
    quality of a chord), "C Major", "Key_C". Flats become sharps. Reads only whole
    tokens, so "Bass", "Ambient" and "-6dB" give nothing; the stem is read before folders.
    """
    if not text:
        return None
    stem, folders = _path_parts(text)
    for part in [stem, *folders]:
        key = _key_in_pieces(_key_pieces(part))
        if key:
            return key
    return None


def kind_from_name(text: str) -> str | None:
    """"loop" or "one-shot" when the stem, or failing that a folder, says so."""
    if not text:
        return None
    stem, folders = _path_parts(text)
    for part in [stem, *folders]:
        tokens = name_tokens(part)
        one_shot = any(t in ONE_SHOT_WORDS for t in tokens)
        loop = has_loop_word(tokens)
        if one_shot and not loop:
            return "one-shot"
        if loop and not one_shot:
            return "loop"
    return None
