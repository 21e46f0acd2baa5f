"""uploadd: an event-driven file server."""

__version__ = "0.1.0"
