"""The library and the pages each account sees, in headless Chromium
against a real uploadd: search by name, sorting, pages of many files, one
line per file; scopes decide the pages; the favicon; the page's own SHA-256
(for plain-http pages without Web Crypto) agrees with Python's."""

from __future__ import annotations

import hashlib
from pathlib import Path
from urllib.parse import quote

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from tests.integration.daemon import PASSWORD, add_user, eventually, start
from tests.integration.test_web import screenshots, shown, sign_in

pytestmark = pytest.mark.integration


def first_names(driver: WebDriver, count: int = 3) -> list[str]:
    names: list[str] = driver.execute_script(
        "return [...document.querySelectorAll('#files tbody tr')]"
        ".slice(0, arguments[0]).map((row) => row.querySelector('td a').textContent);",
        count,
    )
    return names


def test_the_library_searches_sorts_and_pages_one_line_per_file(
    browser: WebDriver, tmp_path: Path
) -> None:
    """111 files: pages of 50 with Previous and Next; sorting by name (A-Z,
    then Z-A), size and date; a search by name; every row one line high at
    desktop width, a long name and a file's versions included."""
    daemon = start(tmp_path / "uploadd")
    try:
        for n in range(110):
            kind = "report" if n % 2 else "photo"
            daemon.request("PUT", f"/files/{kind}-{n:03d}.txt?renditions=none",
                           b"x" * (n + 1))  # fmt: skip
        long_name = "a quarterly report with a name far too long for its column " * 3
        _, _, answer = daemon.request(
            "PUT", f"/files/{quote(long_name.strip())}.txt?renditions=none", b"long"
        )
        parent = answer.decode().split('"id": "')[1].split('"')[0]
        daemon.request(
            "PUT", f"/files/v2.txt?parent={parent}&renditions=none", b"version"
        )

        sign_in(browser, daemon, "alice", PASSWORD)
        browser.get(daemon.base + "/#/library")
        count = browser.find_element(By.ID, "library-count")
        eventually(lambda: count.text == "112 files", 15, "the count")
        status = browser.find_element(By.ID, "page-status")
        assert status.text == "Page 1 of 3"
        assert len(browser.find_elements(By.CSS_SELECTOR, "#files tbody tr")) == 50
        assert not browser.find_element(By.ID, "page-previous").is_enabled()
        assert first_names(browser, 1) == ["v2.txt"]  # newest first

        # One line per file: every row as high as the others, a button's height.
        heights = browser.execute_script(
            "return [...document.querySelectorAll('#files tbody tr')]"
            ".map((row) => row.getBoundingClientRect().height);"
        )
        assert max(heights) - min(heights) < 1 and max(heights) < 60, heights
        long_row = browser.find_element(
            By.XPATH, f"//tr[td[1][contains(., '{long_name[:30]}')]]"
        )
        assert abs(long_row.size["height"] - heights[0]) < 1
        assert "Versions: v2.txt" in long_row.text
        assert long_row.find_element(By.TAG_NAME, "td").get_attribute("title")
        screenshots(browser, "library")

        browser.find_element(By.XPATH, "//button[.='Size']").click()
        eventually(lambda: first_names(browser, 1) == ["report-109.txt"])
        browser.find_element(By.ID, "page-next").click()
        eventually(lambda: status.text == "Page 2 of 3")
        assert first_names(browser, 1) == ["report-059.txt"]
        browser.find_element(By.XPATH, "//button[.='Size']").click()  # smallest first
        eventually(lambda: status.text == "Page 1 of 3")
        assert first_names(browser, 2) == ["photo-000.txt", "report-001.txt"]
        name = browser.find_element(By.XPATH, "//button[.='Name']")
        name.click()
        eventually(lambda: first_names(browser, 1) == [long_name.strip() + ".txt"])
        assert name.find_element(By.XPATH, "..").get_attribute("aria-sort") == (
            "ascending"
        )
        name.click()
        eventually(lambda: first_names(browser, 1) == ["v2.txt"])

        search = browser.find_element(By.ID, "search")
        search.send_keys("REPORT-")
        eventually(lambda: count.text.startswith("55 files named like"), 15)
        assert status.text == "Page 1 of 2"
        assert first_names(browser, 1) == ["report-109.txt"]  # still Z-A
        search.send_keys("00")
        eventually(lambda: count.text.startswith("5 files"), 15)
        assert shown(browser, "#pages") is None
        assert first_names(browser, 5) == [f"report-00{n}.txt" for n in (9, 7, 5, 3, 1)]
    finally:
        daemon.stop()


def test_each_account_sees_the_pages_its_scope_opens(
    browser: WebDriver, tmp_path: Path
) -> None:
    """A reader sees the library and no Upload page, even when asking for
    it; an upload-only account sees the Upload page and no Library. The
    page has its favicon, and its own SHA-256 agrees with Python's."""
    daemon = start(tmp_path / "uploadd")
    try:
        add_user(daemon.data_dir, "bob", "read", "bob-password")
        add_user(daemon.data_dir, "carol", "upload-only", "carol-password")
        sign_in(browser, daemon, "bob", "bob-password")
        assert shown(browser, "#view-library")
        assert shown(browser, "#upload-link") is None
        assert shown(browser, "#library-link")
        browser.get(daemon.base + "/#/upload")
        eventually(lambda: shown(browser, "#view-library"))
        assert (
            shown(browser, "#view-upload") is None and shown(browser, "#drop") is None
        )

        browser.find_element(By.ID, "sign-out").click()
        eventually(lambda: shown(browser, "#username"))
        sign_in(browser, daemon, "carol", "carol-password")
        assert shown(browser, "#view-upload") and shown(browser, "#upload-link")
        assert shown(browser, "#library-link") is None
        browser.get(daemon.base + "/#/library")
        eventually(lambda: shown(browser, "#view-upload"))
        assert "Your session" not in browser.find_element(By.ID, "notice").text

        icon = browser.execute_script(
            "return fetch(document.querySelector('link[rel=icon]').href)"
            ".then((r) => [r.status, r.headers.get('content-type')]);"
        )
        assert icon == [200, "image/svg+xml"]
        lengths = [0, 3, 55, 56, 63, 64, 65, 1000, 2 * 1024 * 1024 + 7]
        digests = browser.execute_script(
            "return arguments[0].map((n) => Resume.hex(Resume.sha256("
            "Uint8Array.from({length: n}, (_, i) => (i * 31 + 7) & 255))));",
            lengths,
        )
        expected = [
            hashlib.sha256(bytes((i * 31 + 7) & 255 for i in range(n))).hexdigest()
            for n in lengths
        ]
        assert digests == expected
    finally:
        daemon.stop()
