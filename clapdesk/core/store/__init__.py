"""Everything kept on disk: the SQLite catalog, the vector index cache, user tags and the folders they live in."""
