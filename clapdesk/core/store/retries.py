"""What the indexer needs to decide whether a failed file is tried again.

A failure that passes (a dropped share, a drive unplugged mid-read, a decode past its time
limit) is tried on every run. A failure of the file's content is tried again once the file
changes in any way: size and mtime, as every file is checked, and its ctime as well, which
moves on a change of owner, mode or content that an mtime-preserving copy hides.
"""

from __future__ import annotations

from clapdesk.core.store.catalog import Catalog, decode_path


def failed_stamps(catalog: Catalog, root_id: int) -> dict[str, tuple[int | None, bool]]:
    """path -> (ctime_ns when it failed, whether the failure passes) for a root's failures."""
    rows = catalog.db.execute(
        "SELECT path, ctime_ns, error_transient FROM files "
        "WHERE root_id = ? AND error IS NOT NULL", (root_id,))
    return {decode_path(p): (None if c is None else int(c), bool(t)) for p, c, t in rows}
