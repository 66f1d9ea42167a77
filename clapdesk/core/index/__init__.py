"""Bringing the catalog up to date with the folders: decoding in worker processes ahead of batched embedding."""
