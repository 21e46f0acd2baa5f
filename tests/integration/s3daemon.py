"""A real uploadd with its S3 listener on a free port, access keys made by
``uploadctl s3-key create``, and boto3 clients signing with them."""

from __future__ import annotations

import hashlib
import re
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import attrs
import boto3
import pytest
from botocore.config import Config

from tests.integration.daemon import Daemon, ctl, start

REGION = "us-east-1"


@attrs.frozen
class Key:
    key_id: str
    secret: str


@attrs.define
class S3Daemon:
    daemon: Daemon
    port: int
    scheme: str = "http"

    @property
    def endpoint(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def key(self, user: str = "alice", scope: str = "write") -> Key:
        """A new access key of ``user`` (uploadctl s3-key create)."""
        out = ctl(self.daemon.data_dir, "s3-key", "create", user, "--scope", scope)
        key_id = re.search(r"access key id:\s+(\S+)", out)
        secret = re.search(r"secret access key:\s+(\S+)", out)
        assert key_id and secret, out
        return Key(key_id.group(1), secret.group(1))

    def client(self, key: Key, **config: Any) -> Any:
        """A boto3 S3 client signing with ``key``, path-style, without
        retries (a failure shows at once). Presigned URLs and forms are
        signed with Signature Version 4 (boto3 presigns with version 2 for
        us-east-1 unless told; uploadd, as S3's newer regions, takes only 4)."""
        config.setdefault("signature_version", "s3v4")
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=key.key_id,
            aws_secret_access_key=key.secret,
            region_name=REGION,
            verify=False,
            config=Config(
                s3={"addressing_style": "path"},
                retries={"max_attempts": 1, "mode": "standard"},
                **config,
            ),
        )

    def files(self, name: str) -> list[dict[str, Any]]:
        """alice's files named ``name``, as ``GET /files`` of the main API
        lists them."""
        found = self.daemon.json("GET", f"/files?q={quote(name)}&page_size=100")
        return [f for f in found["results"] if f["filename"] == name]

    def in_flight(self) -> int:
        health = self.daemon.json("GET", "/health")
        return int(health["uploads_in_flight"])

    def settle(self) -> None:
        """Wait until no body is in flight on any listener."""
        deadline = time.monotonic() + 10
        while self.in_flight() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert self.in_flight() == 0

    def stop(self) -> None:
        self.daemon.stop()


def start_s3(data_dir: Path, *options: str, endpoint: str = "") -> S3Daemon:
    """uploadd with ``[s3] enabled`` on a free loopback port (or on
    ``endpoint``), and alice."""
    daemon = start(
        data_dir,
        "--s3-enabled=true",
        f"--s3-endpoint={endpoint or 'tcp:0:interface=127.0.0.1'}",
        *options,
    )
    port = int((data_dir / "s3.port").read_text())
    return S3Daemon(daemon, port, "https" if endpoint.startswith("ssl:") else "http")


def running(data_dir: Path, *options: str, endpoint: str = "") -> Iterator[S3Daemon]:
    s3 = start_s3(data_dir, *options, endpoint=endpoint)
    try:
        yield s3
    finally:
        s3.stop()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def unverified_tls() -> ssl.SSLContext:
    """A TLS context that takes the test's self-signed certificate."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def error_code(error: Any) -> str:
    """The S3 error code a botocore ClientError carries."""
    code: str = error.response["Error"]["Code"]
    return code


def body_of(client: Any, bucket: str, key: str, **options: Any) -> bytes:
    data: bytes = client.get_object(Bucket=bucket, Key=key, **options)["Body"].read()
    return data


def refused(call: Any, **options: Any) -> Any:
    """The ClientError ``call(**options)`` raises (it must raise one)."""
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as caught:
        call(**options)
    return caught.value
