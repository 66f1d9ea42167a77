"""Writers for the bad-file corpus: every kind of odd file a sample library holds."""

from __future__ import annotations

import io
import os
import struct
from pathlib import Path

import numpy as np
import soundfile as sf


def wav_bytes(data: np.ndarray, rate: int, subtype: str = "PCM_16") -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, data, rate, format="WAV", subtype=subtype)
    return buffer.getvalue()


def encoded(data: np.ndarray, rate: int, fmt: str) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, data, rate, format=fmt)
    return buffer.getvalue()


def wav_with_codec(format_tag: int, body: bytes, channels: int = 2, rate: int = 44100,
                   block_align: int = 4096, extra: bytes = b"\x00" * 10) -> bytes:
    """A well-formed RIFF/WAVE whose 'fmt ' chunk names `format_tag` (e.g. 0x0161, WMA)."""
    fmt = struct.pack("<HHIIHH", format_tag, channels, rate, rate * block_align // 1024,
                      block_align, 16) + struct.pack("<H", len(extra)) + extra
    chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(body)) + body
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks


def write_streaming_wav(path: Path, seconds: int, rate: int, block_seconds: int = 60) -> None:
    """A long mono 16-bit WAV written block by block, so the test itself stays small in memory."""
    rng = np.random.default_rng(1)
    with sf.SoundFile(path, "w", samplerate=rate, channels=1, subtype="PCM_16") as out:
        t = np.arange(block_seconds * rate) / rate
        for block in range(seconds // block_seconds):
            tone = 0.2 * np.sin(2 * np.pi * (110 + block) * t)
            out.write((tone + 0.01 * rng.standard_normal(t.size)).astype(np.float32))


def write_bytes(path: Path | bytes, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)


def make_link_loop(folder: Path) -> tuple[Path, Path]:
    """Two links naming each other (a.wav -> b.wav -> a.wav) and a folder linking to itself."""
    first, second = folder / "loop_a.wav", folder / "loop_b.wav"
    os.symlink(second.name, first)
    os.symlink(first.name, second)
    os.symlink(".", folder / "again")  # a folder loop: the scan must end, finding nothing twice
    return first, second
