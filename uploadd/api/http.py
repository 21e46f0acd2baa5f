"""Small request and response helpers shared by the resource families."""

from __future__ import annotations

import datetime
import json
from typing import Any
from urllib.parse import parse_qs, urlencode

import attrs
from twisted.web.iweb import IRequest

from uploadd.api.problems import bad_request

JSON = b"application/json"


def json_body(request: IRequest, status: int, document: Any) -> bytes:
    """Set a JSON response on ``request``; return the body."""
    body = json.dumps(document).encode("utf-8")
    request.setResponseCode(status)
    request.setHeader(b"content-type", JSON)
    request.setHeader(b"content-length", b"%d" % len(body))
    return body


def empty(request: IRequest, status: int) -> bytes:
    """An answer with no body: no Content-Type, Content-Length 0."""
    request.setResponseCode(status)
    request.setHeader(b"content-length", b"0")
    # twisted.web's Request has it; IRequest does not declare it.
    request.defaultContentType = None  # type: ignore[attr-defined]
    return b""


def read_fields(request: IRequest) -> dict[str, Any]:
    """A JSON object body or a urlencoded form body, as a dict; else 400/415."""
    raw = request.content.read() if request.content is not None else b""
    ctype = (request.getHeader(b"content-type") or b"").split(b";")[0].strip().lower()
    if ctype == JSON or ctype.endswith(b"+json"):
        try:
            document = json.loads(raw or b"{}")
        except ValueError as error:
            raise bad_request(f"the body is not valid JSON: {error}") from None
        if not isinstance(document, dict):
            raise bad_request("the JSON body must be an object")
        return document
    if ctype in (b"application/x-www-form-urlencoded", b""):
        form = parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True)
        return {name: values[-1] for name, values in form.items()}
    raise bad_request(
        "send application/json or application/x-www-form-urlencoded",
        content_type=ctype.decode("latin-1"),
    )


def whole_number(value: Any, minimum: int, problem: str) -> int:
    """``value`` (a JSON integer or a form's digits) if it is at least
    ``minimum``; else a 400 saying ``problem``."""
    if isinstance(value, str) and value.isascii() and value.isdigit():
        # Past 19 digits it is no count anything here holds (and int() of
        # thousands of digits raises).
        value = int(value) if len(value.lstrip("0")) <= 19 else None
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise bad_request(problem)
    return value


def arg(request: IRequest, name: str) -> str | None:
    """The last value of query argument ``name``."""
    values = (request.args or {}).get(name.encode("utf-8"))
    return values[-1].decode("utf-8", "replace") if values else None


def int_arg(request: IRequest, name: str, default: int, lo: int, hi: int) -> int:
    text = arg(request, name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise bad_request(f"{name} must be an integer", **{name: text}) from None
    if not lo <= value <= hi:
        raise bad_request(f"{name} must be from {lo} to {hi}", **{name: value})
    return value


@attrs.frozen
class Paging:
    """``?page=`` and ``?page_size=`` of a listing, and the seed-003 shape
    ``{count, next, previous, results}`` around a page of results."""

    page: int
    size: int

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.size

    def document(
        self,
        url: str,
        count: int,
        results: list[Any],
        keep: dict[str, str | None] | None = None,
    ) -> dict[str, Any]:
        """The page around ``results``; its links keep the arguments
        ``keep`` names (a search, an order), those that are set."""
        kept = urlencode({k: v for k, v in (keep or {}).items() if v})

        def link(number: int) -> str:
            return f"{url}?page={number}&page_size={self.size}" + (
                f"&{kept}" if kept else ""
            )

        return {
            "count": count,
            "next": link(self.page + 1) if self.page * self.size < count else None,
            "previous": link(self.page - 1) if self.page > 1 else None,
            "results": results,
        }


def paging(request: IRequest, default_size: int) -> Paging:
    return Paging(
        int_arg(request, "page", 1, 1, 10**9),
        int_arg(request, "page_size", default_size, 1, 1000),
    )


def base_url(request: IRequest, public_url: str) -> str:
    """The URL prefix for links: configured, else from the Host header."""
    if public_url:
        return public_url.rstrip("/")
    host = request.getHeader(b"host")
    if host:
        scheme = "https" if request.isSecure() else "http"
        return f"{scheme}://{host.decode('latin-1')}"
    address = request.getHost()
    return f"http://{address.host}:{address.port}"


def timestamp(seconds: float) -> str:
    """RFC 3339 UTC with microseconds, as in seed 003's responses."""
    moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC)
    return moment.isoformat().replace("+00:00", "Z")
