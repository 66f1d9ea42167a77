"""The producer's own tempo and key for a file: corrections that win over analysis and names.

Stored in their own table (user_tempo_key), which indexing never writes, so a rescan or a
re-analysis keeps them; the catalog reads them into FileRecord.bpm/.key with source 'user'
(catalog.FILE_COLUMNS), so search constraints, the results table, the map's colours and the
audition all see the corrected value through the fields they already read. Tempo and key are
corrected apart: clearing one leaves the other.

Input is read the way producers write it: "120", "92.5 bpm"; "Am", "A minor", "F#m", "Gb major",
"Bb", "c# min", "F sharp minor". Anything else is refused with a message that says what would do.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from clapdesk.core.analysis import names
from clapdesk.core.store.catalog import Catalog

BPM_MIN = names.BPM_MIN
BPM_MAX = names.BPM_MAX
_UNSET = object()

_BPM_TEXT = re.compile(r"^\s*(\d{1,3}(?:[.,]\d{1,3})?)\s*(?:bpm)?\s*$", re.I)
_KEY_TEXT = re.compile(
    r"^\s*(?P<root>[A-G])\s*(?P<acc>#|♯|b|♭|sharp|flat)?\s*"
    r"(?P<mode>major|minor|maj|min|moll|dur|m)?\s*$", re.I)


class CorrectionError(ValueError):
    """A tempo or key a producer typed that cannot be used, with what would do."""


@dataclass(frozen=True)
class Correction:
    bpm: float | None
    key: str | None
    edited_at: float


def parse_bpm(text: str | float) -> float:
    """"120", "92.5", "92,5 BPM" -> a tempo in 40..300 BPM, rounded to 0.01."""
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        match = _BPM_TEXT.match(str(text))
        if not match:
            raise CorrectionError(f"'{text}' is not a tempo: give a number of BPM, such as 120 or 92.5")
        value = float(match.group(1).replace(",", "."))
    if not BPM_MIN <= value <= BPM_MAX:
        raise CorrectionError(f"{value:g} BPM is outside {BPM_MIN:g}-{BPM_MAX:g} BPM; for a loop at "
                              f"half or double time give the tempo you count it in")
    return round(value, 2)


def parse_key(text: str) -> str:
    """"Am", "A minor", "F#m", "Gb major", "bb", "F sharp minor" -> canonical ("A# major").

    A root alone is major ("C", "Eb"); a lowercase "b" after the root is a flat ("bb" is B flat).
    """
    spaced = " ".join(str(text).replace("-", " ").split())
    spaced = re.sub(r"\s+(sharp|flat)\b", r"\1", spaced, flags=re.I)
    match = _KEY_TEXT.match(spaced)
    if not match:
        raise CorrectionError(
            f"'{text}' is not a key: write a note and, for minor, m or minor "
            "(C, Am, F#m, Gb major, A minor)")
    root = match.group("root").upper()
    acc = (match.group("acc") or "").lower()
    mode = match.group("mode") or ""
    shift = {"#": 1, "♯": 1, "sharp": 1, "b": -1, "♭": -1, "flat": -1}.get(acc, 0)
    minor = mode != "M" and mode.lower() in ("m", "min", "minor", "moll")  # "CM" is C major
    pitch = (names.PITCH_CLASSES.index(root) + shift) % 12
    return names.canonical_key(pitch, minor)


def corrections(catalog: Catalog, file_ids: Sequence[int]) -> dict[int, Correction]:
    """file id -> the producer's correction, for those of `file_ids` that have one."""
    out: dict[int, Correction] = {}
    ids = [int(i) for i in file_ids]
    for at in range(0, len(ids), 900):
        chunk = ids[at: at + 900]
        marks = ",".join("?" * len(chunk))
        for fid, bpm, key, edited in catalog.db.execute(
                f"SELECT file_id, user_bpm, user_key, edited_at FROM user_tempo_key "
                f"WHERE file_id IN ({marks})", chunk):
            out[int(fid)] = Correction(bpm, key, float(edited))
    return out


def set_correction(catalog: Catalog, file_ids: Iterable[int], bpm: object = _UNSET,
                   key: object = _UNSET) -> int:
    """Set the tempo and/or key of each file (a value given, or None to clear that one back to
    the analysis); what is not given is left as it was. Returns how many files it touched.

    Values are validated before anything is written (parse_bpm / parse_key for text)."""
    if catalog.readonly:
        raise CorrectionError("the library is read-only here: corrections cannot be saved")
    new_bpm = None if bpm is None or bpm is _UNSET else parse_bpm(bpm)  # type: ignore[arg-type]
    new_key = None if key is None or key is _UNSET else parse_key(str(key))
    ids = [int(i) for i in file_ids]
    now = time.time()
    db = catalog.db
    with db:
        for file_id in ids:
            row = db.execute("SELECT user_bpm, user_key FROM user_tempo_key WHERE file_id = ?",
                             (file_id,)).fetchone()
            old_bpm, old_key = row if row else (None, None)
            bpm_value = old_bpm if bpm is _UNSET else new_bpm
            key_value = old_key if key is _UNSET else new_key
            if bpm_value is None and key_value is None:
                db.execute("DELETE FROM user_tempo_key WHERE file_id = ?", (file_id,))
            else:
                db.execute(
                    "INSERT INTO user_tempo_key(file_id, user_bpm, user_key, edited_at) "
                    "VALUES (?, ?, ?, ?) ON CONFLICT(file_id) DO UPDATE SET "
                    "user_bpm = excluded.user_bpm, user_key = excluded.user_key, "
                    "edited_at = excluded.edited_at", (file_id, bpm_value, key_value, now))
    return len(ids)


def clear_correction(catalog: Catalog, file_ids: Iterable[int], bpm: bool = True,
                     key: bool = True) -> int:
    """Back to the analysed (or named) tempo and/or key."""
    return set_correction(catalog, file_ids, **({"bpm": None} if bpm else {}),
                          **({"key": None} if key else {}))


def keep_for_missing(catalog: Catalog, file_id: int) -> list | None:
    """What missing.forget keeps of a vanishing file's correction ([bpm, key, edited_at])."""
    row = catalog.db.execute("SELECT user_bpm, user_key, edited_at FROM user_tempo_key "
                             "WHERE file_id = ?", (file_id,)).fetchone()
    return list(row) if row else None


def restore_from_missing(catalog: Catalog, file_id: int, kept: list | None) -> None:
    """Give a file that came back the correction it had (no commit: the caller's batch)."""
    if not kept:
        return
    bpm, key, edited_at = kept
    if bpm is None and key is None:
        return
    catalog.db.execute("INSERT OR REPLACE INTO user_tempo_key(file_id, user_bpm, user_key, "
                       "edited_at) VALUES (?, ?, ?, ?)", (file_id, bpm, key, edited_at))
