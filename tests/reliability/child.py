"""Helpers for the reliability suite: running the real `clapdesk` in a child process."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

HOOKS = Path(__file__).parent / "hooks"


def child_env(**extra: str) -> dict[str, str]:
    """The test's environment (isolated library, offline hub) plus the observation hooks."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(HOOKS), env.get("PYTHONPATH")) if p)
    env.update(extra)
    return env


def clapdesk_cmd(library: Path, model: Path | str, *args: str) -> list[str]:
    return [sys.executable, "-m", "clapdesk", "--library", str(library), "--model", str(model),
            "--json", *args]


def run_clapdesk(library: Path, model: Path | str, *args: str, env: dict[str, str] | None = None,
                 timeout: float = 240) -> tuple[int, dict, str]:
    """(exit code, the JSON printed, stderr) of one finished `clapdesk` run."""
    done = subprocess.run(clapdesk_cmd(library, model, *args), capture_output=True, text=True,
                          env=env or child_env(), timeout=timeout)
    out = done.stdout.strip()
    return done.returncode, (json.loads(out) if out else {}), done.stderr


def count_rows(catalog: Path, table: str = "vectors") -> int:
    """Rows committed so far, read from outside the writing process (0 before it exists)."""
    if not catalog.exists():
        return 0
    try:
        db = sqlite3.connect(f"file:{catalog}?mode=ro", uri=True, timeout=5)
        try:
            return int(db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
        finally:
            db.close()
    except sqlite3.Error:
        return 0  # not created yet, or mid-migration


def integrity(catalog: Path) -> str:
    db = sqlite3.connect(catalog)
    try:
        return str(db.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        db.close()


def stored_vectors(catalog: Path) -> dict[bytes, bytes]:
    """path bytes -> vector bytes, for comparing two libraries exactly."""
    db = sqlite3.connect(catalog)
    try:
        rows = db.execute("SELECT f.path, v.vector FROM files f JOIN vectors v ON v.file_id = f.id")
        return {bytes(p): bytes(v) for p, v in rows}
    finally:
        db.close()
