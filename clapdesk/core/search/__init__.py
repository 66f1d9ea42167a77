"""Answering a query: parsing it, ranking by vector and constraints, sound-alikes and duplicates."""
