"""The page's "Notify me" control and its service worker, in headless
Chromium against a real uploadd.

Headless Chromium reaches no push service (its subscribe never answers
here), so the page's PushManager is given a subscription made by the test,
whose endpoint is a loopback push service holding its keys. Everything
else is real: the page posts the subscription, uploadd pushes through the
push service (VAPID checked, payload decrypted as the browser would), and
what it carried is handed to the real service worker (DevTools'
ServiceWorker.deliverPushMessage), which shows the notification.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from tests.integration.daemon import PASSWORD, eventually, start
from tests.integration.test_renditions import until, upload
from tests.integration.test_transcode_tools import _write_pdf, need
from tests.integration.test_web import chromium, shown, sign_in
from tests.integration.test_webpush import PushService, push_service

pytestmark = pytest.mark.integration
__all__ = ["push_service"]  # fixtures

#: The page's PushManager, answering with the test's subscription.
FAKE_PUSH_MANAGER = """
const made = %s;
PushManager.prototype.subscribe = async function (options) {
  const key = new Uint8Array(options.applicationServerKey);
  localStorage.setItem("test.push.key", btoa(String.fromCharCode(...key))
    .replace(/\\+/g, "-").replace(/\\//g, "_").replace(/=+$/, ""));
  localStorage.setItem("test.push.subscribed", "yes");
  return this.getSubscription();
};
PushManager.prototype.getSubscription = async function () {
  if (localStorage.getItem("test.push.subscribed") !== "yes") return null;
  const key = localStorage.getItem("test.push.key");
  const raw = Uint8Array.from(atob(key.replace(/-/g, "+").replace(/_/g, "/")),
    (c) => c.charCodeAt(0));
  return {
    endpoint: made.endpoint,
    options: { applicationServerKey: raw.buffer, userVisibleOnly: true },
    toJSON: () => made,
    unsubscribe: async () => {
      localStorage.removeItem("test.push.subscribed");
      return true;
    },
  };
};
"""


def notifications(driver: WebDriver) -> Any:
    """What the push service worker shows: [title, body, tag, url]."""
    return driver.execute_async_script(
        """
        const done = arguments[arguments.length - 1];
        navigator.serviceWorker.getRegistration("/push/")
          .then((r) => (r ? r.getNotifications() : []))
          .then((ns) => done(ns.map((n) => [n.title, n.body, n.tag, n.data.url])))
          .catch((e) => done(String(e)));
        """
    )


def control(driver: WebDriver, view: str) -> Any:
    return eventually(
        lambda: shown(driver, f"#view-{view} .push-notify"), 10, f"{view}'s control"
    )


def test_notify_me_subscribes_and_the_worker_shows_what_uploadd_pushed(
    browser: WebDriver, tmp_path: Path, push_service: PushService
) -> None:
    """Notify me (permission granted) subscribes with uploadd's VAPID key
    and posts the subscription; a PDF's ready slides then reach the push
    service for that browser, and its service worker shows them as a
    notification opening the deck. Stop notifications and signing out
    forget the subscription in uploadd."""
    need("pdftoppm")
    daemon = start(tmp_path / "uploadd", "--push-allow-private=true")
    try:
        key = daemon.json("GET", "/push/key")["public_key"]
        push_service.public_key = key
        path = "/wpush/chromium"
        made = push_service.browser(path).subscription(push_service.endpoint(path))
        browser.execute_cdp_cmd(
            "Page.addScriptToEvaluateOnNewDocument",
            {"source": FAKE_PUSH_MANAGER % json.dumps(made)},
        )
        browser.execute_cdp_cmd(
            "Browser.grantPermissions",
            {"origin": daemon.base, "permissions": ["notifications"]},
        )
        sign_in(browser, daemon, "alice", PASSWORD)
        box = control(browser, "upload")
        button = box.find_element(By.TAG_NAME, "button")
        assert button.text == "Notify me when renditions are ready"
        assert button.get_attribute("aria-pressed") == "false"
        button.click()
        eventually(lambda: box.get_attribute("data-state") == "on", 20, "on")
        assert button.text == "Stop notifications"
        assert button.get_attribute("aria-pressed") == "true"
        assert "notified when a file's renditions are ready" in box.text
        stored = daemon.json("GET", "/push/subscriptions")["results"]
        assert [s["endpoint"] for s in stored] == [made["endpoint"]]
        used = browser.execute_script("return localStorage.getItem('test.push.key')")
        assert used == key

        pdf = tmp_path / "deck.pdf"
        _write_pdf(pdf, 2)
        shown_file = upload(daemon, "deck.pdf", pdf.read_bytes(), "application/pdf")
        until(daemon, shown_file["id"], lambda d: d["status"] == "READY")
        eventually(lambda: push_service.got or push_service.errors, 30, "a push")
        assert push_service.errors == []
        ((_, message),) = push_service.got
        browser.execute_cdp_cmd("ServiceWorker.enable", {})

        def delivered() -> Any:
            # The browser's first registration is 0. A delivery made while
            # DevTools still attaches to the worker is lost, so it is sent
            # until shown; the same tag keeps that to one notification.
            browser.execute_cdp_cmd(
                "ServiceWorker.deliverPushMessage",
                {"origin": daemon.base, "registrationId": "0",
                 "data": json.dumps(message)},
            )  # fmt: skip
            return notifications(browser)

        deck = f"{daemon.base}/#/slides/{shown_file['id']}"
        assert eventually(delivered, 20, "a notification") == [
            [
                "deck.pdf is ready",
                "pdf-slides: 2 slides",
                f"{shown_file['id']}/pdf-slides",
                deck,
            ]
        ]

        browser.get(daemon.base + "/#/library")
        library = control(browser, "library")
        eventually(lambda: library.get_attribute("data-state") == "on", 10, "on")
        library.find_element(By.TAG_NAME, "button").click()
        eventually(lambda: library.get_attribute("data-state") == "off", 10, "off")
        assert daemon.json("GET", "/push/subscriptions")["results"] == []

        library.find_element(By.TAG_NAME, "button").click()
        eventually(lambda: library.get_attribute("data-state") == "on", 10, "on")
        assert len(daemon.json("GET", "/push/subscriptions")["results"]) == 1
        browser.find_element(By.ID, "sign-out").click()
        eventually(
            lambda: daemon.json("GET", "/push/subscriptions")["results"] == [],
            10,
            "signing out forgot the subscription",
        )
    finally:
        daemon.stop()


def test_blocked_notifications_are_explained(tmp_path: Path) -> None:
    """With notifications blocked for the site, the control says so and
    cannot be pressed."""
    daemon = start(tmp_path / "uploadd")
    driver = chromium(tmp_path / "chromium")
    try:
        driver.execute_cdp_cmd(
            "Browser.setPermission",
            {
                "origin": daemon.base,
                "permission": {"name": "notifications"},
                "setting": "denied",
            },
        )
        sign_in(driver, daemon, "alice", PASSWORD)
        box = control(driver, "upload")
        eventually(lambda: box.get_attribute("data-state") == "denied", 10, "denied")
        assert "blocked in this browser's site settings" in box.text
        assert not box.find_element(By.TAG_NAME, "button").is_enabled()
    finally:
        driver.quit()
        daemon.stop()
