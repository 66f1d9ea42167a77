"""Reading audio containers' headers without libsndfile, to say what is wrong with a file.

libsndfile reports a damaged header and a codec it does not know in the same words ("Malformed
'fmt ' chunk", "unimplemented format"), and quietly plays a file cut off in its data as if it
were shorter. A few bytes of the header tell these apart, cheaply and without decoding.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

# WAV format tags libsndfile decodes; anything else inside a WAV is a codec it does not read.
_READABLE_WAV_CODECS = frozenset({0x0001, 0x0002, 0x0003, 0x0006, 0x0007, 0x0011, 0x0031,
                                  0x0040, 0x0045, 0x0055, 0xFFFE})
_WAV_CODEC_NAMES = {0x0050: "MPEG audio", 0x0092: "AC-3", 0x00FF: "AAC", 0x0160: "WMA",
                    0x0161: "WMA", 0x0162: "WMA Pro", 0x0163: "WMA Lossless", 0x1610: "AAC",
                    0x2000: "AC-3", 0x2001: "DTS", 0x674F: "Vorbis", 0xF1AC: "FLAC"}
# Codecs found in Ogg files that libsndfile does not read (it reads Vorbis, Opus and FLAC).
_OTHER_OGG_CODECS = ((b"Speex   ", "Speex"), (b"\x80theora", "Theora video"))
# Slack for writers that round a declared size up.
_SLACK = 64


@dataclass(frozen=True)
class WavLayout:
    """What a WAV's header says."""

    format_tag: int | None  # None: the header ends before a complete 'fmt ' chunk
    data_declared: int | None  # None: no 'data' chunk before the end of the file
    data_available: int


def container(path: str | os.PathLike[str]) -> str | None:
    """'wav', 'aiff', 'flac', 'ogg' or 'mp3' by the file's first bytes; None for anything else."""
    with open(path, "rb") as handle:
        head = handle.read(12)
    if head[:4] in (b"RIFF", b"RIFX", b"RF64"):
        return "wav"
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "aiff"
    if head[:4] == b"fLaC":
        return "flac"
    if head[:4] == b"OggS":
        return "ogg"
    if head[:3] == b"ID3" or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return "mp3"
    return None


def wav_layout(path: str | os.PathLike[str]) -> WavLayout | None:
    """The chunks of a RIFF/RF64 WAVE file, or None when the file is not one."""
    with open(path, "rb") as handle:
        head = handle.read(12)
        if head[:4] not in (b"RIFF", b"RIFX", b"RF64") or (len(head) == 12 and head[8:12] != b"WAVE"):
            return None
        size = os.fstat(handle.fileno()).st_size
        endian = ">" if head[:4] == b"RIFX" else "<"
        tag: int | None = None
        big_data: int | None = None
        pos = 12
        while len(head) == 12 and pos + 8 <= size:
            handle.seek(pos)
            chunk_id, chunk_len = handle.read(4), struct.unpack(endian + "I", handle.read(4))[0]
            if chunk_id == b"ds64":
                body = handle.read(16)
                if len(body) == 16:
                    big_data = struct.unpack(endian + "Q", body[8:16])[0]
            elif chunk_id == b"fmt ":
                body = handle.read(min(chunk_len, 40))
                if len(body) < 16 or pos + 8 + chunk_len > size:
                    break
                tag = struct.unpack(endian + "H", body[:2])[0]
                if tag == 0xFFFE and len(body) >= 26:  # WAVE_FORMAT_EXTENSIBLE: the real codec
                    sub = struct.unpack(endian + "H", body[24:26])[0]
                    tag = sub if sub in (0x0001, 0x0003) else 0xFFFE
            elif chunk_id == b"data":
                declared = big_data if chunk_len == 0xFFFFFFFF and big_data else chunk_len
                return WavLayout(tag, declared, size - pos - 8)
            pos += 8 + chunk_len + (chunk_len & 1)
        return WavLayout(tag, None, 0)


def wav_header_problem(path: str | os.PathLike[str]) -> str | None:
    """A WAV's header problem in a producer's words, or None when the header looks sound."""
    layout = wav_layout(path)
    if layout is None:
        return None
    if layout.format_tag is None or layout.data_declared is None:
        return "file is truncated"
    if layout.format_tag not in _READABLE_WAV_CODECS:
        name = _WAV_CODEC_NAMES.get(layout.format_tag, f"format 0x{layout.format_tag:04X}")
        return f"unsupported codec in WAV container ({name})"
    if _wav_cut_short(layout):
        return "file is truncated"
    return None


def _wav_cut_short(layout: WavLayout) -> bool:
    # 0 and 0xFFFFFFFF are what recorders write while streaming: not a promise of a length.
    if layout.data_declared is None or layout.data_declared in (0, 0xFFFFFFFF):
        return False
    return layout.data_declared - layout.data_available > _SLACK


def _aiff_cut_short(path: str | os.PathLike[str]) -> bool:
    """An uncompressed AIFF whose sound data ends before the frame count in its COMM chunk."""
    with open(path, "rb") as handle:
        head = handle.read(12)
        size = os.fstat(handle.fileno()).st_size
        frames = channels = bits = None
        compressed = False
        pos = 12
        while pos + 8 <= size:
            handle.seek(pos)
            chunk_id, chunk_len = handle.read(4), struct.unpack(">I", handle.read(4))[0]
            if chunk_id == b"COMM":
                body = handle.read(min(chunk_len, 22))
                if len(body) < 8:
                    return True
                channels, frames, bits = struct.unpack(">hIh", body[:8])
                compressed = head[8:12] == b"AIFC" and body[18:22] not in (
                    b"NONE", b"sowt", b"twos", b"fl32", b"FL32", b"fl64", b"FL64", b"in24",
                    b"in32", b"raw ")
            elif chunk_id == b"SSND":
                if frames is None or compressed or not channels or not bits:
                    return False
                declared = frames * channels * ((bits + 7) // 8)
                return declared - (size - pos - 16) > _SLACK
            pos += 8 + chunk_len + (chunk_len & 1)
        return False


def data_cut_short(path: str | os.PathLike[str]) -> bool:
    """A WAV or AIFF whose audio data ends before its header says: a copy or download cut off.
    libsndfile would play what is there; a producer wants to know the file is broken."""
    try:
        kind = container(path)
        if kind == "wav":
            layout = wav_layout(path)
            return layout is not None and _wav_cut_short(layout)
        if kind == "aiff":
            return _aiff_cut_short(path)
    except (OSError, struct.error):
        pass  # libsndfile will say what is wrong
    return False


def header_problem(path: str | os.PathLike[str], size: int) -> str | None:
    """For a file libsndfile refused: what its header says is wrong, when it says something."""
    try:
        kind = container(path)
        if kind == "wav":
            return wav_header_problem(path)
        if kind is not None and size < 64:
            return "file is truncated"
        if kind == "ogg":
            with open(path, "rb") as handle:
                first_page = handle.read(128)
            for marker, name in _OTHER_OGG_CODECS:
                if marker in first_page:
                    return f"unsupported codec in Ogg container ({name})"
    except (OSError, struct.error):
        return None
    return None
