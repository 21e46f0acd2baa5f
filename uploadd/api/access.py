"""Who is asking (the principal of a request, from its bearer token) and
which files they may see."""

from __future__ import annotations

from urllib.parse import parse_qs

from twisted.web.http_headers import Headers
from twisted.web.iweb import IRequest

from uploadd.api.problems import Problem, forbidden, not_found, unauthorized
from uploadd.auth.tokens import (
    Action,
    InvalidToken,
    Principal,
    TokenIssuer,
    bearer_token,
)
from uploadd.store.interface import FileRecord, IMetadataStore


def query_value(target: bytes, name: str) -> str | None:
    """The first value of ``name`` in the query of a request target."""
    _, _, query = target.partition(b"?")
    values = parse_qs(query.decode("utf-8", "replace")).get(name)
    return values[0] if values else None


def authenticate(tokens: TokenIssuer, headers: Headers, target: bytes) -> Principal:
    """The principal of ``Authorization: Bearer|JWT <t>`` or ``?access_token=``.

    The query form exists for browsers posting a plain form, which cannot set
    headers; a header wins when both are given.
    """
    raw = headers.getRawHeaders(b"authorization")
    token = bearer_token(raw[0] if raw else None) or query_value(target, "access_token")
    if not token:
        raise unauthorized("this resource needs a token: Authorization: Bearer <token>")
    try:
        return tokens.verify(token)
    except InvalidToken as error:
        raise unauthorized(str(error)) from None


def principal_of(tokens: TokenIssuer, request: IRequest, action: Action) -> Principal:
    """The request's principal, if it may do ``action``: else 401 or 403."""
    return require(authenticate(tokens, request.requestHeaders, request.uri), action)


def require(principal: Principal, action: Action) -> Principal:
    """``principal`` if its scopes allow ``action``, else a 403 problem."""
    if not principal.can(action):
        raise forbidden(
            f"the token's scopes ({' '.join(sorted(principal.scopes))}) "
            f"do not allow {action.value}"
        )
    return principal


def owned(principal: Principal, owner_id: int, what: str) -> Problem | None:
    """A 404 problem when ``principal`` may not see something of ``owner_id``."""
    if principal.is_admin or principal.user_id == owner_id:
        return None
    return Problem(404, f"no such {what}")


async def file_of(
    store: IMetadataStore, principal: Principal, file_id: str
) -> FileRecord:
    """The file ``file_id`` if ``principal`` may see it; else the same 404 as
    for a file that does not exist, so ids of other users' files tell
    nothing."""
    record = await store.get_file(file_id)
    if record is None or owned(principal, record.owner_id, "file"):
        raise not_found(f"no such file: {file_id}")
    return record
