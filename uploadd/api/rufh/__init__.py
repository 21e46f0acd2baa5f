"""Resumable Uploads for HTTP (draft-ietf-httpbis-resumable-upload) on ``/uploads/``.

The IETF draft beside tus, on the same resumable core and the same upload
store: creation by ``POST /uploads/`` carrying ``Upload-Complete``
(``104 Upload Resumption Supported`` with the upload's ``Location`` as soon
as the upload exists, before the body is read), offset retrieval (``HEAD``
or ``GET /uploads/<id>``), append (``PATCH`` with ``Upload-Offset`` and
``Upload-Complete``), cancellation (``DELETE``). A new request for an
upload ends one still streaming into it and goes on once what that one
carried is recorded (:meth:`Writers.take_over`), as the draft recommends,
where tus answers 423.

Every interop version a client sends today is spoken, each with its own
header names and rules (:data:`VERSIONS`); a request without
``Upload-Draft-Interop-Version`` is taken as the latest draft. A version
not spoken gets an ordinary answer: its body becomes a file, no 104, no
upload resource.

Which requests are the draft's and which tus's is decided by
:func:`speaks`: a request carrying ``Tus-Resumable`` is tus; one carrying
the draft's fields, or about an upload the draft created, is the draft's.
"""

from uploadd.api.rufh.uploads import DraftBody, DraftUploads, NotDraft, Replay
from uploadd.api.rufh.versions import (
    INTEROP,
    LATEST,
    PROBLEMS,
    PROTOCOL,
    VERSIONS,
    Interop,
    completeness,
    disposition_name,
    has_draft_fields,
    interop_of,
    speaks,
)

__all__ = [
    "INTEROP",
    "LATEST",
    "PROBLEMS",
    "PROTOCOL",
    "VERSIONS",
    "DraftBody",
    "DraftUploads",
    "Interop",
    "NotDraft",
    "Replay",
    "completeness",
    "disposition_name",
    "has_draft_fields",
    "interop_of",
    "speaks",
]
