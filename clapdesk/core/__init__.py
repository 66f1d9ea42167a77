"""The Qt-free heart of clapdesk: audio, model, catalog, index, search and fine-tuning."""

import os

# torch's CPU threads (GNU OpenMP) spin for about 300,000 turns before sleeping whenever they
# wait. Between the model's layers that keeps a core busy doing nothing while the decoders,
# the app's window or a DAW wait for it. A short spin lets them have the core: indexing reached
# 92 % of the model-alone speed against 86 % with the default (the median of eight paired runs
# each, on the project's 2-core machine). libgomp reads the value once, when torch loads, so it
# is set here, before any import of torch; a value the user has set wins.
os.environ.setdefault("GOMP_SPINCOUNT", "10000")
