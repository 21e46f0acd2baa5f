"""The root resource: finds which resource family owns a path, for Twisted and
for the ingest gate, which must know the route before the body arrives.

Each family is a class with its own Klein ``app`` whose routes carry full
paths; ``UPLOAD_ROUTES`` on a family names its endpoints that take a streamed
body and by which upload protocol (``put``, ``multipart``, ``tus``, ...).
A match keeps the route's template (``/files/<file_id>``), by which requests
are counted.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote_to_bytes

import attrs
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource, Resource
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import RequestRedirect

from uploadd.api import problems


@attrs.frozen
class RouteMatch:
    family: Any
    endpoint: str | None
    arguments: dict[str, Any]
    #: The route's template, as the family declared it.
    rule: str = ""

    @property
    def upload_kind(self) -> str | None:
        routes: dict[str, str] = getattr(self.family, "UPLOAD_ROUTES", {})
        return routes.get(self.endpoint or "")


def decode_path(raw: bytes) -> str:
    """The percent-decoded path of a request target, without its query."""
    path = raw.split(b"?", 1)[0]
    return unquote_to_bytes(path).decode("utf-8", "replace")


class Router(Resource):
    """Dispatch to the family whose routes match the path."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self._families: list[Any] = []
        self._resources: dict[int, IResource] = {}
        # The families whose routes may take a path, by its first segment.
        self._by_segment: dict[str, list[Any]] | None = None
        self._anywhere: list[Any] = []

    @property
    def families(self) -> tuple[Any, ...]:
        """The families mounted, in the order they are matched."""
        return tuple(self._families)

    def mount(self, *families: Any) -> None:
        """Serve ``families`` too; earlier ones win where paths overlap."""
        for family in families:
            self._families.append(family)
            self._resources[id(family)] = family.app.resource()
        self._by_segment = None

    def _candidates(self, path: str) -> list[Any]:
        """The families, in order, with a route whose first segment is
        ``path``'s (or a variable): matching each family is a werkzeug
        match that mostly fails, and a request's head paid for all."""
        if self._by_segment is None:
            firsts = [
                {
                    rule.rule.lstrip("/").split("/", 1)[0]
                    for rule in family.app.url_map.iter_rules()
                }
                for family in self._families
            ]
            anywhere = [any("<" in first for first in found) for found in firsts]
            self._anywhere = [
                f for f, a in zip(self._families, anywhere, strict=True) if a
            ]
            self._by_segment = {
                segment: [
                    family
                    for family, found, wild in zip(
                        self._families, firsts, anywhere, strict=True
                    )
                    if wild or segment in found
                ]
                for segment in set().union(*firsts)
            }
        first = path.lstrip("/").split("/", 1)[0]
        return self._by_segment.get(first, self._anywhere)

    def match(self, method: bytes, target: bytes) -> RouteMatch | None:
        """The family and endpoint for a request; a family that knows the path
        but not the method is kept only if no other family takes both (Klein
        then answers 405 or the redirect)."""
        path = decode_path(target)
        fallback = None
        for family in self._candidates(path):
            adapter = family.app.url_map.bind("localhost")
            try:
                rule, arguments = adapter.match(
                    path,
                    method=method.decode("ascii", "replace").upper(),
                    return_rule=True,
                )
            except NotFound:
                continue
            except MethodNotAllowed as wrong:
                fallback = fallback or RouteMatch(
                    family, None, {}, _rule_for(adapter, path, wrong.valid_methods)
                )
                continue
            except RequestRedirect:
                # A path a route takes with a slash added: no route's own.
                fallback = fallback or RouteMatch(family, None, {})
                continue
            return RouteMatch(family, rule.endpoint, arguments, rule.rule)
        return fallback

    def render(self, request: IRequest) -> bytes | int:
        # The ingest gate matched the route when the headers arrived; any
        # other request (a plain Site) is matched here.
        found = getattr(request, "route", None) or self.match(
            request.method, request.uri
        )
        if found is None:
            return problems.apply(
                request,
                problems.not_found(f"no such resource: {decode_path(request.uri)}"),
            )
        resource: IResource = self._resources[id(found.family)]
        rendered: bytes | int = resource.render(request)
        return rendered


def _rule_for(adapter: Any, path: str, methods: Any) -> str:
    """The template of the route taking ``path`` by another method."""
    for method in methods or ():
        try:
            rule, _ = adapter.match(path, method=method, return_rule=True)
        except (NotFound, MethodNotAllowed, RequestRedirect):
            continue
        found: str = rule.rule
        return found
    return ""
