"""Finding an indexed file from a path a person typed, however it reaches the file.

The catalog holds each file under the path the scan found it by (the library folder as it was
added, plus the names below it). A path typed later may go through a link to that folder, or
the folder may have been added through a link: both name the same file.
"""

from __future__ import annotations

import os

from clapdesk.core.store.catalog import Catalog, FileRecord


def find_file(catalog: Catalog, path: str | os.PathLike[str]) -> FileRecord | None:
    """The file's record: by the path as given, by its real path, or by its place in a library
    folder compared through both folders' real paths."""
    given = os.path.abspath(os.fspath(path))
    record = catalog.file_by_path(given)
    if record is not None:
        return record
    real = os.path.realpath(given)
    record = catalog.file_by_path(real)
    if record is not None:
        return record
    for _, root in catalog.roots():
        real_root = os.path.realpath(root)
        if real == real_root or not real.startswith(real_root.rstrip(os.sep) + os.sep):
            continue
        record = catalog.file_by_path(os.path.join(root, os.path.relpath(real, real_root)))
        if record is not None:
            return record
    return None
