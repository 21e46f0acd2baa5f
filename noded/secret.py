"""Secrets (the token signing key, the cluster secret, uploadd's Web Push
key): configured, or generated once into the data dir."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path

from twisted.logger import Logger

from noded.private import DIRECTORY, FILE, tighten

log = Logger()


class NoSecret(Exception):
    """There is no secret to read; str() says where it was looked for."""


def random_hex() -> bytes:
    """A new secret: 32 random bytes, in hex."""
    return secrets.token_hex(32).encode("ascii")


def token_secret(
    configured: str,
    data_dir: Path,
    name: str = "secret",
    create: bool = True,
    generate: Callable[[], bytes] = random_hex,
) -> bytes:
    """``configured`` if set; else ``<data_dir>/<name>``, created 0600 on
    first use with ``generate()`` (or NoSecret, when ``create`` is false),
    and made 0600 if an older version left it looser."""
    if configured:
        return configured.encode("utf-8")
    path = data_dir / name
    try:
        value = path.read_bytes().strip()
    except FileNotFoundError:
        if not create:
            raise NoSecret(f"no secret configured and none in {path}") from None
    else:
        tighten(path, FILE)
        return value
    data_dir.mkdir(mode=DIRECTORY, parents=True, exist_ok=True)
    value = generate()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        # Another process created it first: use theirs.
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as handle:
        handle.write(value)
        handle.flush()
        os.fsync(handle.fileno())
    log.info("generated a secret in {path}", path=str(path))
    return value
