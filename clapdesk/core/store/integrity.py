"""A quick look for damage in the catalog before anything writes to it.

SQLite reads only the pages a statement needs, so a damaged page (a disk fault, a copy cut
short) can sit unnoticed while indexing keeps writing next to it. `PRAGMA quick_check` reads
every page's structure, without checking indexes against tables: on a 100k-file catalog it
takes about a second, so it is bounded by a time limit and reports when it ran out.
"""

from __future__ import annotations

import sqlite3
import time

from clapdesk.core.store.catalog import Catalog

CHECK_SECONDS = 10.0
# What a producer does with a damaged catalog, wherever clapdesk finds one.
DAMAGED_ADVICE = ("Keep a copy of the library folder somewhere safe (your tags and favourites "
                  "are in its catalog), then delete catalog.sqlite3 from the library folder to "
                  "index afresh")
NOT_FINISHED = "not finished"


def quick_check(catalog: Catalog, seconds: float = CHECK_SECONDS) -> str | None:
    """None when the catalog is sound; NOT_FINISHED when the time ran out; else SQLite's
    description of the damage."""
    deadline = time.monotonic() + seconds
    catalog.db.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
    try:
        rows = catalog.db.execute("PRAGMA quick_check(5)").fetchall()
    except sqlite3.OperationalError as exc:
        if "interrupt" in str(exc):
            return NOT_FINISHED
        return str(exc)
    except sqlite3.DatabaseError as exc:  # "database disk image is malformed"
        return str(exc)
    finally:
        catalog.db.set_progress_handler(None, 0)
    problems = [str(r[0]) for r in rows if r and r[0] != "ok"]
    return "; ".join(problems) or None
