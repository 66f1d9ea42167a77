"""A tiny file cannot make clapdesk take unbounded memory: a sparse WAV whose header claims
2^31-1 Hz is refused with its reason, a 4 GiB recording is auditioned and drawn from its start
and in blocks, and a decode that would need more than the per-file ceiling fails with that.

Memory is measured in a child process (its peak resident set, VmHWM), under an address
space limit so that a build that does read the whole file fails there instead of swamping the
machine.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import tone, write_sound

from clapdesk.core.ingest import audio

# Measured: about 205 MB (the interpreter, numpy, soundfile, soxr, Qt's modules and 115 MB of
# audition buffer). Reading either file whole would take 8 GB (and fail under the 3 GiB limit).
PEAK_LIMIT_MB = 1024


def sparse_wav(path: Path, rate: int, channels: int, data_bytes: int) -> Path:
    """A 16-bit PCM WAV header declaring `data_bytes` of silence, the rest a hole in the file."""
    fmt = struct.pack("<HHIIHH", 1, channels, rate, (rate * channels * 2) & 0xFFFFFFFF,
                      channels * 2, 16)
    header = (b"RIFF" + struct.pack("<I", (36 + data_bytes) & 0xFFFFFFFF) + b"WAVE" + b"fmt "
              + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", data_bytes))
    with open(path, "wb") as handle:
        handle.write(header)
        handle.truncate(len(header) + data_bytes)
    return path


CHILD = r"""
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
from clapdesk.core.ingest import audio
out = {}
try:
    audio.decode_for_index(sys.argv[1], 48000)
    out["absurd_rate"] = "decoded"
except audio.DecodeError as exc:
    out["absurd_rate"] = str(exc)
data, rate = audio.read_for_playback(sys.argv[2])
out["playback_frames"], out["playback_rate"] = int(len(data)), rate
decoded = audio.decode_for_index(sys.argv[2], 48000)
out["windows"] = len(decoded.windows)
import os
os.environ["QT_QPA_PLATFORM"] = "offscreen"
from clapdesk.gui.waveform import file_peaks
out["peaks"] = [len(file_peaks(p, 512)) for p in sys.argv[1:3]]
# VmHWM, not ru_maxrss: Linux carries the parent's high-water mark into ru_maxrss across the
# exec of a vforked child, so a test run that already holds models would be counted here.
status = open("/proc/self/status").read()
out["peak_mb"] = int(status.split("VmHWM:")[1].split()[0]) / 1024
print(json.dumps(out))
"""


@pytest.mark.timeout(300)
def test_sparse_and_huge_wavs_are_read_within_a_memory_bound(tmp_path: Path) -> None:
    absurd = sparse_wav(tmp_path / "absurd_rate.wav", 2**31 - 1, 1, 0xFFFFFFF0 - 64)
    huge = sparse_wav(tmp_path / "four_gib.wav", 48000, 2, 0xFFFFFFF0 - 64)  # 6.2 hours
    done = subprocess.run([sys.executable, "-c", CHILD, str(absurd), str(huge)],
                          capture_output=True, text=True, timeout=280)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout)
    assert out["absurd_rate"] == ("file is damaged: its header claims a sample rate of "
                                  "2,147,483,647 Hz (no audio is above 768,000 Hz)")
    assert out["playback_rate"] == 48000
    assert 0 < out["playback_frames"] * 2 <= audio.PLAYBACK_SAMPLES  # the start, not 4 GiB
    assert out["windows"] == audio.MAX_WINDOWS
    assert all(n > 1 for n in out["peaks"])
    assert out["peak_mb"] < PEAK_LIMIT_MB, out


def test_a_decode_over_the_memory_ceiling_fails_with_that_reason(tmp_path: Path) -> None:
    long_hi_rate = write_sound(tmp_path / "long.wav", tone(40.0, 96000), 96000)
    short = write_sound(tmp_path / "short.wav", tone(2.0, 44100), 44100)
    with pytest.raises(audio.DecodeError, match=r"^file needs about \d+ MB to decode, over the "
                                                r"8 MB allowed per file$"):
        audio.decode_for_index(long_hi_rate, 48000, memory_mb=8)
    assert audio.decode_for_index(short, 48000, memory_mb=8).windows
    # The same file within the default ceiling decodes.
    assert audio.decode_for_index(long_hi_rate, 48000).windows
