"""The real daemon against guessing and prying: sign-in is rate-limited and
nothing in the data directory is readable by other users."""

from __future__ import annotations

import json
import stat
import time
import urllib.parse
from pathlib import Path

import pytest

from tests.integration.daemon import PASSWORD, ctl, start

pytestmark = pytest.mark.integration


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_thirty_wrong_passwords_in_two_seconds_are_stopped(tmp_path: Path) -> None:
    """With the defaults, 30 wrong passwords for alice within 2 s are ten
    401s, then 429 problems with a Retry-After near the 15 min window; her
    right password is refused too, while bob signs in from elsewhere in the
    same way he always did (one address's limit is 50)."""
    daemon = start(tmp_path / "uploadd")
    try:
        ctl(daemon.data_dir, "user", "add", "bob", stdin="bob-password\n")
        began, answers = time.monotonic(), []
        for attempt in range(30):
            route = "/auth/token" if attempt % 2 else "/api-token-auth/"
            wrong = urllib.parse.urlencode({"username": "alice", "password": "no"})
            answers.append(daemon.request("POST", route, wrong.encode(),
                                          Authorization=""))  # fmt: skip
        assert time.monotonic() - began < 2
        assert [status for status, _, _ in answers] == [401] * 10 + [429] * 20
        _, headers, body = answers[-1]
        assert headers["Content-Type"] == "application/problem+json"
        assert 890 <= int(headers["Retry-After"]) <= 900
        assert json.loads(body)["status"] == 429
        right = urllib.parse.urlencode({"username": "alice", "password": PASSWORD})
        status, _, _ = daemon.request(
            "POST", "/auth/token", right.encode(), Authorization=""
        )
        assert status == 429
        bob = urllib.parse.urlencode({"username": "bob", "password": "bob-password"})
        status, _, _ = daemon.request(
            "POST", "/auth/token", bob.encode(), Authorization=""
        )
        assert status == 200
    finally:
        daemon.stop()


def test_the_data_dir_is_private_to_uploadd(tmp_path: Path) -> None:
    """A data directory made 0755 (as most tools make one) is 0700 once
    uploadd has run in it; the database with the password hashes, its -wal
    and -shm, the token and cluster secrets, the Web Push key and the admin
    password file are 0600, the last also when a looser one was there before."""
    data = tmp_path / "uploadd"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    daemon = start(data)
    try:
        assert daemon.request("PUT", "/files/a.txt", b"hello")[0] == 201
        assert mode(data) == 0o700
        files = ["uploadd.sqlite3", "uploadd.sqlite3-wal", "uploadd.sqlite3-shm",
                 "secret", "cluster-secret", "vapid-private-key"]  # fmt: skip
        assert {name: mode(data / name) for name in files} == dict.fromkeys(
            files, 0o600
        )
    finally:
        daemon.stop()

    fresh = tmp_path / "fresh"
    fresh.mkdir(mode=0o755)
    fresh.chmod(0o755)
    (fresh / "admin-password").write_text("old\n")
    (fresh / "admin-password").chmod(0o644)
    assert "created user 'admin'" in ctl(fresh, "bootstrap")
    assert mode(fresh / "admin-password") == 0o600
    assert mode(fresh) == 0o700
