"""``uploadctl login``, ``upload`` and ``download``: uploadd's HTTP API from a
shell, resumable both ways.

A plain blocking client on the standard library's ``http.client`` with worker
threads, not the reactor: a command that runs, transfers and exits gains
nothing from scheduling, and any machine with Python can run it. It imports
nothing of the server, only speaks its HTTP (tus 1.0.0 at ``/uploads/``,
``/files/{id}`` and its content, ``/auth/token``).
"""
