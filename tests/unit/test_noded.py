"""noded in memory: the AMP protocol over iosim, rsyncd config, signed URLs,
downloads, the rsync process protocol, the reserve."""

from __future__ import annotations

import base64
import hashlib
import json
import stat
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import attrs
import pytest
import pytest_twisted
from treq.testing import StubTreq
from twisted.internet.defer import Deferred
from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.internet.task import Clock
from twisted.protocols import amp
from twisted.python.failure import Failure
from twisted.test.iosim import connectedServerAndClient

from noded import rsync
from noded.client import authenticate
from noded.config import load_config
from noded.files import NodeFiles
from noded.http import Downloads
from noded.node import Node, NodeProtocol
from noded.protocol import Delete, Ping, Stat, Unauthorized, UnknownFile
from noded.rsyncd import REFUSED, daemon_args, write_rsyncd_files
from noded.signing import BadSignature, signed_query, url_key, verify
from noded.threads import run_inline
from tests.support import FakeReactor, pumped

SECRET = b"c" * 40
FILE_ID = "ab" * 16


def make_node(tmp_path: Path, **settings: str) -> Node:
    config = load_config(
        environ={},
        options={
            ("node", "data_dir"): str(tmp_path),
            ("node", "id"): "n1",
            ("node", "zone"): "z1",
            **{tuple(k.split("__")): v for k, v in settings.items()},  # type: ignore[misc]
        },
    )
    return Node(config, NodeFiles(tmp_path), SECRET, run_inline, FakeReactor())


def put(node: Node, file_id: str, data: bytes) -> None:
    path = node.files.path(file_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def pair(node: Node) -> tuple[amp.AMP, NodeProtocol, Any]:
    client, server, pump = connectedServerAndClient(lambda: NodeProtocol(node), amp.AMP)
    return client, server, pump


def result(pending: Any, pump: Any) -> Any:
    """The outcome (value or Failure) of a call over the pumped connection."""
    if not isinstance(pending, Deferred):
        pending = Deferred.fromCoroutine(pending)
    found: list[Any] = []
    pending.addBoth(found.append)
    pump.flush()
    assert found, "no answer"
    return found[0]


def test_nothing_is_served_before_authentication(tmp_path: Path) -> None:
    """Ping and Stat fail UNAUTHORIZED until the peer proves the secret."""
    client, _, pump = pair(make_node(tmp_path))
    failure = result(client.callRemote(Ping), pump)
    assert isinstance(failure, Failure) and failure.check(Unauthorized)
    failure = result(client.callRemote(Stat, file_id=FILE_ID), pump)
    assert failure.check(Unauthorized)


def test_a_wrong_secret_is_refused(tmp_path: Path) -> None:
    """A peer with another secret is refused and disconnected."""
    client, server, pump = pair(make_node(tmp_path))
    outcome = result(authenticate(client, b"x" * 40), pump)
    assert isinstance(outcome, Failure)
    assert not server.authenticated


def test_ping_stat_delete_after_authentication(tmp_path: Path) -> None:
    """With the secret: Ping reports id, zone, state and space; Stat the size
    and sha256; Delete removes; Stat of a missing file is UNKNOWN_FILE."""
    node = make_node(tmp_path, node__reserve="0")
    put(node, FILE_ID, b"replica bytes")
    client, server, pump = pair(node)
    assert result(authenticate(client, SECRET), pump) == "n1"
    assert server.authenticated
    ping = result(client.callRemote(Ping), pump)
    assert (ping["node_id"], ping["zone"], ping["state"]) == ("n1", "z1", "up")
    assert ping["total"] >= ping["free"] > 0
    found = result(client.callRemote(Stat, file_id=FILE_ID), pump)
    assert found == {"size": 13, "sha256": hashlib.sha256(b"replica bytes").hexdigest()}
    assert result(client.callRemote(Delete, file_id=FILE_ID), pump) == {"deleted": True}
    missing = result(client.callRemote(Stat, file_id=FILE_ID), pump)
    assert missing.check(UnknownFile)
    traversal = result(client.callRemote(Stat, file_id="../../etc/passwd"), pump)
    assert traversal.check(UnknownFile)


def test_a_node_below_its_reserve_is_read_only(tmp_path: Path) -> None:
    """Free space under the reserve turns an up node read-only; draining stays."""
    node = make_node(tmp_path, node__reserve="1T")
    assert node.state(free=10**9) == "read-only"
    assert make_node(tmp_path, node__reserve="1K").state(free=10**9) == "up"
    draining = make_node(tmp_path, node__state="draining", node__reserve="1T")
    assert draining.state(free=0) == "draining"


def test_rsyncd_config_is_write_only_and_refuses_deletes(tmp_path: Path) -> None:
    """The generated module takes pushes from allowed hosts only, with a 0600
    secrets file, and refuses every delete option."""
    node = make_node(tmp_path, rsync__hosts_allow="10.0.0.0/8 127.0.0.1")
    conf = write_rsyncd_files(node.config, SECRET)
    text = conf.read_text()
    assert "write only = yes" in text and "read only = no" in text
    assert "list = no" in text and "auth users = uploadd" in text
    assert "hosts allow = 10.0.0.0/8 127.0.0.1" in text and "hosts deny = *" in text
    assert f"refuse options = {REFUSED}" in text
    assert "use chroot = no" in text
    secrets = tmp_path / "rsyncd.secrets"
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o600
    assert secrets.read_text() == f"uploadd:{rsync.password(SECRET)}\n"
    args = daemon_args(node.config, conf)
    assert "--no-detach" in args and "--address=127.0.0.1" in args


def test_push_arguments_never_write_in_place() -> None:
    args = rsync.push_args(
        "rsync", Path("/s/x"), "10.0.0.2", 873, FILE_ID, Path("/p"), 30, 5
    )
    assert "--partial" not in args and "--inplace" not in args
    assert "--timeout=30" in args and "--contimeout=5" in args
    assert args[-1] == f"rsync://uploadd@10.0.0.2:873/replicas/ab/{FILE_ID}"


@attrs.define
class FakeTransport:
    signals: list[str] = attrs.field(factory=list)

    def signalProcess(self, name: str) -> None:
        self.signals.append(name)


def test_an_rsync_exit_is_read_with_its_meaning_and_a_deadline_kill_is_minus_one() -> (
    None
):
    """Exit codes come back with their meaning; a kill at the deadline is -1."""
    done = rsync.RsyncProcess()
    done.childDataReceived(2, b"@ERROR: auth failed on module replicas\n")
    done.processEnded(Failure(ProcessTerminated(exitCode=5)))
    outcomes: list[rsync.Outcome] = []
    done.ended.addCallback(outcomes.append)
    assert outcomes[0].code == 5
    assert "auth" in outcomes[0].meaning and "auth failed" in outcomes[0].stderr
    ok = rsync.RsyncProcess()
    ok.processEnded(Failure(ProcessDone(0)))
    ok.ended.addCallback(outcomes.append)
    assert outcomes[1].ok
    slow = rsync.RsyncProcess()
    slow.transport = FakeTransport()  # type: ignore[assignment]
    slow.kill()
    slow.processEnded(Failure(ProcessTerminated(signal=9)))
    slow.ended.addCallback(outcomes.append)
    assert outcomes[2].code == rsync.KILLED
    assert slow.transport.signals == ["KILL"]  # type: ignore[union-attr]


def test_signed_urls_verify_until_they_expire() -> None:
    key = url_key(SECRET)
    query = dict(parse_qsl(signed_query(key, FILE_ID, 1000, "a.txt", "text/plain")))
    grant = verify(key, FILE_ID, query, now=999)
    assert (grant.name, grant.content_type) == ("a.txt", "text/plain")
    with pytest.raises(BadSignature, match="expired"):
        verify(key, FILE_ID, query, now=1000)
    with pytest.raises(BadSignature, match="does not match"):
        verify(key, "cd" * 16, query, now=999)
    with pytest.raises(BadSignature, match="does not match"):
        verify(url_key(b"other" * 8), FILE_ID, query, now=999)
    with pytest.raises(BadSignature, match="not signed"):
        verify(key, FILE_ID, {}, now=999)


@pytest_twisted.ensureDeferred()
async def test_downloads_need_a_valid_signature(tmp_path: Path) -> None:
    """A signed URL serves the file (and ranges); tampered or expired is 403;
    an unheld file is 404."""
    node = make_node(tmp_path)
    put(node, FILE_ID, b"0123456789")
    key = url_key(SECRET)
    clock = Clock()
    clock.advance(1_000_000)
    client: Any = StubTreq(Downloads(node.files, key, clock))

    async def get(url: str, **headers: str) -> tuple[int, bytes, Any]:
        response = await pumped(
            client, client.get(f"http://node{url}", headers=headers)
        )
        return response.code, await pumped(client, response.content()), response.headers

    query = signed_query(key, FILE_ID, 1_000_060, "digits.txt", "text/plain")
    code, body, headers = await get(f"/files/{FILE_ID}?{query}")
    assert (code, body) == (200, b"0123456789")
    assert "digits.txt" in headers.getRawHeaders("content-disposition")[0]
    code, body, _ = await get(f"/files/{FILE_ID}?{query}", range="bytes=2-4")
    assert (code, body) == (206, b"234")
    tampered = query.replace("digits", "others")
    assert (await get(f"/files/{FILE_ID}?{tampered}"))[0] == 403
    clock.advance(61)
    assert (await get(f"/files/{FILE_ID}?{query}"))[0] == 403
    other = "cd" * 16
    fresh = signed_query(key, other, 1_000_200, "x", "text/plain")
    assert (await get(f"/files/{other}?{fresh}"))[0] == 404
    # With the sha256 signed in, the node's answer has it as a strong ETag
    # and honours conditional requests; a changed sha256 is a bad signature.
    sha = hashlib.sha256(b"0123456789").hexdigest()
    tagged = signed_query(key, FILE_ID, 1_000_200, "d.txt", "text/plain", sha)
    code, _, headers = await get(f"/files/{FILE_ID}?{tagged}")
    assert (code, headers.getRawHeaders("etag")) == (200, [f'"{sha}"'])
    assert headers.getRawHeaders("last-modified")
    fresh_copy = {"If-None-Match": f'"{sha}"'}
    assert (await get(f"/files/{FILE_ID}?{tagged}", **fresh_copy))[0] == 304
    stale = {"Range": "bytes=2-4", "If-Range": '"stale"'}
    code, body, _ = await get(f"/files/{FILE_ID}?{tagged}", **stale)
    assert (code, body) == (200, b"0123456789")
    forged = tagged.replace(sha, "0" * 64)
    assert (await get(f"/files/{FILE_ID}?{forged}"))[0] == 403


@pytest_twisted.ensureDeferred()
async def test_a_download_asked_for_its_digest_carries_the_whole_files(
    tmp_path: Path,
) -> None:
    """With the sha256 signed into its URL and Want-Repr-Digest asked, the
    node's answer has Repr-Digest: sha-256 of the whole file, for a range
    and a HEAD too; not unasked, not when sha-256 is called unacceptable,
    and not when the URL carries no sha256 (the node does not hash)."""
    node = make_node(tmp_path)
    data = b"0123456789"
    put(node, FILE_ID, data)
    key = url_key(SECRET)
    clock = Clock()
    client: Any = StubTreq(Downloads(node.files, key, clock))
    sha = hashlib.sha256(data)
    expected = ["sha-256=:" + base64.b64encode(sha.digest()).decode() + ":"]

    async def digest_of(query: str, method: str = "GET", **headers: str) -> Any:
        url = f"http://node/files/{FILE_ID}?{query}"
        response = await pumped(client, client.request(method, url, headers=headers))
        await pumped(client, response.content())
        assert response.code in (200, 206)
        return response.headers.getRawHeaders("repr-digest")

    tagged = signed_query(key, FILE_ID, 60, "d.txt", "text/plain", sha.hexdigest())
    want = {"Want-Repr-Digest": "sha-512=10, sha-256=3"}
    assert await digest_of(tagged, **want) == expected
    assert await digest_of(tagged, Range="bytes=2-4", **want) == expected
    assert await digest_of(tagged, "HEAD", **want) == expected
    assert await digest_of(tagged) is None
    assert await digest_of(tagged, **{"Want-Repr-Digest": "sha-256=0"}) is None
    untagged = signed_query(key, FILE_ID, 60, "d.txt", "text/plain")
    assert await digest_of(untagged, **want) is None


@pytest_twisted.ensureDeferred()
async def test_a_node_answers_health_checks(tmp_path: Path) -> None:
    """GET /health on the download port is 200 JSON, unsigned and uncached:
    what a container's or a load balancer's health check asks."""
    node = make_node(tmp_path)
    client: Any = StubTreq(Downloads(node.files, url_key(SECRET), Clock()))
    response = await pumped(client, client.get("http://node/health"))
    assert response.code == 200
    assert response.headers.getRawHeaders("cache-control") == ["no-store"]
    body = json.loads(await pumped(client, response.content()))
    assert body["status"] == "ok"


def test_a_read_only_node_closes_its_rsync_module(tmp_path: Path) -> None:
    """Below the reserve the node's rsync module turns read-only, so nothing
    can be pushed; with room again it opens."""
    node = make_node(tmp_path, node__reserve="1T")
    write_rsyncd_files(node.config, SECRET)
    client, _, pump = pair(node)
    result(authenticate(client, SECRET), pump)
    assert result(client.callRemote(Ping), pump)["state"] == "read-only"
    assert "read only = yes" in (tmp_path / "rsyncd.conf").read_text()
    node.config = load_config(
        environ={},
        options={("node", "data_dir"): str(tmp_path), ("node", "reserve"): "0"},
    )
    assert result(client.callRemote(Ping), pump)["state"] == "up"
    assert "read only = no" in (tmp_path / "rsyncd.conf").read_text()
