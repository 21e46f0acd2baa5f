"""Resumable uploads (tus 1.0 and Content-Range chunks): state and the end."""
