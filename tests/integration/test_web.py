"""The web interface in a real headless Chromium (Debian's chromium and
chromedriver, driven by Selenium) against real uploadd and noded processes.
Screenshots of each page at desktop and 375 px widths go to docs/screenshots."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from tests.integration.daemon import PASSWORD, Daemon, add_user, eventually, start
from tests.integration.test_noded import SECRET, start_node
from tests.integration.test_transcode_tools import _write_pdf

pytestmark = pytest.mark.integration

CHROMIUM = Path("/usr/bin/chromium")
DRIVER = Path("/usr/bin/chromedriver")
SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def chromium(profile: Path) -> WebDriver:
    """Headless Chromium (stopped with .quit()) on the profile folder
    ``profile``, so a second one sees what the first stored."""
    if not (CHROMIUM.exists() and DRIVER.exists()):
        pytest.fail("chromium and chromium-driver are not installed (make setup)")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--window-size=1280,900",
        f"--user-data-dir={profile}",
    ):  # fmt: skip
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(str(DRIVER)), options=options)


def throttle(driver: WebDriver, upload: int) -> None:
    """Uploads from ``driver`` at ``upload`` bytes a second (-1: unthrottled)."""
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1,
         "uploadThroughput": upload},
    )  # fmt: skip


def tus_settings(driver: WebDriver, settings: dict[str, int]) -> None:
    """The page's tus settings (chunk size, parallel parts) for the uploads
    chosen next, over what it ships with."""
    driver.execute_script(
        "localStorage.setItem('uploadd.tus', arguments[0])", json.dumps(settings)
    )


def shown(driver: WebDriver, selector: str) -> Any:
    found = driver.find_elements(By.CSS_SELECTOR, selector)
    return found[0] if found and found[0].is_displayed() else None


def sign_in(driver: WebDriver, daemon: Daemon, name: str, password: str) -> None:
    driver.get(daemon.base + "/")
    eventually(lambda: shown(driver, "#username"), what="the sign-in form")
    driver.find_element(By.ID, "username").send_keys(name)
    driver.find_element(By.ID, "password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "#signin-form button").click()
    # The first page each may see: Upload for writers, the Library for readers.
    eventually(
        lambda: shown(driver, "#view-upload") or shown(driver, "#view-library"),
        what="the first page",
    )


def screenshots(driver: WebDriver, name: str) -> None:
    """``name``-desktop.png and ``name``-375.png of the page as it is."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    for label, width in (("desktop", 1280), ("375", 375)):
        driver.set_window_size(width, 900)
        time.sleep(0.3)
        driver.save_screenshot(str(SHOTS / f"{name}-{label}.png"))
    driver.set_window_size(1280, 900)


def test_an_upload_survives_a_reload_and_resumes_from_the_server_offset(
    browser: WebDriver, tmp_path: Path
) -> None:
    """Sign in, pick a 50 MB file, reload mid-upload: the page offers the
    file, picking it again resumes from a non-zero server offset, and the
    stored sha256 is the original's; the library lists it."""
    body = tmp_path / "big.bin"
    body.write_bytes(os.urandom(50 * 1000 * 1000))
    daemon = start(tmp_path / "uploadd")
    try:
        sign_in(browser, daemon, "alice", PASSWORD)
        # Slow the browser's uploads so the reload lands mid-upload.
        throttle(browser, 6 * 1024 * 1024)
        browser.find_element(By.ID, "picker").send_keys(str(body))
        bar = eventually(
            lambda: shown(browser, "#uploads progress"), what="a progress bar"
        )
        eventually(lambda: float(bar.get_attribute("value")) > 20, 60, "20% sent")
        screenshots(browser, "upload")
        browser.refresh()
        eventually(
            lambda: shown(browser, "#resumable"), what="the unfinished upload offered"
        )
        offered = browser.find_element(By.ID, "resumable-list").text
        assert "big.bin" in offered
        throttle(browser, -1)
        browser.find_element(By.ID, "picker").send_keys(str(body))
        eventually(
            lambda: "Stored: 100%" in browser.find_element(By.ID, "uploads").text,
            60,
            "the upload stored",
        )
        row = browser.find_element(By.CSS_SELECTOR, "#uploads li")
        # uploadd held part of the file (its HEAD offset) and only the rest
        # was sent again.
        assert 0 < int(row.get_attribute("data-offset") or 0) < 50 * 1000 * 1000
        assert "resumed at" in row.text
        listed = daemon.json("GET", "/files")
        (stored,) = listed["results"]
        assert stored["sha256"] == hashlib.sha256(body.read_bytes()).hexdigest()
        browser.get(daemon.base + "/#/library")
        eventually(lambda: "big.bin" in browser.find_element(By.ID, "files").text)
    finally:
        daemon.stop()


def test_the_admin_console_is_for_admins_and_lists_the_nodes(
    browser: WebDriver, tmp_path: Path
) -> None:
    """alice (write) sees no Admin link and the API refuses her; root sees
    the test's two nodes with their state, and a failed webhook delivery
    names the receiver's URL."""
    nodes = [start_node(tmp_path / name, name) for name in ("n1", "n2")]
    daemon = None
    try:
        seeds = ",".join(
            f"{name}=127.0.0.1:{node.ports['amp']}"
            for name, node in zip(("n1", "n2"), nodes, strict=True)
        )
        daemon = start(
            tmp_path / "uploadd",
            f"--cluster-secret={SECRET}",
            f"--cluster-nodes={seeds}",
            "--cluster-ping-interval=0.5s",
            "--webhooks-allow-private=true",
        )
        admin_token = add_user(daemon.data_dir, "root", "admin", "root-password")
        as_root = {"Authorization": f"Bearer {admin_token}"}
        # A webhook whose receiver is down (nothing listens on port 9).
        status, _, _ = daemon.request(
            "POST", "/webhooks", b"url=http://127.0.0.1:9/hooks/in&events=file.*",
            **as_root, **{"Content-Type": "application/x-www-form-urlencoded"},
        )  # fmt: skip
        assert status == 201
        daemon.request("PUT", "/files/hooked.txt?renditions=none", b"x", **as_root)
        sign_in(browser, daemon, "alice", PASSWORD)
        assert shown(browser, "#admin-link") is None
        assert daemon.request("GET", "/admin/nodes")[0] == 403
        browser.find_element(By.ID, "sign-out").click()
        eventually(lambda: shown(browser, "#username"))
        sign_in(browser, daemon, "root", "root-password")
        eventually(lambda: shown(browser, "#admin-link")).click()

        def listed_up() -> bool:
            rows = [shown(browser, f'tr[data-node="{name}"]') for name in ("n1", "n2")]
            return all(row is not None and "up" in row.text for row in rows)

        eventually(listed_up, 30, "n1 and n2 listed up")
        assert "Outbox" in browser.find_element(By.ID, "pipeline").text
        failures = browser.find_element(By.ID, "failures")
        eventually(
            lambda: "to http://127.0.0.1:9/hooks/in" in failures.text,
            15,
            "the webhook's failure listed with its URL",
        )
        screenshots(browser, "admin")
        # Add a node from the console (nothing listens there: it is down),
        # then remove it after the confirmation.
        browser.find_element(By.ID, "node-id").send_keys("n3")
        browser.find_element(By.ID, "node-port").send_keys("9")
        browser.find_element(By.CSS_SELECTOR, "#add-node button").click()
        eventually(lambda: shown(browser, 'tr[data-node="n3"]'), 15, "n3 listed")
        browser.find_element(By.XPATH, "//button[.='Remove n3']").click()
        browser.switch_to.alert.accept()
        eventually(
            lambda: not browser.find_elements(By.CSS_SELECTOR, 'tr[data-node="n3"]')
        )
        # Drain from the console: the button says so and the API agrees.
        drain = eventually(
            lambda: browser.find_element(By.XPATH, "//button[.='Drain n2']")
        )
        drain.click()
        eventually(lambda: browser.find_element(By.XPATH, "//button[.='Activate n2']"))
        modes = {n["id"]: n["mode"] for n in daemon.json("GET", "/admin/nodes",
                 Authorization=f"Bearer {admin_token}")["results"]}  # fmt: skip
        assert modes == {"n1": "active", "n2": "draining"}
    finally:
        if daemon is not None:
            daemon.stop()
        for node in nodes:
            node.stop()


def test_a_slideshow_viewer_follows_the_presenter_through_a_share_link(
    browser: WebDriver, tmp_path: Path
) -> None:
    """alice creates a share link on her deck's page and presents; a browser
    that is not signed in opens the link and shows each slide she moves to,
    until she revokes the link and the viewer is told so; bob, signed in
    but without a link, is refused the deck."""
    pdf = tmp_path / "deck.pdf"
    _write_pdf(pdf, 4)
    daemon = start(tmp_path / "uploadd")
    try:
        add_user(daemon.data_dir, "bob", "read", "bob-password")
        _, _, answer = daemon.request(
            "PUT",
            "/files/deck.pdf",
            pdf.read_bytes(),
            **{"Content-Type": "application/pdf"},
        )
        file_id = json.loads(answer)["id"]
        control = f"/files/{file_id}/control"
        eventually(
            lambda: daemon.json("GET", f"/files/{file_id}")["status"] == "READY", 60
        )
        # The owner presents: a share link from the page, Next moves to 2.
        sign_in(browser, daemon, "alice", PASSWORD)
        browser.get(f"{daemon.base}/#/slides/{file_id}")
        eventually(
            lambda: shown(browser, "#presenter"), what="the presenter's controls"
        )
        browser.find_element(By.ID, "share").click()
        field = eventually(lambda: shown(browser, "#share-links input"))
        link = field.get_attribute("value")
        (share,) = daemon.json("GET", f"/files/{file_id}/shares")["results"]
        assert link == share["link"]
        slide = browser.find_element(By.ID, "slide")
        eventually(lambda: slide.get_attribute("data-current") == "1")
        browser.find_element(By.ID, "next").click()
        eventually(lambda: daemon.json("GET", control)["current"] == 2)

        # A viewer with only the link follows.
        browser.find_element(By.ID, "sign-out").click()
        eventually(lambda: shown(browser, "#username"))
        browser.get(link)
        slide = eventually(lambda: shown(browser, "#slide"))
        eventually(lambda: slide.get_attribute("data-current") == "2", 15, "slide 2")
        assert shown(browser, "#following")
        assert not shown(browser, "#presenter") and not shown(browser, "#sharing")
        time.sleep(0.5)  # the listen stream is open
        daemon.json(
            "POST", control, body=b'{"current": 3}',
            **{"Content-Type": "application/json"},
        )  # fmt: skip
        eventually(lambda: slide.get_attribute("data-current") == "3", 15, "slide 3")
        assert "Slide 3 of 4" in browser.find_element(By.ID, "slide-caption").text
        loaded = browser.execute_script(
            "return document.getElementById('slide').naturalWidth"
        )
        assert loaded > 0

        # Revoked: the viewer's stream ends and says so.
        status, _, _ = daemon.request(
            "DELETE", f"/files/{file_id}/shares/{share['id']}"
        )
        assert status == 204

        def notice() -> str:
            text: str = browser.find_element(By.ID, "notice").text
            return text

        eventually(lambda: "revoked" in notice(), 15, "the viewer told")
        browser.refresh()
        eventually(lambda: "does not work" in notice(), 15, "the link refused")

        # Signed in without the link: someone else's deck does not exist.
        sign_in(browser, daemon, "bob", "bob-password")
        browser.get(f"{daemon.base}/#/slides/{file_id}")
        eventually(lambda: "no such file" in notice(), 15, "bob refused")
    finally:
        daemon.stop()


def test_the_form_fallback_and_a_library_that_updates_itself(
    browser: WebDriver, tmp_path: Path
) -> None:
    """Without upload progress in the browser (forced with ?fallback) the
    page posts a plain form and shows the progress uploadd reports; the
    library, left open, shows a file uploaded elsewhere and its AAC
    rendition arriving, from its event stream alone."""
    sound = tmp_path / "talk.mp3"
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i",
         "sine=frequency=440:duration=20", "-b:a", "64k", str(sound)],
        check=True,
    )  # fmt: skip
    daemon = start(tmp_path / "uploadd")
    try:
        sign_in(browser, daemon, "alice", PASSWORD)
        browser.get(daemon.base + "/?fallback=1#/upload")
        form = eventually(lambda: shown(browser, "#fallback"), what="the form fallback")
        assert shown(browser, "#drop") is None
        form.find_element(By.ID, "fallback-file").send_keys(str(sound))
        form.find_element(By.CSS_SELECTOR, "button").click()
        status = browser.find_element(By.ID, "fallback-status")
        eventually(lambda: status.text == "done: 100%", 30, "the form upload done")

        browser.get(daemon.base + "/#/library")
        eventually(
            lambda: "1 file" in browser.find_element(By.ID, "library-count").text
        )
        daemon.request(
            "PUT",
            "/files/later.mp3",
            sound.read_bytes(),
            **{"Content-Type": "audio/mpeg"},
        )
        table = browser.find_element(By.ID, "files")
        eventually(lambda: "later.mp3" in table.text, 15, "the new file listed")
        eventually(lambda: "later-audio.m4a" in table.text, 60, "its rendition listed")
        assert "audio-aac: ready" in table.text
        later_id = next(
            f["id"] for f in daemon.json("GET", "/files")["results"]
            if f["filename"] == "later.mp3"
        )  # fmt: skip
        daemon.request(
            "PUT", f"/files/later-v2.txt?parent={later_id}&renditions=none", b"v2"
        )
        eventually(
            lambda: "Versions: later-v2.txt" in table.text, 15, "the version listed"
        )
        # Delete from the library (after the browser's confirmation).
        table.find_element(
            By.XPATH, ".//button[@aria-label='Delete later.mp3']"
        ).click()
        browser.switch_to.alert.accept()
        eventually(
            lambda: "later.mp3" not in table.text, 15, "the file gone from the list"
        )
        names = [f["filename"] for f in daemon.json("GET", "/files")["results"]]
        assert sorted(names) == ["later-v2.txt", "talk.mp3"]
    finally:
        daemon.stop()


def test_pause_resume_and_cancel(browser: WebDriver, tmp_path: Path) -> None:
    """Pause stops sending and Resume finishes the same upload byte-exact;
    Cancel ends an upload and uploadd forgets its bytes."""
    first, second = tmp_path / "first.bin", tmp_path / "second.bin"
    first.write_bytes(os.urandom(20 * 1000 * 1000))
    second.write_bytes(os.urandom(20 * 1000 * 1000))
    daemon = start(tmp_path / "uploadd")
    try:
        sign_in(browser, daemon, "alice", PASSWORD)
        throttle(browser, 4 * 1024 * 1024)
        browser.find_element(By.ID, "picker").send_keys(str(first))
        row = eventually(lambda: shown(browser, "#uploads li"))
        bar = row.find_element(By.TAG_NAME, "progress")
        eventually(lambda: float(bar.get_attribute("value")) > 10, 30, "10% sent")
        row.find_element(By.XPATH, ".//button[.='Pause']").click()
        eventually(lambda: "Paused" in row.text)
        paused_at = float(bar.get_attribute("value"))
        time.sleep(1.5)
        assert float(bar.get_attribute("value")) == paused_at
        row.find_element(By.XPATH, ".//button[.='Resume']").click()
        eventually(lambda: "Stored: 100%" in row.text, 60, "the resumed upload stored")
        (stored,) = daemon.json("GET", "/files")["results"]
        assert stored["sha256"] == hashlib.sha256(first.read_bytes()).hexdigest()

        browser.find_element(By.ID, "picker").send_keys(str(second))
        row = eventually(lambda: "second.bin" in shown(browser, "#uploads li").text and
                   shown(browser, "#uploads li"))  # fmt: skip
        bar = row.find_element(By.TAG_NAME, "progress")
        eventually(lambda: float(bar.get_attribute("value")) > 5, 30, "5% sent")
        row.find_element(By.XPATH, ".//button[.='Cancel']").click()
        eventually(lambda: "Cancelled" in row.text)
        leftovers = lambda: list((daemon.data_dir / "uploads").glob("*"))  # noqa: E731
        eventually(lambda: not leftovers(), 10, "the cancelled upload's bytes removed")
        assert daemon.json("GET", "/files")["count"] == 1
    finally:
        daemon.stop()


def test_several_files_at_once_and_parallel_chunks(
    browser: WebDriver, tmp_path: Path
) -> None:
    """Two files chosen together both arrive; asked for parallel parts, the
    page sends the 70 MB one as three partial tus uploads that uploadd
    joins, byte-exact."""
    large, small = tmp_path / "large.bin", tmp_path / "small.txt"
    large.write_bytes(os.urandom(70 * 1000 * 1000))
    small.write_bytes(b"several at once\n")
    daemon = start(tmp_path / "uploadd")
    try:
        sign_in(browser, daemon, "alice", PASSWORD)
        tus_settings(
            browser,
            {"chunkSize": 16 * 2**20, "parallelParts": 3, "parallelFrom": 64 * 2**20},
        )
        browser.find_element(By.ID, "picker").send_keys(f"{large}\n{small}")
        uploads = browser.find_element(By.ID, "uploads")
        eventually(lambda: uploads.text.count("Stored: 100%") == 2, 90, "both stored")
        found = {
            f["filename"]: f["sha256"] for f in daemon.json("GET", "/files")["results"]
        }
        assert found == {
            "large.bin": hashlib.sha256(large.read_bytes()).hexdigest(),
            "small.txt": hashlib.sha256(small.read_bytes()).hexdigest(),
        }
        # A file dropped on the page uploads too.
        browser.execute_script(
            """const drop = new DataTransfer();
            drop.items.add(new File(["dropped here\\n"], "dropped.txt",
                                    {type: "text/plain"}));
            document.getElementById("drop").dispatchEvent(
                new DragEvent("drop", {dataTransfer: drop, bubbles: true}));"""
        )
        eventually(
            lambda: uploads.text.count("Stored: 100%") == 3, 30, "the drop stored"
        )
        names = {f["filename"] for f in daemon.json("GET", "/files")["results"]}
        assert "dropped.txt" in names
        # Three partial uploads and the final one that joins them, plus the
        # small and dropped files' own: six creations in uploadd's access log.
        assert daemon.log().count('"POST /uploads/ HTTP/1.1" 201') == 6
    finally:
        daemon.stop()


def test_an_upload_survives_closing_the_browser(tmp_path: Path) -> None:
    """Chromium quits mid-upload; a new one on the same profile is still
    signed in, offers the upload, and finishes it from the server's offset."""
    body = tmp_path / "closed.bin"
    body.write_bytes(os.urandom(30 * 1000 * 1000))
    daemon = start(tmp_path / "uploadd")
    profile = tmp_path / "chromium"
    try:
        first = chromium(profile)
        try:
            sign_in(first, daemon, "alice", PASSWORD)
            throttle(first, 4 * 1024 * 1024)
            first.find_element(By.ID, "picker").send_keys(str(body))
            bar = eventually(lambda: shown(first, "#uploads progress"))
            eventually(lambda: float(bar.get_attribute("value")) > 20, 60, "20% sent")
        finally:
            first.quit()
        second = chromium(profile)
        try:
            second.get(daemon.base + "/")
            eventually(lambda: shown(second, "#resumable"), what="the upload offered")
            assert "closed.bin" in second.find_element(By.ID, "resumable-list").text
            second.find_element(By.ID, "picker").send_keys(str(body))
            row = eventually(lambda: shown(second, "#uploads li"))
            eventually(lambda: "Stored: 100%" in row.text, 60, "the upload stored")
            assert "resumed at" in row.text
            assert 0 < int(row.get_attribute("data-offset") or 0) < 30 * 1000 * 1000
        finally:
            second.quit()
        (stored,) = daemon.json("GET", "/files")["results"]
        assert stored["sha256"] == hashlib.sha256(body.read_bytes()).hexdigest()
    finally:
        daemon.stop()


def test_the_keyboard_reaches_every_control_with_a_name(
    browser: WebDriver, tmp_path: Path
) -> None:
    """Signing in and tabbing through the upload page reaches the navigation,
    sign-out and Choose files, each with a name; focus is drawn."""
    from selenium.webdriver.common.keys import Keys

    daemon = start(tmp_path / "uploadd")
    try:
        browser.get(daemon.base + "/")
        eventually(lambda: shown(browser, "#username"))
        browser.switch_to.active_element.send_keys(
            "alice", Keys.TAB, PASSWORD, Keys.ENTER
        )
        eventually(lambda: shown(browser, "#view-upload"), what="signed in by keyboard")
        browser.execute_script("document.querySelector('.skip').focus()")  # the top
        names = []
        for _ in range(12):
            browser.switch_to.active_element.send_keys(Keys.TAB)
            focused = browser.switch_to.active_element
            name = (focused.get_attribute("aria-label") or focused.text).strip()
            assert name, focused.get_attribute("outerHTML")
            names.append(name)
            if name == "Choose files":
                outline = focused.value_of_css_property("outline-style")
                assert outline not in ("none", ""), outline
                break
        assert {"Upload", "Library", "Sign out", "Choose files"} <= set(names), names
    finally:
        daemon.stop()
