"""The API description from a real `twistd uploadd`: /openapi.json is the
valid OpenAPI document of the routes it serves, and /docs renders every one
of them in a real headless Chromium from files uploadd serves itself."""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path

import pytest
from openapi_spec_validator import validate
from selenium.webdriver.common.by import By

from tests.integration.daemon import Daemon, eventually
from tests.integration.test_web import chromium
from tests.unit.test_openapi import operations
from uploadd import __version__
from uploadd.api.docs import description

pytestmark = pytest.mark.integration


def fetch(daemon: Daemon, path: str) -> tuple[str, bytes]:
    """Content-Type and body of GET ``path``, without a token."""
    with urllib.request.urlopen(daemon.base + path, timeout=30) as response:
        assert response.status == 200, path
        return response.headers["content-type"], response.read()


def test_the_daemon_serves_its_description_and_its_rendering(
    daemon: Daemon, tmp_path: Path
) -> None:
    """GET /openapi.json needs no token and is the package's valid OpenAPI
    3.1 document with this version; /docs and the assets it names come from
    uploadd; in a browser the page lists every route the document names."""
    kind, body = fetch(daemon, "/openapi.json")
    assert kind == "application/json"
    document = json.loads(body)
    validate(document)
    assert document == description()
    assert document["info"]["version"] == __version__
    kind, page = fetch(daemon, "/docs")
    assert kind.startswith("text/html")
    assets = re.findall(rb'(?:src|href)="(/static/[^"]+)"', page)
    assert b"/static/docs.js" in assets
    for asset in assets:
        fetch(daemon, asset.decode())
    assert not re.search(rb'(?:src|href)="(?:https?:)?//', page), "no CDN"

    browser = chromium(tmp_path / "chromium")
    try:
        browser.get(daemon.base + "/docs")
        count = len(operations(document))
        eventually(
            lambda: browser.find_element(By.ID, "shown").text == f"{count} routes",
            what=f"/docs listing {count} routes",
        )
        rendered = browser.find_elements(By.CSS_SELECTOR, "details.op")
        assert len(rendered) == count
        internal = browser.find_elements(By.CSS_SELECTOR, "details.op .internal")
        assert len(internal) == 2  # GET and DELETE /instances/uploads/{id}/data
        assert not browser.find_element(By.ID, "notice").text
    finally:
        browser.quit()
