"""Access keys: ids and secrets, sealed so that only this server opens them
(a real SQLite database holds no secret; another server secret, a row
moved to another key, a revoked key or a user without the scope opens
nothing), and ``uploadctl s3-key`` on a real database."""

from __future__ import annotations

import base64
import io
import re
import sqlite3
from pathlib import Path

import attrs
import pytest
import pytest_twisted
from twisted.internet.task import Clock

from noded.reactor import checked
from noded.secret import token_secret
from uploadd import ctl, errors
from uploadd.auth.access_keys import AccessKeys, Sealer
from uploadd.config import Config, load_config
from uploadd.store.memory import MemoryStore
from uploadd.store.sqlite import SQLiteStore

SERVER = b"k" * 32


@pytest_twisted.ensureDeferred()
async def test_the_database_holds_no_secret_and_only_this_server_opens_it(
    tmp_path: Path,
) -> None:
    """A new key is 'UPLD' and 16 capitals or digits with a 40-character
    secret; its database row holds the secret in no form a reader can use;
    the key opens with this server's secret only, and only for its own id
    and user."""
    from twisted.internet import reactor

    path = tmp_path / "meta.sqlite3"
    store = SQLiteStore(path, checked(reactor))
    try:
        await store.migrate()
        alice = await store.add_user("alice", "h", frozenset({"write"}), 0.0)
        keys = AccessKeys.with_secret(store, SERVER, Clock())
        record, secret = await keys.create(alice, "read")
        await keys.create(alice, "write")
        opened = await keys.secret_of(record.key_id)
        assert opened is not None
        assert (opened.secret, opened.user, opened.scope) == (secret, alice, "read")
        assert opened.principal.scopes == frozenset({"read"})
        elsewhere = AccessKeys.with_secret(store, b"another server" * 3, Clock())
        assert await elsewhere.secret_of(record.key_id) is None
        # The sealed secret copied onto another key's row opens nowhere.
        moved = attrs.evolve(record, key_id="UPLDMOVEDMOVEDMOVED1")
        await store.add_access_key(moved)
        assert await keys.secret_of(moved.key_id) is None
    finally:
        store.close()
    assert re.fullmatch(r"UPLD[A-Z0-9]{16}", record.key_id)
    assert re.fullmatch(r"[A-Za-z0-9]{40}", secret)
    with sqlite3.connect(path) as raw:
        rows = raw.execute("SELECT * FROM access_keys").fetchall()
    assert len(rows) == 3
    dumped = repr(rows)
    assert secret not in dumped and secret.lower() not in dumped.lower()
    assert path.read_bytes().find(secret.encode()) == -1


def test_a_sealed_secret_fails_when_tampered_with() -> None:
    """A sealed secret opens under the same key id and user only; any
    change to it, or garbage, opens nothing."""
    sealer = Sealer.from_server_secret(SERVER)
    sealed = sealer.seal("UPLDA", 1, "s3cr3t")
    assert sealer.unseal("UPLDA", 1, sealed) == "s3cr3t"
    assert sealer.unseal("UPLDA", 2, sealed) is None
    assert sealer.unseal("UPLDB", 1, sealed) is None
    raw = bytearray(base64.urlsafe_b64decode(sealed[3:]))
    for at in (0, 12, len(raw) - 1):  # the nonce, the secret, the tag
        changed = raw.copy()
        changed[at] ^= 1
        flipped = "v1." + base64.urlsafe_b64encode(bytes(changed)).decode()
        assert sealer.unseal("UPLDA", 1, flipped) is None
    for garbage in ("", "v1.", "v1.!!!", "v2." + sealed[3:], "s3cr3t"):
        assert sealer.unseal("UPLDA", 1, garbage) is None
    assert sealer.seal("UPLDA", 1, "s3cr3t") != sealed  # a fresh nonce each time


@pytest_twisted.ensureDeferred()
async def test_a_key_is_limited_to_what_its_user_holds_and_can_be_revoked() -> None:
    """A key's scope is write, read or upload-only and within its user's
    scopes; it stops opening once revoked, once its user loses the scope,
    and once its user is gone."""
    store, clock = MemoryStore(), Clock()
    keys = AccessKeys.with_secret(store, SERVER, clock)
    reader = await store.add_user("reader", "h", frozenset({"read"}), 0.0)
    admin = await store.add_user("root", "h", frozenset({"admin"}), 0.0)
    with pytest.raises(errors.Forbidden):
        await keys.create(reader, "write")
    with pytest.raises(errors.Invalid):
        await keys.create(admin, "admin")
    assert (await keys.create(admin, "upload-only"))[0].scope == "upload-only"
    read, _ = await keys.create(reader, "read")
    clock.advance(10)
    assert await keys.revoke(read.key_id)
    assert not await keys.revoke(read.key_id)
    assert not await keys.revoke("UPLDNOTHINGNOTHING00")
    assert await keys.secret_of(read.key_id) is None
    assert (await keys.keys_of(reader))[0].revoked_at == 10.0
    again, _ = await keys.create(reader, "read")
    assert await keys.secret_of(again.key_id) is not None
    await store.update_user("reader", scopes=frozenset({"upload-only"}))
    assert await keys.secret_of(again.key_id) is None
    await store.delete_user("reader")
    assert await keys.secret_of(again.key_id) is None
    assert await keys.secret_of("UPLDNOTHINGNOTHING00") is None
    assert [k.user_id for k in await keys.keys_of()] == [admin.id]


# -- uploadctl s3-key ----------------------------------------------------------------


def config_in(tmp_path: Path) -> Config:
    """uploadctl's config for a data dir of its own (a secret generated into it)."""
    return load_config(
        environ={}, options={("storage", "data_dir"): str(tmp_path / "data")}
    )


async def uploadctl(config: Config, *args: str) -> str:
    """One uploadctl command, in this process, on the real reactor."""
    from twisted.internet import reactor

    out = io.StringIO()
    await ctl.run(checked(reactor), ctl.parser().parse_args(list(args)), config, out)
    return out.getvalue()


@pytest_twisted.ensureDeferred()
async def test_uploadctl_makes_lists_and_revokes_keys_showing_a_secret_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``s3-key create`` prints the id and the secret once (and says so),
    sealed under the daemon's own secret; ``list`` shows keys without
    secrets; ``revoke`` ends one; mistakes are CommandErrors."""
    from twisted.internet import reactor

    config = config_in(tmp_path)
    monkeypatch.setattr("sys.stdin", io.StringIO("long-enough\n"))
    await uploadctl(config, "user", "add", "alice", "--scope", "write")
    made = await uploadctl(config, "s3-key", "create", "alice", "--scope", "read")
    key_id = re.search(r"access key id: +(UPLD[A-Z0-9]{16})\n", made)
    secret = re.search(r"secret access key: +([A-Za-z0-9]{40})\n", made)
    assert key_id and secret and "shown this once" in made
    await uploadctl(config, "s3-key", "create", "alice")
    listed = await uploadctl(config, "s3-key", "list", "alice")
    assert secret.group(1) not in listed
    rows = [line.split("\t") for line in listed.splitlines()]
    first = rows[0]
    assert (first[0], first[1], first[2], first[4]) == (
        key_id.group(1),
        "alice",
        "read",
        "active",
    )
    assert [r[2] for r in rows] == ["read", "write"]
    # The daemon opens the key with the secret it reads from the data dir.
    store = SQLiteStore(config.database_path, checked(reactor))
    try:
        daemon_secret = token_secret(config.auth.secret, config.storage.data_dir)
        keys = AccessKeys.with_secret(store, daemon_secret, Clock())
        opened = await keys.secret_of(key_id.group(1))
        assert opened is not None and opened.secret == secret.group(1)
    finally:
        store.close()
    revoked = await uploadctl(config, "s3-key", "revoke", key_id.group(1))
    assert revoked == f"revoked {key_id.group(1)}\n"
    assert "\trevoked " in await uploadctl(config, "s3-key", "list")
    for mistake in (
        ("s3-key", "revoke", key_id.group(1)),
        ("s3-key", "revoke", "UPLDNOTHINGNOTHING00"),
        ("s3-key", "create", "nobody"),
        ("s3-key", "list", "nobody"),
    ):
        with pytest.raises(ctl.CommandError):
            await uploadctl(config, *mistake)
    with pytest.raises(SystemExit):
        ctl.parser().parse_args(["s3-key", "create", "alice", "--scope", "admin"])
