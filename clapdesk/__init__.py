"""clapdesk: find sounds in your own sample library by describing them."""

__version__ = "0.1.0"
