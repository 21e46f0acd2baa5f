"""noded: the storage node daemon (AMP, an rsync daemon, signed downloads)."""
