"""The map of the library by sound: 2-D positions laid out from the vectors (layout.py), kept in
the catalog and updated for new files by their neighbours (library_map.py)."""
