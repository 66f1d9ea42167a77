"""The `clapdesk doctor` verb: versions, device, model and library state in one report.

It is where a producer looks when something is wrong, so it reports a damaged catalog or an
unavailable model as what it found rather than failing on them.
"""

from __future__ import annotations

import argparse
from typing import Any

from clapdesk import __version__
from clapdesk.cli import open_library, result_path


def cmd_doctor(args: argparse.Namespace) -> dict[str, Any]:
    import platform

    import hnswlib  # noqa: F401
    import soundfile
    import torch
    import transformers

    from clapdesk.core.embed.embedder import pick_device
    from clapdesk.core.embed.hub import ModelError
    from clapdesk.core.store.integrity import quick_check

    library = open_library(args)
    try:
        catalog_path = library.paths.catalog
        result: dict[str, Any] = {
            "clapdesk": __version__, "python": platform.python_version(),
            "torch": torch.__version__, "transformers": transformers.__version__,
            "libsndfile": soundfile.__libsndfile_version__,
            "device": pick_device(args.device), "library": str(library.paths.root),
            "catalog_bytes": catalog_path.stat().st_size if catalog_path.exists() else 0,
            "catalog_check": quick_check(library.catalog) or "ok",
            **_catalog_counts(library.catalog),
            "model": library.model_ref,
        }
        try:
            identity = library.identity
            result.update(model_state="available", model_folder=identity.folder,
                          model_revision=identity.revision, model_key=library.model_key)
            result["model_health"] = _model_health(library)
        except ModelError as exc:
            result.update(model_state="unavailable", model_error=str(exc))
    finally:
        library.close()
    if not args.json:
        width = max(map(len, result))
        for key, value in result.items():
            print(f"{key:>{width}}: {'unknown' if value is None else value}")
    return result


def _catalog_counts(catalog: Any) -> dict[str, Any]:
    """The library's counts and folders; None for each, and the reason, where a damaged page
    of the catalog holds them: doctor is where a producer looks when the catalog is damaged."""
    import sqlite3

    from clapdesk.core.store.integrity import DAMAGED_ADVICE

    try:
        return {"files": catalog.count_files(), "failed": len(catalog.failures()),
                "folders": [result_path(p) for _, p in catalog.roots()]}
    except sqlite3.DatabaseError as exc:
        return {"files": None, "failed": None, "folders": None,
                "catalog_unreadable": f"the catalog could not be read ({exc}). {DAMAGED_ADVICE}."}


def _model_health(library: Any) -> dict[str, Any]:
    """The text tower's health check, from its cache when this model was checked before (a
    doctor run then loads no model); otherwise the model is loaded and checked."""
    from clapdesk.core.embed import health
    from clapdesk.core.embed.hub import ModelError

    known = health.cached(library.model_key)
    if known is None:
        try:
            known = library.embedder().text_health
        except ModelError as exc:
            return {"text_ok": None, "text_spread": None, "error": str(exc)}
    return known.to_json()
