"""Decoding audio files into what the model and the player need.

Files are decoded with soundfile at their true rate, mixed to mono and resampled with soxr to
the model's rate. Long files are read window by window (seek + read), never loaded whole, so an
hour-long field recording costs a few windows of memory, not gigabytes.
"""

from __future__ import annotations

import errno
import math
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from clapdesk.core.ingest import headers

# Extensions handed to libsndfile. Anything else in a library folder is ignored, not failed.
AUDIO_EXTENSIONS = frozenset(
    {".wav", ".wave", ".bwf", ".aif", ".aiff", ".aifc", ".flac", ".ogg", ".oga", ".opus",
     ".mp3", ".w64", ".rf64", ".caf", ".au", ".snd"}
)

WINDOW_SECONDS = 10.0
# Evenly spaced windows per long file. Six covers a minute-long loop well and bounds the cost of
# an hour-long recording to six model windows.
MAX_WINDOWS = 6
# Analysis (tempo, key, loudness) looks at the start of a file; 30 s is plenty for a sample.
ANALYSIS_SECONDS = 30.0
# The highest rate any recorder or converter writes (DXD and DSD conversions top out at
# 768 kHz). A header claiming more is damaged or hostile: 2^31 Hz would make "30 s" 64
# billion samples.
MAX_SAMPLE_RATE = 768_000
# Float files may go past full scale (1.0); beyond this a sample is not audio but damage.
CLIP_LEVEL = 16.0
# Samples (frames x channels) read from libsndfile at once: reading is in blocks of this, mixed
# down as it goes, so a 1,024-channel file costs no more than a stereo one.
BLOCK_SAMPLES = 1 << 20
# What one decode for indexing may hold (mono at the file's rate, its resampled copies and one
# block), before it starts: a file that would need more is listed as failed with that reason.
DECODE_MEMORY_MB = 512
# Audition plays the start of a very long file: at most this many samples (5 minutes of 48 kHz
# stereo, 115 MB as float32), so a 4 GiB recording never lands in memory whole.
PLAYBACK_SAMPLES = 300 * 48_000 * 2


DAMAGED = "file is damaged or truncated"
DAMAGED_HEADER = "file is damaged: its header cannot be read"
NOT_A_FILE = "not a regular file (a pipe or a device)"

# OS errors that say nothing about the file's content: the drive or share is away, access was
# refused for now, the read timed out. A file that failed with one is tried again every run.
TRANSIENT_ERRNOS = frozenset(
    getattr(errno, name) for name in (
        "EACCES", "EPERM", "EIO", "ENOENT", "ENOTDIR", "ETIMEDOUT", "ENXIO", "ENODEV",
        "ESTALE", "EHOSTDOWN", "EHOSTUNREACH", "ENETDOWN", "ENETUNREACH", "ECONNRESET",
        "ECONNABORTED", "ENOTCONN", "EAGAIN", "EBUSY", "ENOMEDIUM", "EREMOTEIO", "EINTR")
    if hasattr(errno, name))


class DecodeError(Exception):
    """A file that cannot be indexed, with a reason a producer understands."""

    def __init__(self, message: str, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient  # the failure says nothing about the file: try again


def open_regular(path: str | os.PathLike[str]) -> tuple[int, os.stat_result]:
    """A descriptor of `path` for reading and its stat, refusing anything but a regular file.

    Opened without blocking (a pipe swapped in after the scan would wait for a writer for
    ever) and checked on the descriptor itself, so what is read is what was checked.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(
        os, "O_BINARY", 0)
    fd = os.open(path, flags)
    try:
        st = os.fstat(fd)
    except OSError:
        os.close(fd)
        raise
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise DecodeError(NOT_A_FILE)
    return fd, st


def is_transient(exc: BaseException, path: str | os.PathLike[str] | None = None) -> bool:
    """Whether a failure passes: an OS error of the kind a dropped share or drive gives.

    libsndfile reports those as "System error", so the OS is asked directly about the path.
    """
    if isinstance(exc, DecodeError):
        return exc.transient
    if isinstance(exc, OSError) and exc.errno is not None:
        return exc.errno in TRANSIENT_ERRNOS
    if path is None:
        return False
    try:
        os.close(open_regular(path)[0])
    except OSError as os_exc:
        return os_exc.errno in TRANSIENT_ERRNOS
    except DecodeError:
        return False
    return False


@dataclass(frozen=True)
class AudioInfo:
    duration: float
    sample_rate: int
    channels: int
    frames: int
    format: str
    subtype: str


@dataclass
class DecodedAudio:
    """What indexing needs of one file: model windows and a stretch for analysis."""

    info: AudioInfo
    windows: list[np.ndarray]  # mono float32 at the model's rate, each at most WINDOW_SECONDS
    analysis: np.ndarray  # mono float32 at `analysis_rate`, the first ANALYSIS_SECONDS
    analysis_rate: int


def is_audio_path(path: str | os.PathLike[str]) -> bool:
    return os.path.splitext(os.fspath(path))[1].lower() in AUDIO_EXTENSIONS


def native_path(path: str | os.PathLike[str]) -> str | bytes:
    """The path as libsndfile must get it. soundfile encodes str paths as strict UTF-8, which
    fails on names that are not valid UTF-8 (kept as surrogates); their bytes always work."""
    return os.fspath(path) if os.name == "nt" else os.fsencode(path)


def explain_error(exc: BaseException, path: str | os.PathLike[str]) -> str:
    """Turn libsndfile's and the OS's wording into a reason a producer understands.

    libsndfile says "Malformed 'fmt ' chunk" both for a damaged header and for a codec it does
    not know, so a WAV's own header is read to tell the two apart. Only the library's message
    is matched, never the file name (a file called "codec.wav" must not change the reason).
    """
    if isinstance(exc, DecodeError):
        return str(exc)
    if isinstance(exc, FileNotFoundError):
        return "file vanished while it was being indexed"
    if isinstance(exc, PermissionError):
        return "permission denied: clapdesk may not read this file"
    if isinstance(exc, IsADirectoryError):
        return "is a folder, not a file"
    if isinstance(exc, MemoryError):
        return "file is too large to decode"
    try:  # libsndfile says only "System error." when the OS refused: ask the OS directly
        with open(path, "rb"):
            pass
    except (FileNotFoundError, PermissionError, IsADirectoryError) as os_exc:
        return explain_error(os_exc, path)
    except OSError as os_exc:
        return f"could not read the file: {os_exc.strerror or os_exc}"
    try:
        size = os.path.getsize(path)
    except OSError:
        size = -1
    if size == 0:
        return "file is empty"
    problem = headers.header_problem(path, size)
    if problem:
        return problem
    try:
        kind = headers.container(path)
    except OSError:
        kind = None
    detail = _library_message(exc).lower()
    if "not a regular file" in detail and os.path.isfile(path):
        # libsndfile's words when a compressed stream (MP3 in a WAV, say) has no valid frame.
        return "file is damaged: its audio data cannot be decoded"
    if "format not recognised" in detail or "unknown format" in detail:
        return DAMAGED_HEADER if kind in ("aiff", "flac", "ogg") else "not an audio file"
    if "unsupported encoding" in detail or "unimplemented" in detail:
        # A FLAC or Ogg Vorbis file libsndfile cannot make sense of is damaged, not exotic.
        if kind in ("flac", "ogg", "mp3"):
            return DAMAGED
        return "unsupported codec in AIFF container" if kind == "aiff" else "unsupported codec"
    if "truncat" in detail or "end of file" in detail or "premature" in detail:
        return "file is truncated"
    if "lost sync" in detail or "decoder" in detail or "internal error" in detail:
        return DAMAGED
    if "malformed" in detail or "error in" in detail or "header" in detail or "bad" in detail:
        return DAMAGED_HEADER
    if isinstance(exc, OSError):
        return f"could not read the file: {exc.strerror or detail}"
    return f"could not decode the file: {detail}"


def _library_message(exc: BaseException) -> str:
    """libsndfile's own words, without the "Error opening '<path>': " prefix soundfile adds."""
    message = getattr(exc, "error_string", None)
    if isinstance(message, str) and message:
        return message
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc).rsplit("': ", 1)[-1]


def positive_setting(variable: str, default: float) -> float:
    """A positive number from the environment (a decode limit), else the default: a typo in
    the variable must not turn a limit off."""
    try:
        value = float(os.environ.get(variable, default))
    except ValueError:
        return default
    return value if value > 0 else default


def decode_memory_mb() -> float:
    """The per-file memory ceiling of a decode: DECODE_MEMORY_MB or $CLAPDESK_DECODE_MEMORY_MB."""
    return positive_setting("CLAPDESK_DECODE_MEMORY_MB", DECODE_MEMORY_MB)


def _check_rate(rate: int) -> None:
    if rate > MAX_SAMPLE_RATE:
        raise DecodeError(f"file is damaged: its header claims a sample rate of {rate:,} Hz "
                          f"(no audio is above {MAX_SAMPLE_RATE:,} Hz)")


def _info_from(rate: int, channels: int, frames: int, fmt: str, subtype: str) -> AudioInfo:
    duration = frames / rate if rate > 0 else 0.0
    return AudioInfo(duration, int(rate), int(channels), int(frames), str(fmt), str(subtype))


def to_mono(block: np.ndarray) -> np.ndarray:
    """Average the channels and make NaN/Inf harmless (broken float files exist)."""
    if block.ndim == 2 and block.shape[1] > 1:
        # Column by column: numpy's mean over a short last axis is a strided reduction, about
        # ten times slower, and this runs for every window of every file while the model works.
        mono = block[:, 0].astype(np.float32)
        for channel in range(1, block.shape[1]):
            mono += block[:, channel]
        mono *= np.float32(1.0 / block.shape[1])
    else:
        mono = block.reshape(-1).astype(np.float32)
    return sanitise(np.ascontiguousarray(mono, dtype=np.float32))


def sanitise(samples: np.ndarray) -> np.ndarray:
    """NaN and Inf as silence, and every sample within +-CLIP_LEVEL (in place where it can).

    Broken float files hold NaN; hostile ones hold finite 3.4e38, which the mix-down or the
    resampler's filter would carry to Inf and NaN, and on into a vector that poisons search.
    """
    if not np.isfinite(samples).all():
        samples = np.nan_to_num(samples, nan=0.0, posinf=0.0, neginf=0.0)
    np.clip(samples, -CLIP_LEVEL, CLIP_LEVEL, out=samples)
    return samples


def resample(mono: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    if from_rate == to_rate or mono.size == 0:
        return mono.astype(np.float32, copy=False)
    out = soxr.resample(mono, from_rate, to_rate, quality="HQ")
    return np.ascontiguousarray(out, dtype=np.float32)


def window_starts(frames: int, window: int, max_windows: int = MAX_WINDOWS) -> list[int]:
    """Evenly spaced window starts covering a file: deterministic, so one file, one vector."""
    if frames <= window:
        return [0]
    count = min(math.ceil(frames / window), max_windows)
    if count == 1:
        return [0]
    last = frames - window
    return [round(i * last / (count - 1)) for i in range(count)]


def decode_for_index(
    path: str | os.PathLike[str],
    model_rate: int,
    analysis_rate: int = 22050,
    window_seconds: float = WINDOW_SECONDS,
    max_windows: int = MAX_WINDOWS,
    memory_mb: float | None = None,
) -> DecodedAudio:
    """Read the windows the model embeds and the stretch analysis looks at."""
    if headers.data_cut_short(path):
        raise DecodeError("file is truncated")
    try:
        with sf.SoundFile(native_path(path)) as handle:
            info = _info_from(handle.samplerate, handle.channels, handle.frames,
                              handle.format, handle.subtype)
            if info.frames <= 0 or info.sample_rate <= 0:
                # A header alone is an empty recording; kilobytes that yield nothing are broken.
                big = os.path.getsize(path) > 4096
                raise DecodeError(DAMAGED if big else "file contains no audio")
            _check_rate(info.sample_rate)
            native_window = max(1, round(window_seconds * info.sample_rate))
            starts = window_starts(info.frames, native_window, max_windows)
            analysis_frames = min(info.frames, round(ANALYSIS_SECONDS * info.sample_rate))
            _check_memory(analysis_frames, native_window, info, model_rate, analysis_rate,
                          decode_memory_mb() if memory_mb is None else memory_mb)
            windows: list[np.ndarray] = []
            head: np.ndarray | None = None
            for start in starts:
                length = min(native_window, info.frames - start)
                if start == 0 and analysis_frames > length:
                    # Read the analysis stretch once and cut the first window from it.
                    head = _read(handle, 0, analysis_frames)
                    mono = head[:length]
                else:
                    mono = _read(handle, start, length)
                    if start == 0:
                        head = mono[:analysis_frames]
                windows.append(resample(mono, info.sample_rate, model_rate))
    except DecodeError:
        raise
    except Exception as exc:
        raise DecodeError(explain_error(exc, path)) from exc
    if not windows or all(w.size == 0 for w in windows):
        raise DecodeError("file is truncated: no audio could be read")
    assert head is not None
    return DecodedAudio(info, windows, resample(head, info.sample_rate, analysis_rate), analysis_rate)


def _check_memory(analysis_frames: int, window: int, info: AudioInfo, model_rate: int,
                  analysis_rate: int, ceiling: float) -> None:
    """Refuse, before reading, a decode that would hold more than the per-file ceiling."""
    longest = max(analysis_frames, min(window, info.frames))
    resampled = longest * max(model_rate, analysis_rate) / info.sample_rate
    needed = 4 * (longest + 2 * resampled + BLOCK_SAMPLES) / 1e6
    if needed > ceiling:
        raise DecodeError(f"file needs about {needed:,.0f} MB to decode, over the "
                          f"{ceiling:,.0f} MB allowed per file")


def _read(handle: sf.SoundFile, start: int, length: int) -> np.ndarray:
    """Frames [start, start + length) mixed to mono, read block by block."""
    if start:
        handle.seek(start)
    elif handle.tell() != 0:
        handle.seek(0)
    mono = np.empty(length, np.float32)
    step = max(1024, BLOCK_SAMPLES // max(1, handle.channels))
    got = 0
    while got < length:
        block = handle.read(min(step, length - got), dtype="float32", always_2d=True)
        if block.shape[0] == 0:
            break
        mono[got:got + block.shape[0]] = to_mono(block)
        got += block.shape[0]
    if got == 0 and length > 0:
        raise DecodeError("file is truncated: its audio data ends early")
    return mono[:got]


def read_for_playback(path: str | os.PathLike[str],
                      max_samples: int = PLAYBACK_SAMPLES) -> tuple[np.ndarray, int]:
    """The file at its own rate, channels kept (at most two), for audition: all of it, or the
    start of a very long one (at most `max_samples` samples), read block by block."""
    try:
        with sf.SoundFile(native_path(path)) as handle:
            rate, channels = int(handle.samplerate), handle.channels
            _check_rate(rate)
            kept = channels if channels <= 2 else 1
            frames = handle.frames if handle.frames > 0 else max_samples // kept
            data = np.empty((min(frames, max_samples // kept), kept), np.float32)
            step = max(1024, BLOCK_SAMPLES // max(1, channels))
            got = 0
            while got < len(data):
                block = handle.read(min(step, len(data) - got), dtype="float32", always_2d=True)
                if block.shape[0] == 0:
                    break
                if channels > 2:
                    block = to_mono(block)[:, None]
                data[got:got + len(block)] = sanitise(block)
                got += len(block)
    except DecodeError:
        raise
    except Exception as exc:
        raise DecodeError(explain_error(exc, path)) from exc
    return np.ascontiguousarray(data[:got]), rate


def write_region(source: np.ndarray, rate: int, start: int, end: int, target: Path) -> Path:
    """Write frames [start, end) as a 24-bit WAV (a dragged waveform region)."""
    start, end = max(0, start), min(len(source), end)
    if end <= start:
        raise ValueError("the selected region is empty")
    target.parent.mkdir(parents=True, exist_ok=True)
    sf.write(os.fspath(target), source[start:end], rate, subtype="PCM_24")
    return target
