"""Every event topic uploadd publishes, by name: what a consumer binds to.

A file's life: ``file.stored`` (with its record, in the transaction that
stores it), ``file.replicated`` (one per verified copy), ``file.deleted``.
A rendition's: ``transcode.started``, ``.progress``, ``.done``, ``.failed``.
A presenter's: ``slideshow.control``; a share link's end: ``share.revoked``.

Announcements between the instances sharing a bus (never events: no
consumer binds them): an upload's progress, a failure of background work
for the admin console, a failed sign-in for the throttle, events waiting in
the outbox for the instance that relays it, the repair leader's last pass
and the copies it asks of the instance holding a file's only copy.
"""

from __future__ import annotations

FILE_STORED = "file.stored"
FILE_REPLICATED = "file.replicated"
FILE_DELETED = "file.deleted"

TRANSCODE_STARTED = "transcode.started"
TRANSCODE_PROGRESS = "transcode.progress"
TRANSCODE_DONE = "transcode.done"
TRANSCODE_FAILED = "transcode.failed"

SLIDESHOW_CONTROL = "slideshow.control"
SHARE_REVOKED = "share.revoked"

UPLOAD_PROGRESS = "upload.progress"
WORK_FAILED = "work.failed"
SIGNIN_FAILED = "signin.failed"
OUTBOX_WAITING = "outbox.waiting"
REPAIR_PASSED = "repair.passed"
REPAIR_WANTED = "repair.wanted"
