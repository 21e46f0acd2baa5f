"""Workers reacting to events: pushes (webhooks, live) and, later, transcodes."""
