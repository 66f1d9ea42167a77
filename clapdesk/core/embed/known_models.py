"""The public CLAP checkpoints clapdesk knows, and what a producer should know about each.

Shown in Settings and by `clapdesk models available`. Sizes are the float32 weights (published
parameter count x 4 bytes), which is what is downloaded whichever weights file the hub serves.
Text spreads are the public figures the health check is calibrated on (see health.py); the
health check itself measures every model that loads, known here or not.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

RECOMMENDED = "laion/larger_clap_general"
# Indexing speed of the HTSAT-base tower (larger_clap_*), float32 on this project's 2-core CPU,
# from the README's benchmark (median 6.2 files/s). Used only to estimate a re-embedding.
HTSAT_BASE_FILES_PER_SECOND = 6.2


@dataclass(frozen=True)
class KnownModel:
    id: str
    download_mb: int
    audio_tower: str
    good_at: str
    problems: tuple[str, ...] = ()
    text_spread: float | None = None  # public figure, mean pairwise cosine of unrelated captions
    text_search: bool = True  # False: its text tower is reported untrained

    def to_json(self) -> dict[str, object]:
        return {"id": self.id, "download_mb": self.download_mb, "audio_tower": self.audio_tower,
                "good_at": self.good_at, "problems": list(self.problems),
                "text_spread": self.text_spread, "text_search": self.text_search,
                "recommended": self.id == RECOMMENDED}

    def summary(self) -> str:
        """One or two lines for Settings."""
        text = f"{self.audio_tower}, {self.download_mb} MB download. {self.good_at}."
        return text + (" " + " ".join(self.problems) if self.problems else "")


KNOWN_MODELS: tuple[KnownModel, ...] = (
    KnownModel(
        "laion/larger_clap_general", 776, "HTSAT-base (patch 128, depths 2,2,12,2)",
        "General sounds, instruments and music: text search and sound-alikes both work",
        text_spread=0.29),
    KnownModel(
        "laion/larger_clap_music", 776, "HTSAT-base (patch 128, depths 2,2,12,2)",
        "Sound-alikes in music (the audio tower is trained)",
        problems=("Its text tower is reported untrained (unrelated captions embed at cosine "
                  "0.999): text search would be noise, so clapdesk turns it off.",),
        text_spread=0.999, text_search=False),
    KnownModel(
        "laion/clap-htsat-unfused", 614, "HTSAT-tiny (patch 96, depths 2,2,6,2)",
        "General sounds with a smaller audio tower; text search works",
        text_spread=0.18),
    KnownModel(
        "laion/clap-htsat-fused", 614, "HTSAT-tiny with feature fusion (4-channel mel)",
        "General sounds; its fusion branch was trained for clips over 10 s",
        problems=("As shipped it marks a random clip of each batch as 'longer', so vectors "
                  "change from run to run; clapdesk never marks a window of 10 s or less as "
                  "longer, which makes its vectors repeatable.",)),
)


def known(ref: str) -> KnownModel | None:
    """The table's entry for a hub id (a local folder is not in the table)."""
    if os.path.isdir(ref):
        return None
    return next((m for m in KNOWN_MODELS if m.id.lower() == ref.lower()), None)


def recommended_instead(ref: str) -> str:
    """What to use when `ref`'s text search does not work."""
    return RECOMMENDED if ref.lower() != RECOMMENDED else "another CLAP model"


def reembed_seconds(files: int) -> float:
    """Rough time to embed `files` again with an HTSAT-base model on a 2-core CPU."""
    return files / HTSAT_BASE_FILES_PER_SECOND


def describe_duration(seconds: float) -> str:
    if seconds < 90:
        return "about a minute" if seconds >= 30 else "under a minute"
    minutes = seconds / 60
    if minutes < 90:
        return f"about {round(minutes)} minutes"
    return f"about {minutes / 60:.1f} hours"
