"""The interop versions of the IETF resumable-upload draft: what each one
says where they differ (:data:`VERSIONS`), which one a request speaks, and
the fields only the draft uses."""

from __future__ import annotations

import re
from urllib.parse import unquote

import attrs
from twisted.web.http_headers import Headers

from uploadd.api import fields
from uploadd.api.problems import Problem, bad_request

#: The protocol an upload record names when the draft created it.
PROTOCOL = "ietf"
INTEROP = "Upload-Draft-Interop-Version"
RESUMPTION = (104, "Upload Resumption Supported")
PARTIAL_UPLOAD = b"application/partial-upload"
PROBLEMS = "https://iana.org/assignments/http-problem-types#"


@attrs.frozen
class Interop:
    """What one interop version of the draft says, where versions differ."""

    version: int
    drafts: str
    #: ``Upload-Incomplete: ?1`` instead of ``Upload-Complete: ?0``.
    incomplete_field: bool = False
    #: Repeated 104s carry the offset while a body arrives.
    progress: bool = True
    #: Appends are ``Content-Type: application/partial-upload``.
    partial_type: bool = True
    #: ``Upload-Limit`` exists, and the name of its lifetime key.
    limits: bool = True
    age_key: str = "max-age"
    #: The status of an append that leaves the upload incomplete.
    appended: int = 204
    #: Retrieval and cancellation must carry no offset or completeness.
    bare_requests: bool = False


#: Interop version -> what it says. 3: draft-01 (iOS 17); 4: draft-02;
#: 5: draft-03 (tus-js-client 'ietf-draft-03', iOS 18.0); 6: drafts 04-05
#: (tus-js-client 'ietf-draft-05', iOS 18.1); 7: drafts 06-08; 8: drafts
#: 09 onwards, the latest (current Apple releases).
VERSIONS: dict[int, Interop] = {
    3: Interop(
        3,
        "draft-01",
        incomplete_field=True,
        progress=False,
        partial_type=False,
        limits=False,
        appended=201,
        bare_requests=True,
    ),
    4: Interop(
        4,
        "draft-02",
        progress=False,
        partial_type=False,
        limits=False,
        appended=201,
        bare_requests=True,
    ),
    5: Interop(
        5,
        "draft-03",
        partial_type=False,
        limits=False,
        appended=201,
        bare_requests=True,
    ),
    6: Interop(
        6, "draft-04, draft-05", age_key="expires", appended=201, bare_requests=True
    ),
    7: Interop(7, "draft-06 to draft-08"),
    8: Interop(8, "draft-09 to draft-12"),
}
LATEST = VERSIONS[8]


def has_draft_fields(headers: Headers) -> bool:
    """Whether a request carries a field only the draft uses."""
    return any(
        headers.hasHeader(name.encode("ascii"))
        for name in (INTEROP, "Upload-Complete", "Upload-Incomplete")
    )


def speaks(headers: Headers) -> bool:
    """Whether a request is the draft's rather than tus's."""
    return not headers.hasHeader(b"tus-resumable") and has_draft_fields(headers)


def interop_of(headers: Headers) -> Interop | None:
    """The version a request speaks: none stated is the latest draft (and
    the RFC to come); None for a version this server does not speak."""
    if not headers.hasHeader(INTEROP.encode("ascii")):
        return LATEST
    version = fields.integer(headers, INTEROP)
    return VERSIONS.get(version) if version is not None else None


def completeness(headers: Headers, interop: Interop) -> bool | None:
    """What ``Upload-Complete`` (or the older ``Upload-Incomplete``) says.
    In interop version 3 the last part carries no field at all ("omitted
    or set to false": complete)."""
    complete = fields.boolean(headers, "Upload-Complete")
    if complete is None and interop.incomplete_field:
        incomplete = fields.boolean(headers, "Upload-Incomplete")
        complete = True if incomplete is None else not incomplete
    return complete


_FILENAME_STAR = re.compile(r"filename\*\s*=\s*([^']*)'[^']*'([^;]+)", re.I)
_FILENAME = re.compile(r'filename\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]+))', re.I)


def disposition_name(value: str | None) -> str | None:
    """The file name a ``Content-Disposition`` gives (``filename*`` first)."""
    if not value:
        return None
    star = _FILENAME_STAR.search(value)
    if star is not None:
        charset = star.group(1).strip() or "utf-8"
        try:
            return unquote(star.group(2).strip(), encoding=charset, errors="strict")
        except (LookupError, UnicodeDecodeError):
            pass
    plain = _FILENAME.search(value)
    if plain is None:
        return None
    if plain.group(1) is not None:
        return re.sub(r"\\(.)", r"\1", plain.group(1))
    return plain.group(2)


def unspoken(headers: Headers) -> Problem:
    spoken = ", ".join(str(v) for v in VERSIONS)
    stated = fields.raw(headers, INTEROP) or ""
    return bad_request(
        f"{INTEROP} {stated[:20]!r} is not spoken here; these are: {spoken}",
        versions=list(VERSIONS),
    )
