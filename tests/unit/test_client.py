"""The command-line client's own parts: what it keeps between runs, where a
download lands, what its progress shows, and that it needs no reactor."""

from __future__ import annotations

import io
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from uploadd.client.commands import Mistake, explain, signed_in
from uploadd.client.download import target_of
from uploadd.client.http import HTTPFailure, check_url, detail_of
from uploadd.client.progress import Display
from uploadd.client.state import (
    KEEP,
    Kept,
    Login,
    Logins,
    Uploads,
    fingerprint,
    state_dir,
)
from uploadd.client.upload import Server

REPO = Path(__file__).resolve().parents[2]


def test_the_state_directory_follows_xdg_then_home() -> None:
    """$XDG_STATE_HOME/uploadd, else ~/.local/state/uploadd."""
    assert state_dir({"XDG_STATE_HOME": "/s", "HOME": "/h"}) == Path("/s/uploadd")
    assert state_dir({"HOME": "/h"}) == Path("/h/.local/state/uploadd")


def test_a_login_is_kept_owner_only_and_its_server_becomes_the_default(
    tmp_path: Path,
) -> None:
    """Each server keeps its own token; the last signed in to is the default;
    the file and its directory are for their owner only."""
    logins = Logins(tmp_path / "state" / "login.json")
    assert logins.default_url() is None and logins.get("http://a") is None
    logins.save(Login("http://a", "alice", "t1", 10.0))
    logins.save(Login("http://b", "bob", "t2", 20.0))
    assert logins.default_url() == "http://b"
    assert logins.get("http://a") == Login("http://a", "alice", "t1", 10.0)
    assert stat.S_IMODE(logins.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(logins.path.parent.stat().st_mode) == 0o700
    assert [p.name for p in logins.path.parent.iterdir()] == ["login.json"]


def test_an_upload_is_kept_until_dropped_or_too_old(tmp_path: Path) -> None:
    """The URL put under a fingerprint is found again (finished or not), is
    gone once dropped, and is forgotten after KEEP seconds."""
    now = [1000.0]
    kept = Uploads(tmp_path / "uploads.json", lambda: now[0])
    kept.put("k1", "http://a/uploads/1", Path("f"))
    kept.put("k2", "http://a/uploads/2", Path("g"), done=True)
    assert kept.get("k1") == Kept("http://a/uploads/1", done=False)
    assert kept.get("k2") == Kept("http://a/uploads/2", done=True)
    kept.drop("k1")
    assert kept.get("k1") is None
    assert stat.S_IMODE(kept.path.stat().st_mode) == 0o600
    now[0] += KEEP + 1
    kept.put("k3", "http://a/uploads/3", Path("h"))
    assert (kept.get("k2"), kept.get("k3")) == (None, Kept("http://a/uploads/3", False))


def test_a_changed_file_or_another_account_is_another_upload(tmp_path: Path) -> None:
    """The fingerprint holds server, user, path, size and modification time."""
    path = tmp_path / "f.bin"
    path.write_bytes(b"one")
    first = fingerprint("http://a", "alice", path)
    assert fingerprint("http://a", "alice", path) == first
    assert fingerprint("http://a", "bob", path) != first
    assert fingerprint("http://b", "alice", path) != first
    path.write_bytes(b"one more")
    assert fingerprint("http://a", "alice", path) != first


def test_a_download_lands_under_its_own_name_in_the_directory_asked(
    tmp_path: Path,
) -> None:
    """-o names the file or the directory; a name from the server is only a
    name, never a path that leaves the directory."""
    assert target_of(None, "../../etc/passwd") == Path("passwd")
    assert target_of(tmp_path, "/x/report.pdf") == tmp_path / "report.pdf"
    assert target_of(tmp_path / "mine.pdf", "report.pdf") == tmp_path / "mine.pdf"
    assert target_of(None, "") == Path("download")


def test_urls_and_error_details() -> None:
    """A base URL loses its trailing slash; a problem's detail is its message."""
    assert check_url("http://127.0.0.1:8080/") == "http://127.0.0.1:8080"
    with pytest.raises(ValueError, match="http:// or https://"):
        check_url("127.0.0.1:8080")
    assert detail_of(b'{"status": 401, "detail": "wrong password"}') == "wrong password"
    assert detail_of(b"<html>bad gateway</html>") == "<html>bad gateway</html>"


def test_the_bars_show_bytes_and_the_plain_form_a_line_per_event() -> None:
    """On a terminal a transfer is a bar with its bytes; elsewhere only its
    notes are written, one line each."""
    bars = io.StringIO()
    with Display(bars, bars=True) as display:
        meter = display.track("a.bin", 5_000_000, 1_000_000)
        meter.update(5_000_000)
        meter.note("stored")
    assert "a.bin: stored\n" in bars.getvalue()
    assert "5.0/5.0 MB" in bars.getvalue()
    plain = io.StringIO()
    with Display(plain) as display:
        meter = display.track("a.bin", 5_000_000)
        meter.update(4_000_000)
        meter.note("resuming at byte 4000000 of 5000000")
    assert plain.getvalue() == "a.bin: resuming at byte 4000000 of 5000000\n"


def test_the_client_commands_run_without_the_reactor() -> None:
    """uploadctl's module and the client load no reactor: a transfer is plain
    blocking HTTP."""
    code = (
        "import sys, uploadd.ctl, uploadd.client.commands;"
        " assert 'twisted.internet.reactor' not in sys.modules"
    )
    subprocess.run(
        [sys.executable, "-c", code],
        check=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=60,
    )


def test_upload_and_download_need_a_live_sign_in(tmp_path: Path) -> None:
    """Without a token for the server, or with an expired one, the command
    says to sign in; a token refused later says so too."""
    logins = Logins(tmp_path / "login.json")
    with pytest.raises(Mistake, match="not signed in to http://a: run uploadctl"):
        signed_in(logins, "http://a")
    logins.save(Login("http://a", "alice", "t", time.time() - 1))
    with pytest.raises(Mistake, match="the token for http://a has expired"):
        signed_in(logins, None)
    logins.save(Login("http://a", "alice", "t", time.time() + 60))
    assert signed_in(logins, "http://a/") == Server("http://a", "alice", "t")
    refused = HTTPFailure("PATCH", "http://a/uploads/1", 401, "token expired")
    assert explain(refused).endswith("(sign in again: uploadctl login)")
