"""Audition in the project's tempo and key: what to do to a file (plan), doing it (stretch,
render), the rendered audio kept (cache), and the Ableton Link session the tempo may follow."""
