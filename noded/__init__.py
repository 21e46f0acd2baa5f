"""noded: the storage node daemon (AMP, an rsync daemon, signed downloads)."""

__version__ = "0.1.0"
