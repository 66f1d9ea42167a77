"""Text that came from the OS as bytes: file and folder names, command-line arguments.

Python keeps bytes that are not valid UTF-8 as lone surrogates ("caf\\udce9"), which SQLite,
the tokenizer and every encoder refuse. Old sample CDs and Windows copies name folders in
Latin-1 or cp1252, so such bytes are read that way: "caf\\xe9" becomes "café", not an error.
"""

from __future__ import annotations


def readable(text: str) -> str:
    """`text` without surrogates: its bytes as UTF-8, else as cp1252, else with U+FFFD."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    raw = text.encode("utf-8", "surrogateescape") if _escaped_only(text) else None
    if raw is None:  # surrogates that are not escaped bytes: nothing to recover
        return text.encode("utf-8", "replace").decode("utf-8")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return raw.decode("cp1252")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _escaped_only(text: str) -> bool:
    """Every surrogate is one of surrogateescape's (U+DC80-U+DCFF: one undecodable byte)."""
    return all(not 0xD800 <= ord(c) <= 0xDFFF or 0xDC80 <= ord(c) <= 0xDCFF for c in text)
