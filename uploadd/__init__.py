"""uploadd: an event-driven file server."""

from noded import __version__

__all__ = ["__version__"]
