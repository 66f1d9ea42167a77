"""The Qt-free heart of clapdesk: audio, model, catalog, index, search and fine-tuning."""
