"""The node seam's contract, run against both clients: the AMP + rsync client
talking to real noded twins over iosim (rsync pushes landed by a fake
process runner), and the in-memory twin the replication tests use."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar
from urllib.parse import parse_qsl, urlsplit

import attrs
import pytest
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from zope.interface.verify import verifyObject

from noded.signing import url_key, verify
from tests.support import now
from tests.unit.test_cluster import Network
from tests.unit.test_noded import SECRET
from tests.unit.test_replication import Pushes
from uploadd.cluster.amp_rsync import AmpRsyncClient
from uploadd.cluster.interface import CopyOutcome, Held, INodeClient
from uploadd.cluster.memory import MemoryNode
from uploadd.errors import NotFound, Unprocessable
from uploadd.store.interface import FileRecord, NodeRecord

T = TypeVar("T")

FILE_ID = "ab" * 16
DATA = b"the bytes of a replica"
KEY = url_key(SECRET)


@attrs.define
class Nodes:
    """Two nodes of one kind behind their clients, and the means to drive them."""

    client: INodeClient
    peer: INodeClient
    settle: Callable[[], None]
    cut: Callable[[], None]
    source: Path

    def answer(self, call: Awaitable[T]) -> T:
        """What ``call`` returns once the nodes have answered; raises what it
        raised."""

        async def calling() -> T:
            return await call

        results: list[T | Failure] = []
        Deferred.fromCoroutine(calling()).addBoth(results.append)
        self.settle()
        assert results, "no answer"
        if isinstance(results[0], Failure):
            results[0].raiseException()
        return results[0]


def noded(tmp_path: Path) -> Nodes:
    network = Network(tmp_path / "nodes")
    pushes = Pushes(network)
    network.processes = pushes
    clients = network.clients(pushes)
    client = clients(NodeRecord("n1", "127.0.0.1", 7001, 0.0))
    peer = clients(NodeRecord("n2", "127.0.0.1", 7002, 0.0))

    def settle() -> None:
        for _ in range(4):
            network.flush()
            pushes.land()
        network.flush()

    def cut() -> None:
        network.dead.add("n1")
        client.disconnect()

    nodes = Nodes(client, peer, settle, cut, tmp_path / "source")
    # The twins exist once connected; a ping tells each client its ports.
    nodes.answer(client.ping())
    nodes.answer(peer.ping())
    return nodes


def memory(tmp_path: Path) -> Nodes:
    client = MemoryNode("n1", zone="z1", http_url="http://n1.test", key=KEY)
    peer = MemoryNode("n2", zone="z1", http_url="http://n2.test", key=KEY)

    def cut() -> None:
        client.reachable = False

    return Nodes(client, peer, lambda: None, cut, tmp_path / "source")


@pytest.fixture(params=[noded, memory], ids=["amp+rsync", "memory"])
def nodes(request: pytest.FixtureRequest, tmp_path: Path) -> Nodes:
    made: Nodes = request.param(tmp_path)
    made.source.write_bytes(DATA)
    return made


def record(file_id: str = FILE_ID) -> FileRecord:
    return FileRecord(
        file_id, 1, "a b.txt", len(DATA), "", "", "text/plain", created_at=0.0
    )


HELD = Held(len(DATA), hashlib.sha256(DATA).hexdigest())


def test_both_clients_provide_the_node_interface(nodes: Nodes) -> None:
    assert verifyObject(INodeClient, nodes.client)


def test_a_ping_reports_the_nodes_state_space_and_zone(nodes: Nodes) -> None:
    status = nodes.answer(nodes.client.ping())
    assert (status.node_id, status.state, status.zone) == ("n1", "up", "z1")
    assert 0 < status.free <= status.total
    assert status.reserved == 0


def test_a_copy_put_on_a_node_is_verified_by_stat(nodes: Nodes) -> None:
    outcome = nodes.answer(nodes.client.put(FILE_ID, nodes.source))
    assert outcome.ok
    assert nodes.answer(nodes.client.stat(FILE_ID)) == HELD


def test_stat_of_a_copy_the_node_lacks_is_not_found(nodes: Nodes) -> None:
    with pytest.raises(NotFound, match=f"node n1 holds no copy of {FILE_ID}"):
        nodes.answer(nodes.client.stat(FILE_ID))


def test_a_node_copies_a_file_from_another_node_that_holds_it(nodes: Nodes) -> None:
    assert nodes.answer(nodes.peer.put(FILE_ID, nodes.source)).ok
    outcome = nodes.answer(nodes.client.copy_from(FILE_ID, nodes.peer))
    assert outcome.ok
    assert nodes.answer(nodes.client.stat(FILE_ID)) == HELD


def test_copying_from_a_node_without_the_file_is_not_found(nodes: Nodes) -> None:
    with pytest.raises(NotFound, match=f"node n2 holds no copy of {FILE_ID}"):
        nodes.answer(nodes.client.copy_from(FILE_ID, nodes.peer))


def test_a_node_cannot_copy_from_a_node_of_another_kind(nodes: Nodes) -> None:
    """An AMP node cannot be asked to push to a twin, nor the other way:
    the call raises (the replicator then tries another holder)."""
    stranger = (
        MemoryNode("m")
        if isinstance(nodes.client, AmpRsyncClient)
        else Network(Path("/nonexistent")).clients(None)(NodeRecord("x", "h", 1, 0.0))
    )
    with pytest.raises(Unprocessable, match="can copy only from"):
        nodes.answer(nodes.client.copy_from(FILE_ID, stranger))


def test_a_deleted_copy_is_gone_and_deleting_again_says_so(nodes: Nodes) -> None:
    assert nodes.answer(nodes.client.put(FILE_ID, nodes.source)).ok
    assert nodes.answer(nodes.client.delete(FILE_ID)) is True
    assert nodes.answer(nodes.client.delete(FILE_ID)) is False
    with pytest.raises(NotFound):
        nodes.answer(nodes.client.stat(FILE_ID))


def test_a_download_url_is_the_nodes_and_signed_until_it_expires(
    nodes: Nodes,
) -> None:
    url = nodes.client.download_url(record(), expires=1000)
    assert url is not None
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == (
        f"http://n1.test/files/{FILE_ID}"
    )
    grant = verify(KEY, FILE_ID, dict(parse_qsl(parts.query)), now=999.0)
    assert (grant.name, grant.content_type, grant.expires) == (
        "a b.txt",
        "text/plain",
        1000,
    )


def test_a_node_that_cannot_be_reached_fails_the_call(nodes: Nodes) -> None:
    nodes.cut()
    with pytest.raises(ConnectionError):
        nodes.answer(nodes.client.ping())


def test_a_copy_to_a_node_with_no_room_fails_without_raising(tmp_path: Path) -> None:
    """Only the twin: a noded node's disk is the real one here."""
    twin = MemoryNode("n1", capacity=len(DATA) - 1)
    source = tmp_path / "source"
    source.write_bytes(DATA)
    outcome = now(twin.put(FILE_ID, source))
    assert outcome == CopyOutcome(False, "the node has no room for the copy")
    assert twin.files == {}


def test_a_noded_client_has_no_download_url_before_the_node_said_where(
    tmp_path: Path,
) -> None:
    """The URL a noded node serves at comes with its ping answer."""
    client = Network(tmp_path).clients(None)(NodeRecord("n1", "h", 1, 0.0))
    assert client.download_url(record(), expires=1000) is None
