"""The OpenAPI document (uploadd/api/openapi.yaml) against the routes the
families serve: every route described, nothing described that is not
served, scopes as the handlers check them, and a valid OpenAPI 3.1
document served at /openapi.json and rendered at /docs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from openapi_spec_validator import validate

from tests.support import Harness, auth, harness
from uploadd.api.docs import description
from uploadd.api.root import Router
from uploadd.auth.tokens import SCOPES

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
#: What a route checks before the token: its query must name something.
QUERIES = {"/progress": "?UploadKey=0"}


@pytest.fixture
def app(tmp_path: Path) -> Harness:
    return harness(tmp_path)


def served(router: Router) -> dict[tuple[str, str], str]:
    """(path with its variables as ``{}``, method) of every route of every
    mounted family, and the family's name. werkzeug lets every GET route
    answer HEAD too; that HEAD is no route of its own."""
    found = {}
    for family in router.families:
        for rule in family.app.url_map.iter_rules():
            methods = set(rule.methods or ())
            if "GET" in methods:
                methods.discard("HEAD")
            path = re.sub(r"<(?:[^:<>]+:)?[^<>]+>", "{}", rule.rule)
            for method in methods:
                found[(path, method.lower())] = type(family).__name__
    return found


def operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """Each operation of the document by (path with ``{}``, method)."""
    return {
        (re.sub(r"\{[^}]+\}", "{}", path), method): operation
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    }


def test_the_document_names_every_route_served_and_no_other(app: Harness) -> None:
    """Every route of every family build() mounts (path and method) is in
    the document, and the document names no route that is not served."""
    routes = served(app.parts.router)
    described = operations(description())
    missing = sorted(
        f"{m.upper()} {p} ({routes[p, m]})" for p, m in routes.keys() - described.keys()
    )
    extra = sorted(f"{m.upper()} {p}" for p, m in described.keys() - routes.keys())
    assert not missing, f"routes missing from uploadd/api/openapi.yaml: {missing}"
    assert not extra, f"openapi.yaml names routes nobody serves: {extra}"
    families = {name for name in routes.values()}
    assert len(families) == len(app.parts.router.families)


def test_the_document_is_valid_openapi_3_1() -> None:
    """openapi-spec-validator finds nothing wrong (references resolve, path
    parameters are declared, operation ids are unique)."""
    document = description()
    assert document["openapi"].startswith("3.1.")
    validate(document)


def test_every_operation_says_who_may_call_it_and_how_it_fails() -> None:
    """Each operation has an id, a summary, a tag and an explicit security
    list naming real scopes; every 4xx or 5xx answer is a problem+json
    document; the cluster-internal routes, and only they, are marked so."""
    document = description()
    responses = document["components"]["responses"]
    for (path, method), operation in operations(document).items():
        where = f"{method.upper()} {path}"
        assert operation.get("operationId") and operation.get("summary"), where
        assert operation.get("tags"), where
        assert "security" in operation, f"{where} does not say who may call it"
        for requirement in operation["security"]:
            for scheme, scopes in requirement.items():
                assert scheme in document["components"]["securitySchemes"], where
                assert set(scopes) <= SCOPES, where
        for status, answer in operation["responses"].items():
            if "$ref" in answer:
                answer = responses[answer["$ref"].rsplit("/", 1)[-1]]
            if int(status) >= 400:
                assert list(answer.get("content", {})) == [
                    "application/problem+json"
                ], f"{where} {status}"
        internal = path.startswith("/instances/")
        assert operation.get("x-internal", False) is internal, where
        assert ("cluster-internal" in operation["tags"]) is internal, where


def bearer_scopes(operation: dict[str, Any]) -> set[str] | None:
    """The scopes whose tokens may call ``operation``; None if it takes no
    bearer token."""
    named = [r["bearer"] for r in operation["security"] if "bearer" in r]
    return {scope for scopes in named for scope in scopes} if named else None


def streams(operation: dict[str, Any]) -> bool:
    ok = operation["responses"].get("200", {})
    return "text/event-stream" in ok.get("content", {})


@pytest_twisted.ensureDeferred()
async def test_the_scopes_named_are_the_scopes_the_routes_let_in(
    app: Harness,
) -> None:
    """A request without a token is refused (401, as the document says); a
    token of a scope the document does not name for the route is refused
    (403); one of a scope it names gets past the scope check (whatever the
    made-up ids then cost it)."""
    tokens = {scope: app.user(f"user-{scope}", scope) for scope in sorted(SCOPES)}
    for (path, method), operation in operations(description()).items():
        allowed = bearer_scopes(operation)
        if allowed is None:
            continue
        target = path.replace("{}", "0") + QUERIES.get(path, "")
        anonymous = await app.call(
            method.upper(), target, headers={b"tus-resumable": [b"1.0.0"]}
        )
        assert anonymous.code == 401, f"{method.upper()} {path} without a token"
        assert "401" in operation["responses"], f"{method.upper()} {path}"
        for scope, token in tokens.items():
            if scope in allowed and streams(operation):
                continue  # an open stream: nothing to wait for
            reply = await app.call(
                method.upper(),
                target,
                headers={**auth(token), b"tus-resumable": [b"1.0.0"]},
            )
            where = f"{method.upper()} {path} with a {scope} token: {reply.code}"
            if scope in allowed:
                assert reply.code not in (401, 403), where
            else:
                assert reply.code == 403, where


@pytest_twisted.ensureDeferred()
async def test_the_document_is_served_and_rendered(app: Harness) -> None:
    """GET /openapi.json is the document with this uploadd's version; /docs
    is a page that loads its renderer from uploadd itself."""
    document = await app.call("GET", "/openapi.json")
    assert document.code == 200
    assert document.header("content-type") == "application/json"
    assert document.json() == description()
    assert document.json()["info"]["version"] != "0"
    page = await app.call("GET", "/docs")
    assert page.code == 200
    assert (page.header("content-type") or "").startswith("text/html")
    scripts = re.findall(rb'<script src="([^"]+)"', page.body)
    assert scripts == [b"/static/docs.js"]
    script = await app.call("GET", "/static/docs.js")
    assert script.code == 200
    assert b"/openapi.json" in script.body
