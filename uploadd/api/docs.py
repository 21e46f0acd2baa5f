"""``/openapi.json`` and ``/docs``: the HTTP API described, for programs and
for people.

The description is ``openapi.yaml`` beside this module, written by hand next
to the handlers it describes (tests/unit/test_openapi.py holds it to the
routes every family serves, and validates it). ``/docs`` renders it with a
page of uploadd's own (``web/docs.html`` and ``web/docs.js``), so it works
offline like the rest of the web interface.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

import attrs
import yaml
from klein import Klein
from twisted.web.iweb import IRequest

from uploadd import __version__
from uploadd.api import problems
from uploadd.api.http import JSON
from uploadd.api.web import send_asset


@functools.cache
def description() -> dict[str, Any]:
    """The OpenAPI document of every route, with this uploadd's version."""
    text = resources.files("uploadd.api").joinpath("openapi.yaml").read_text("utf-8")
    document: dict[str, Any] = yaml.safe_load(text)
    document["info"]["version"] = __version__
    return document


@functools.cache
def _encoded() -> bytes:
    return json.dumps(description(), indent=1).encode("utf-8")


@attrs.define(slots=False)
class DocsAPI:
    app = Klein()
    problems.install(app)

    @app.route("/openapi.json", methods=["GET"])
    def openapi(self, request: IRequest) -> bytes:
        body = _encoded()
        request.setHeader(b"content-type", JSON)
        request.setHeader(b"content-length", b"%d" % len(body))
        request.setHeader(b"cache-control", b"no-cache")
        request.setHeader(b"access-control-allow-origin", b"*")
        return body

    @app.route("/docs", methods=["GET"])
    def docs(self, request: IRequest) -> bytes:
        return send_asset(request, "docs.html")
