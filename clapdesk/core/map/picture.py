"""Colours for the map's points and a PNG of the whole map, without Qt (the CLI uses it).

The same palette colours the GUI's points, so `clapdesk map --png` looks like the window.
"""

from __future__ import annotations

import struct
import zlib
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

# Distinct on a dark background; the last is for "everything else" and for files without a value.
PALETTE = np.array([
    (86, 180, 233), (230, 159, 0), (0, 158, 115), (240, 228, 66), (204, 121, 167),
    (213, 94, 0), (0, 114, 178), (160, 220, 120), (255, 140, 140), (170, 150, 255),
    (120, 120, 120),
], np.uint8)
OTHER = len(PALETTE) - 1
BACKGROUND = (24, 26, 30)


def colour_codes(values: Sequence[str | None]) -> tuple[np.ndarray, list[str]]:
    """(a palette index per point, the names of the first indices): the most common values get
    their own colour, the rest share the last one."""
    counts = Counter(v for v in values if v)
    names = [name for name, _ in counts.most_common(OTHER)]
    code_of = {name: i for i, name in enumerate(names)}
    codes = np.fromiter((code_of.get(v, OTHER) if v else OTHER for v in values), np.int64,
                        len(values))
    return codes, names


def fit_to(positions: np.ndarray, width: int, height: int, margin: int = 8) -> np.ndarray:
    """Pixel coordinates that fit the positions into width x height, keeping the aspect."""
    if len(positions) == 0:
        return np.zeros((0, 2), np.float64)
    low, high = positions.min(axis=0), positions.max(axis=0)
    span = np.maximum(high - low, 1e-9)
    scale = min((width - 2 * margin) / span[0], (height - 2 * margin) / span[1])
    centre = (low + high) / 2
    return (positions - centre) * scale + (width / 2, height / 2)


def render(positions: np.ndarray, codes: np.ndarray, width: int = 1200, height: int = 900,
           radius: int = 1) -> np.ndarray:
    """An RGB image (height, width, 3) with each point as a small square in its colour."""
    image = np.empty((height, width, 3), np.uint8)
    image[:] = BACKGROUND
    pixels = np.rint(fit_to(np.asarray(positions, np.float64), width, height)).astype(np.int64)
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            x, y = pixels[:, 0] + dx, height - 1 - (pixels[:, 1] + dy)  # y grows upwards
            ok = (x >= 0) & (x < width) & (y >= 0) & (y < height)
            image[y[ok], x[ok]] = PALETTE[codes[ok]]
    return image


def write_png(path: str | Path, image: np.ndarray) -> None:
    """An 8-bit RGB PNG: the format is three chunks, so no imaging library is needed."""
    height, width, _ = image.shape
    raw = b"".join(b"\x00" + image[row].tobytes() for row in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    Path(path).write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                           + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))
