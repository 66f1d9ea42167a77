"""The CLAP model: finding and checking its files, loading it, log-mel inputs, fast CPU layers, and vectors for audio and text."""
