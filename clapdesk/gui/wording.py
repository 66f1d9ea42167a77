"""Counts in words: "1 sound", "2 sounds", never "1 sounds" or "sound(s)"."""

from __future__ import annotations


def counted(n: int, noun: str, plural: str = "") -> str:
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"
