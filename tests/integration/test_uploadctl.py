"""uploadctl against a real SQLite database in a data dir."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pytest

from tests.integration.daemon import BIN, ctl

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
