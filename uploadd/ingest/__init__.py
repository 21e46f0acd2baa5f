"""Streaming request bodies to disk: the gate, the sinks, progress."""
