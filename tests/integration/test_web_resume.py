"""The upload page in headless Chromium against a real uploadd: an upload
started in one browser continues in another (its own profile, as on another
machine) from the offset uploadd holds, and a failed upload says why and
offers Retry only when trying again can help."""

from __future__ import annotations

import hashlib
import http.client
import math
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import attrs
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from tests.integration.daemon import PASSWORD, Daemon, eventually, start
from tests.integration.test_web import (
    chromium,
    shown,
    sign_in,
    throttle,
    tus_settings,
)

pytestmark = pytest.mark.integration

MIB = 1024 * 1024


def fingerprint(path: Path) -> str:
    """What the page computes for a file: its size and the sha256 of its
    first and last MiB."""
    data = path.read_bytes()
    ends = data[:MIB] + data[max(0, len(data) - MIB) :]
    return f"ends-sha256:{len(data)}:{hashlib.sha256(ends).hexdigest()}"


def offline(driver: WebDriver, cut: bool, upload: int = -1) -> None:
    """Cut ``driver`` off the network for new requests (navigator.onLine
    false), or not; uploads at ``upload`` bytes a second meanwhile."""
    driver.execute_cdp_cmd(
        "Network.emulateNetworkConditions",
        {"offline": cut, "latency": 0, "downloadThroughput": -1,
         "uploadThroughput": upload},
    )  # fmt: skip


@attrs.define
class BodyLimit:
    """A reverse proxy before uploadd that refuses request bodies over
    ``limit`` bytes with 413, as nginx's ``client_max_body_size`` does;
    it answers HTTP/1.0 (each response ends with its connection)."""

    target: int
    limit: int
    refused: int = 0
    largest: int = 0
    _server: ThreadingHTTPServer | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.server_address[1]

    def start(self) -> BodyLimit:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def relay(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length > proxy.limit:
                    proxy.refused += 1
                    self.rfile.read(length)
                    self.send_response(413)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if self.command != "GET":
                    proxy.largest = max(proxy.largest, length)
                upstream = http.client.HTTPConnection("127.0.0.1", proxy.target)
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() != "connection"}  # fmt: skip
                upstream.request(
                    self.command, self.path, self.rfile.read(length), headers
                )
                answer = upstream.getresponse()
                self.send_response(answer.status)
                for name, value in answer.getheaders():
                    if name.lower() not in ("transfer-encoding", "connection"):
                        self.send_header(name, value)
                self.end_headers()
                while block := answer.read1(65536):
                    self.wfile.write(block)
                    self.wfile.flush()
                upstream.close()

            do_GET = do_POST = do_PATCH = do_HEAD = relay
            do_DELETE = do_OPTIONS = do_PUT = relay

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


def settled(daemon: Daemon) -> list[dict[str, Any]]:
    """The unfinished uploads once two looks, half a second apart, agree
    (uploadd records what a dropped connection brought when it notices)."""
    previous: list[dict[str, Any]] = []

    def same() -> bool:
        nonlocal previous
        now: list[dict[str, Any]] = daemon.json("GET", "/uploads/")["results"]
        agreed = bool(now) and now == previous
        previous = now
        time.sleep(0.5)
        return agreed

    eventually(same, 30, "the unfinished uploads settled")
    return previous


@pytest.mark.parametrize("parts", [1, 3], ids=["one-upload", "three-parts"])
def test_an_upload_started_in_one_browser_continues_in_another(
    tmp_path: Path, parts: int
) -> None:
    """Profile A starts a 40 MB upload (as one tus upload, or three parallel
    parts) and quits mid-way; uploadd lists it with the page's fingerprint.
    Profile B, which shares nothing with A, offers it, and given the same
    file continues every part from uploadd's offset; the stored file is
    byte-identical and no upload was created again."""
    body = tmp_path / "film.bin"
    body.write_bytes(os.urandom(40 * 1000 * 1000))
    daemon = start(tmp_path / "uploadd")
    try:
        first = chromium(tmp_path / "profile-a")
        try:
            sign_in(first, daemon, "alice", PASSWORD)
            tus_settings(
                first, {"chunkSize": 4 * MIB, "parallelParts": parts, "parallelFrom": 0}
            )
            throttle(first, 4 * 1024 * 1024)
            first.find_element(By.ID, "picker").send_keys(str(body))
            bar = eventually(lambda: shown(first, "#uploads progress"))
            eventually(lambda: float(bar.get_attribute("value")) > 25, 60, "25% sent")
        finally:
            first.quit()
        listed = settled(daemon)
        assert len(listed) == parts
        assert {r["fingerprint"] for r in listed} == {fingerprint(body)}
        assert {r["name"] for r in listed} == {"film.bin"}
        held = sum(r["offset"] for r in listed)
        assert 0 < held < 40 * 1000 * 1000

        second = chromium(tmp_path / "profile-b")
        try:
            sign_in(second, daemon, "alice", PASSWORD)
            offer = eventually(lambda: shown(second, "#resumable"), what="the offer")
            assert "film.bin (40 MB)" in offer.text
            second.find_element(By.ID, "picker").send_keys(str(body))
            row = eventually(lambda: shown(second, "#uploads li"))
            eventually(lambda: "Stored: 100%" in row.text, 90, "the upload stored")
            assert int(row.get_attribute("data-offset") or 0) == held
            assert "resumed at" in row.text
            eventually(lambda: not shown(second, "#resumable"), 10, "no offer left")
        finally:
            second.quit()
        (stored,) = daemon.json("GET", "/files")["results"]
        status, _, content = daemon.request("GET", f"/files/{stored['id']}/content")
        assert status == 200 and content == body.read_bytes()
        assert daemon.json("GET", "/uploads/")["count"] == 0
        # A created the upload (or its parts); B only joined the parts.
        created = daemon.log().count('"POST /uploads/ HTTP/1.1" 201')
        assert created == (1 if parts == 1 else parts + 1)
    finally:
        daemon.stop()


def test_a_failed_upload_says_why_and_offers_retry_only_when_it_can_help(
    browser: WebDriver, tmp_path: Path
) -> None:
    """A file over uploadd's limit fails with a sentence and no Retry. Cut
    off mid-upload, a file fails with a sentence and Retry, which continues
    from uploadd's offset once back online. Meanwhile the percent shown is
    the bar's, and the finished row ends without a stray separator."""
    large, fits = tmp_path / "large.bin", tmp_path / "fits.bin"
    large.write_bytes(os.urandom(6 * 1000 * 1000))
    fits.write_bytes(os.urandom(5 * 1000 * 1000))
    daemon = start(tmp_path / "uploadd", "--max-upload-size=5M")
    try:
        sign_in(browser, daemon, "alice", PASSWORD)
        browser.find_element(By.ID, "picker").send_keys(str(large))
        row = eventually(lambda: shown(browser, "#uploads li.failed"), 15, "refused")
        assert "Failed: large.bin is larger than the 5.2 MB uploadd accepts." in (
            row.text
        )
        assert not row.find_elements(By.TAG_NAME, "button")

        # Small chunks: going offline fails the next one.
        tus_settings(browser, {"chunkSize": 256 * 1024})
        throttle(browser, 1024 * 1024)
        browser.find_element(By.ID, "picker").send_keys(str(fits))
        row = eventually(
            lambda: (
                "fits.bin" in shown(browser, "#uploads li").text
                and shown(browser, "#uploads li")
            )
        )
        bar = row.find_element(By.TAG_NAME, "progress")
        samples = []
        for _ in range(8):
            value, text = browser.execute_script(
                "const row = arguments[0];"
                "return [row.querySelector('progress').value,"
                " row.querySelector('.state').textContent];",
                row,
            )
            if text.startswith("Uploading"):
                samples.append(value)
                assert text == f"Uploading: {math.floor(value)}%", (value, text)
            time.sleep(0.25)
        assert samples and samples[-1] > 0
        eventually(lambda: float(bar.get_attribute("value")) > 40, 30, "40% sent")
        offline(browser, True, 1024 * 1024)
        eventually(lambda: "failed" in (row.get_attribute("class") or ""), 15)
        assert "The connection to uploadd was lost." in row.text
        offline(browser, False)
        row.find_element(By.XPATH, ".//button[.='Retry']").click()
        eventually(lambda: "Stored: 100%" in row.text, 60, "the retried upload")
        assert all(not line.rstrip().endswith("·") for line in row.text.splitlines())
        assert " · " in row.text  # size and time · speed
        (stored,) = daemon.json("GET", "/files")["results"]
        assert stored["sha256"] == hashlib.sha256(fits.read_bytes()).hexdigest()
        # Only the part uploadd did not hold was sent again: one upload.
        assert daemon.log().count('"POST /uploads/ HTTP/1.1" 201') == 1
    finally:
        daemon.stop()


def test_behind_a_proxy_that_limits_bodies_the_page_sends_smaller_chunks(
    browser: WebDriver, tmp_path: Path
) -> None:
    """The page sends a file whole in one PATCH; a proxy refusing bodies
    over 8 MiB answers it 413, and the upload goes on in chunks the proxy
    lets through, byte-exact, with no failure shown."""
    body = tmp_path / "behind.bin"
    body.write_bytes(os.urandom(20 * 1000 * 1000))
    daemon = start(tmp_path / "uploadd")
    proxy = BodyLimit(daemon.port, 8 * MIB).start()
    try:
        sign_in(browser, attrs.evolve(daemon, port=proxy.port), "alice", PASSWORD)
        browser.find_element(By.ID, "picker").send_keys(str(body))
        row = eventually(lambda: shown(browser, "#uploads li"))
        eventually(lambda: "Stored: 100%" in row.text, 60, "stored through the proxy")
        assert "failed" not in (row.get_attribute("class") or "")
        assert proxy.refused >= 1 and 0 < proxy.largest <= 8 * MIB
        (stored,) = daemon.json("GET", "/files")["results"]
        assert stored["sha256"] == hashlib.sha256(body.read_bytes()).hexdigest()
    finally:
        proxy.stop()
        daemon.stop()
