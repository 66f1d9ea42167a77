"""What this CPU's instruction set can do for the audio tower, read once from the OS."""

from __future__ import annotations

from functools import lru_cache

# Instructions that multiply 8-bit numbers and add the products up in 32 bits. Without them
# (AVX2 alone), oneDNN's int8 kernels use AVX2's 8-bit multiply-add, whose pairwise sums
# saturate at 16 bits: two large products in a row are clipped, and the answer is wrong.
INT8_DOT_FLAGS = ("amx_int8", "avx512_vnni", "avx_vnni")


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (Linux names); empty where the OS cannot be asked cheaply."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def has_int8_dot(flags: frozenset[str] | None = None) -> bool:
    """True where 8-bit products are summed in 32 bits without clipping (VNNI or AMX)."""
    flags = cpu_flags() if flags is None else flags
    return any(flag in flags for flag in INT8_DOT_FLAGS)


@lru_cache(maxsize=1)
def cpu_model_line() -> str:
    """The OS's "model name" line for this CPU, as it stands (empty where it cannot be read)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as cpuinfo:
            return next((line for line in cpuinfo if line.startswith("model name")), "")
    except OSError:
        return ""


@lru_cache(maxsize=1)
def cpu_identity() -> str:
    """Short and stable per CPU model and instruction set (all its flags)."""
    import hashlib

    text = f"{cpu_model_line().strip()}|{','.join(sorted(cpu_flags()))}"
    return hashlib.blake2b(text.encode(), digest_size=6).hexdigest()
