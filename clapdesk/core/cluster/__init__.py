"""Indexing an archive on a Ray cluster into Parquet shards, and merging shards into a library.

Everything here but shard reading needs the optional `cluster` extra (Ray, pyarrow, fsspec),
imported only when a cluster verb runs: the desktop app never loads them.
"""
