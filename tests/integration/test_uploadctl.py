"""uploadctl against a real SQLite database in a data dir, and finding the
one a real uploadd uses."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import urllib.request
from pathlib import Path

import pytest

from tests.integration.daemon import BIN, ctl, stop_process, twistd

pytestmark = pytest.mark.integration


def test_bootstrap_creates_one_admin_once(tmp_path: Path) -> None:
    """On an empty database bootstrap makes 'admin' with a 0600 password file;
    run again it does nothing."""
    first = ctl(tmp_path, "bootstrap")
    password_file = tmp_path / "admin-password"
    assert "created user 'admin'" in first
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
    assert password_file.read_text().strip() in first
    assert ctl(tmp_path, "bootstrap") == ""
    assert ctl(tmp_path, "user", "list") == "admin\tadmin\n"


def test_users_scopes_and_mistakes(tmp_path: Path) -> None:
    """Users are added with scopes, changed and removed; mistakes exit 2."""
    ctl(
        tmp_path,
        "user",
        "add",
        "kiosk",
        "--scope",
        "upload-only",
        stdin="long-enough\n",
    )
    ctl(tmp_path, "user", "scopes", "kiosk", "read", "write")
    assert ctl(tmp_path, "user", "list") == "kiosk\tread write\n"
    token = ctl(tmp_path, "token", "kiosk", "--scope", "read").strip()
    assert token.count(".") == 2
    for args, stdin in [
        (["user", "add", "kiosk"], "long-enough\n"),
        (["user", "add", "short"], "short\n"),
        (["token", "kiosk", "--scope", "admin"], ""),
        (["user", "add", "x", "--scope", "root"], "long-enough\n"),
    ]:
        with pytest.raises(subprocess.CalledProcessError) as caught:
            ctl(tmp_path, *args, stdin=stdin)
        assert caught.value.returncode == 2
        assert caught.value.stderr.startswith(b"uploadctl: ")
    assert ctl(tmp_path, "user", "remove", "kiosk") == "removed kiosk\n"
    assert (BIN / "uploadctl").exists()


def uploadctl(
    cwd: Path, home: Path, *args: str, stdin: str = ""
) -> subprocess.CompletedProcess[bytes]:
    """uploadctl run in ``cwd`` with ``home`` as HOME and no UPLOADD_ settings."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("UPLOADD_") and k != "XDG_CONFIG_HOME"
    }
    return subprocess.run(
        [str(BIN / "uploadctl"), *args],
        cwd=cwd,
        env={**env, "HOME": str(home)},
        input=stdin.encode(),
        capture_output=True,
        timeout=60,
    )


def test_run_where_no_database_is_it_refuses_to_make_one(tmp_path: Path) -> None:
    """With no config found, uploadctl does not make a database under the
    working directory: it exits 2 naming the path and what it searched;
    --create makes it, and so does bootstrap."""
    elsewhere, home = tmp_path / "elsewhere", tmp_path / "home"
    elsewhere.mkdir()
    refused = uploadctl(elsewhere, home, "user", "add", "alice", stdin="long-enough\n")
    assert refused.returncode == 2
    error = refused.stderr.decode()
    assert error.startswith(
        f"uploadctl: no database at {elsewhere}/var/uploadd/uploadd.sqlite3"
        " ([storage] data_dir var/uploadd, the default; no config file:"
    )
    assert f"{home}/.config/uploadd/uploadd.conf" in error
    assert "'uploadctl bootstrap'" in error
    assert list(elsewhere.iterdir()) == []
    made = uploadctl(
        elsewhere, home, "--create", "user", "add", "alice", stdin="long-enough\n"
    )
    assert made.returncode == 0, made.stderr
    assert (elsewhere / "var" / "uploadd" / "uploadd.sqlite3").exists()
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    bootstrapped = uploadctl(fresh, home, "bootstrap")
    assert b"created user 'admin'" in bootstrapped.stdout, bootstrapped.stderr


def test_uploadctl_anywhere_manages_the_users_of_the_uploadd_that_shares_its_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """uploadd started in one directory and uploadctl run in another both read
    ~/.config/uploadd/uploadd.conf: a user added there signs in."""
    home, data = tmp_path / "home", tmp_path / "data"
    config = home / ".config" / "uploadd" / "uploadd.conf"
    config.parent.mkdir(parents=True)
    config.write_text(f"[storage]\ndata_dir = {data}\n[http]\nport = 0\n")
    data.mkdir()
    (tmp_path / "server").mkdir()
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.chdir(tmp_path / "server")
    process = twistd("uploadd", data, data / "uploadd.port", [], search=True)
    try:
        added = uploadctl(
            tmp_path / "elsewhere", home, "user", "add", "alice", stdin="long-enough\n"
        )
        assert added.returncode == 0, added.stderr
        port = int((data / "uploadd.port").read_text())
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/auth/token",
            data=json.dumps({"username": "alice", "password": "long-enough"}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            assert json.load(response)["token"].count(".") == 2
    finally:
        stop_process(process)
    assert list((tmp_path / "elsewhere").iterdir()) == []


def test_s3_keys_are_made_listed_and_revoked(tmp_path: Path) -> None:
    """``s3-key create`` shows a key id and its secret once (the database
    holds no copy of the secret); ``list`` shows keys without secrets;
    ``revoke`` ends one; a scope the user does not hold is refused."""
    ctl(
        tmp_path,
        "user",
        "add",
        "kiosk",
        "--scope",
        "upload-only",
        stdin="long-enough\n",
    )
    made = ctl(tmp_path, "s3-key", "create", "kiosk", "--scope", "upload-only")
    key_id = made.split("access key id:", 1)[1].split()[0]
    secret = made.split("secret access key:", 1)[1].split()[0]
    assert key_id.startswith("UPLD") and len(key_id) == 20 and len(secret) == 40
    assert "shown this once" in made
    assert secret.encode() not in (tmp_path / "uploadd.sqlite3").read_bytes()
    listed = ctl(tmp_path, "s3-key", "list")
    assert listed.startswith(f"{key_id}\tkiosk\tupload-only\t") and secret not in listed
    assert ctl(tmp_path, "s3-key", "revoke", key_id) == f"revoked {key_id}\n"
    assert "\trevoked " in ctl(tmp_path, "s3-key", "list", "kiosk")
    with pytest.raises(subprocess.CalledProcessError) as caught:
        ctl(tmp_path, "s3-key", "create", "kiosk", "--scope", "write")
    assert caught.value.returncode == 2
    assert b"holds only upload-only" in caught.value.stderr
