"""Write tests/fixtures/catalog_v1.sqlite3: a catalog as the first clapdesk schema left it.

Run once, and the file is committed: the migration test must open a file written by the old
schema, not one made by today's code on the fly. Schema step 0 -> 1 is frozen in
clapdesk.core.store.migrations.STEPS (released steps are never edited), so this script stays
valid. Usage: python tests/reliability/make_old_catalog.py
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np

from clapdesk.core.store.migrations import STEPS

TARGET = Path(__file__).resolve().parent.parent / "fixtures" / "catalog_v1.sqlite3"
ROOT = b"/home/producer/Samples"
FILES = [  # path, size, mtime_ns, hash, duration, rate, channels, error
    (ROOT + b"/Drums/kick_01.wav", 88244, 1_600_000_000_000_000_000, "a" * 40, 0.5, 44100, 1, None),
    (ROOT + b"/Drums/snare 120bpm.wav", 176444, 1_600_000_001_000_000_000, "b" * 40, 1.0, 44100, 2, None),
    (ROOT + b"/Pads/caf\xe9 pad Am.aiff", 529244, 1_600_000_002_000_000_000, "c" * 40, 3.0, 48000, 2, None),
    (ROOT + b"/broken.wav", 0, 1_600_000_003_000_000_000, None, None, None, None, "file is empty"),
]
ENCODER = "larger_clap_music@0123456789abcdef"


def vector(seed: int, dim: int) -> bytes:
    values = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    return (values / np.linalg.norm(values)).astype(np.float32).tobytes()


def main() -> None:
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    TARGET.unlink(missing_ok=True)
    db = sqlite3.connect(TARGET)
    STEPS[0].apply(db)
    db.execute("INSERT INTO roots(id, path, added_at) VALUES (1, ?, 1600000000.0)", (ROOT,))
    for file_id, (path, size, mtime, digest, duration, rate, channels, error) in enumerate(FILES, 1):
        db.execute(
            "INSERT INTO files(id, path, root_id, size, mtime_ns, content_hash, duration, "
            "sample_rate, channels, format, subtype, error, indexed_at) "
            "VALUES (?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1600000100.0)",
            (file_id, path, size, mtime, digest, duration, rate, channels,
             None if error else "WAV", None if error else "PCM_16", error))
        if error is None:
            db.execute("INSERT INTO features VALUES (?, ?, ?)", (file_id, ENCODER, vector(file_id, 64)))
            db.execute("INSERT INTO vectors(file_id, model_key, vector) VALUES (?, ?, ?)",
                       (file_id, ENCODER, vector(100 + file_id, 16)))
    db.execute("INSERT INTO meta VALUES ('model', 'laion/larger_clap_music')")
    db.execute("PRAGMA user_version = 1")
    db.commit()
    db.execute("VACUUM")
    db.close()
    print(f"wrote {TARGET} ({TARGET.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
