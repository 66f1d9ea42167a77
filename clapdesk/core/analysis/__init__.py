"""What a sound tells without the model: tempo, key, kind, loudness and brightness, and the words in its folders and name."""
