"""Is a model's text tower trained? Checked before text search trusts it.

A CLAP whose text tower never learnt anything still loads, still gives every caption a vector,
and text search then returns the same arbitrary order for every query. laion/larger_clap_music
is reported to ship such a tower. The symptom is easy to measure: captions that have nothing in
common embed almost alike. So a fixed set of unrelated probe captions is embedded and the mean
pairwise cosine of their vectors (the "text spread") is compared with a limit.

The limit: public figures put trained CLAP text towers at a spread of 0.18
(laion/clap-htsat-unfused) to 0.29 (laion/larger_clap_general), untrained ones above 0.98
(0.999 for larger_clap_music; random-weight towers give 0.98-1.0). 0.7 sits 2.4x above the
worst trained figure, so a fine-tuned head that pulls captions together a little is not
refused, and far below the untrained ones, where cos 0.7 already means every caption lies in a
cone of about 45 degrees. A text head fine-tuned on top of an untrained tower cannot get under
it either: the tower hands the head the same features for every caption.

The result is kept per model key (the exact commit or weights digest, plus any fine-tuned
version), so later starts pay nothing. Measuring is one text batch of the twelve probes: a few
milliseconds for the tiny test model; for the full-size larger_clap_general shape it took 3.9 s
on this project's 2-core machine while other jobs kept it busy (load average above 6), so the
cache matters for the first window of every later start.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from clapdesk.core.embed.hub import ModelError
from clapdesk.core.store.known_facts import KnownFacts

log = logging.getLogger(__name__)

# Captions that share nothing: sounds from different worlds, worded differently.
PROBE_CAPTIONS: tuple[str, ...] = (
    "a dog barking in the distance",
    "heavy rain on a tin roof",
    "a church organ playing a chord",
    "a punchy kick drum",
    "a man speaking on the telephone",
    "a distorted electric guitar riff",
    "birds singing at dawn",
    "a car engine starting",
    "a soft piano melody",
    "a crowd cheering in a stadium",
    "a glass shattering on the floor",
    "a deep sub bass",
)
TEXT_SPREAD_LIMIT = 0.7
_PROBES_ID = hashlib.sha1("\n".join(PROBE_CAPTIONS).encode()).hexdigest()[:8]


class TextSearchOff(ModelError):
    """Text search was asked of a model whose text tower failed the health check."""


@dataclass(frozen=True)
class ModelHealth:
    model_key: str
    text_ok: bool
    text_spread: float  # mean pairwise cosine of the probe captions' vectors
    limit: float = TEXT_SPREAD_LIMIT
    probes: int = len(PROBE_CAPTIONS)
    seconds: float = 0.0  # what measuring took when it was measured
    cached: bool = False  # read from the cache on this start

    def to_json(self) -> dict[str, object]:
        return {"text_ok": self.text_ok, "text_spread": round(self.text_spread, 4),
                "limit": self.limit, "probes": self.probes, "model_key": self.model_key,
                "seconds": round(self.seconds, 4), "cached": self.cached}


def text_spread(vectors: np.ndarray) -> float:
    """Mean cosine over all pairs of different rows (rows need not be normalised)."""
    rows = np.asarray(vectors, np.float64)
    rows = rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)
    n = len(rows)
    if n < 2:
        raise ValueError("the spread needs at least two vectors")
    sims = rows @ rows.T
    return float((sims.sum() - np.trace(sims)) / (n * (n - 1)))


def measure(embed_text: Callable[[Sequence[str]], np.ndarray], model_key: str) -> ModelHealth:
    started = time.perf_counter()
    vectors = embed_text(list(PROBE_CAPTIONS))
    spread = text_spread(vectors)
    ok = bool(np.isfinite(spread)) and spread <= TEXT_SPREAD_LIMIT
    return ModelHealth(model_key, ok, spread, seconds=time.perf_counter() - started)


def cached(model_key: str) -> ModelHealth | None:
    """The health measured before for `model_key`, or None."""
    kept = _facts().get(f"{model_key} {_PROBES_ID}")
    if isinstance(kept, dict):
        try:
            return ModelHealth(**{**kept, "cached": True})
        except TypeError:
            pass  # written by another clapdesk version: measure again
    return None


def check(embed_text: Callable[[Sequence[str]], np.ndarray], model_key: str) -> ModelHealth:
    """The health of the text tower and head behind `model_key`, from the cache when known."""
    known = cached(model_key)
    if known is not None:
        return known
    health = measure(embed_text, model_key)
    if not health.text_ok:
        log.warning("the text tower of %s looks untrained (text spread %.3f > %.2f)",
                    model_key, health.text_spread, TEXT_SPREAD_LIMIT)
    _facts().put(f"{model_key} {_PROBES_ID}", {**asdict(health), "cached": False})
    return health


def refusal(model_name: str, health: ModelHealth, fine_tuned: bool = False) -> str:
    """The one line a producer reads when text search is off for this model."""
    from clapdesk.core.embed.known_models import recommended_instead

    if fine_tuned:
        fix = "go back to the base model (clapdesk models revert, or Library › Revert to the base model)"
    else:
        fix = (f"switch to {recommended_instead(model_name)} (clapdesk --model "
               f"{recommended_instead(model_name)} index, or Settings › Model); "
               "switching re-embeds the library")
    return (f"Text search is off for {model_name}: its text tower embeds every description "
            f"alike (spread {health.text_spread:.3f}, trained models stay under "
            f"{health.limit:g}), so results would be noise. Sound-alikes still work. "
            f"To search by description, {fix}.")


def _facts() -> KnownFacts:
    return KnownFacts("model-health")
