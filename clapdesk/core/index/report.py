"""What an indexing run tells as it goes (Progress) and when it ends (IndexReport)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from clapdesk.core.store.catalog import display_path

if TYPE_CHECKING:
    from clapdesk.core.index.precision_choice import PrecisionChoice


# What the progress says while the first files of a first indexing also time the reduced
# precisions against float32 (precision_trial.py).
CHOOSING_PRECISION = "choosing precision"


@dataclass
class Progress:
    phase: str  # "scanning", "loading model", "embedding", "saving", "done"
    done: int = 0
    total: int = 0
    current: str = ""
    rate: float = 0.0  # files per second
    eta: float | None = None  # seconds left (see eta.py)
    # While the precision is being chosen the time left is a range: from eta_low, if the run
    # goes on in the fastest candidate, to eta, if it stays in float32.
    eta_low: float | None = None
    # New files already in the catalog (found by name, tags, tempo and key) that the model has
    # not heard yet: they join the sound ranking as their vectors land.
    not_heard: int = 0
    # The reduced precisions being timed against float32 on these files (the automatic
    # precision's trial, on the first files of a first indexing), if any.
    comparing: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        return {"phase": self.phase, "done": self.done, "total": self.total,
                "current": display_path(self.current), "rate": round(self.rate, 2),
                "eta": None if self.eta is None else round(self.eta, 1),
                "eta_low": None if self.eta_low is None else round(self.eta_low, 1),
                "not_heard": self.not_heard, "comparing": list(self.comparing)}


@dataclass
class IndexReport:
    indexed: int = 0
    unchanged: int = 0
    removed: int = 0
    moved: int = 0
    duplicates: int = 0
    reprojected: int = 0
    purged: int = 0  # vanished files forgotten for good (on request, or after a long absence)
    decoded: int = 0  # files read and decoded this run (unchanged and renamed files are not)
    failed: list[tuple[str, str]] = field(default_factory=list)
    offline_roots: list[str] = field(default_factory=list)
    cancelled: bool = False
    seconds: float = 0.0
    precision: PrecisionChoice | None = None  # the automatic choice in force, if any

    def to_json(self) -> dict[str, object]:
        return {
            "indexed": self.indexed, "unchanged": self.unchanged, "removed": self.removed,
            "moved": self.moved, "duplicates": self.duplicates, "decoded": self.decoded,
            "purged": self.purged,
            "failed": [{"path": display_path(p), "error": e} for p, e in self.failed],
            "offline": [display_path(p) for p in self.offline_roots],
            "cancelled": self.cancelled, "seconds": round(self.seconds, 3),
            **({"precision": self.precision.to_json()} if self.precision else {}),
        }
