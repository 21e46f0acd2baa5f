"""Where uploadd keeps things: the metadata store seam and the blob layout."""
