"""Replication and repair in memory: the replicator and repairer against
real noded twins over iosim, rsync pushes landed by a fake process runner,
time on a Clock."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure

from noded.threads import run_inline
from tests.support import FakeReactor, now, stored_file
from tests.unit.test_cluster import Network, tick, up
from uploadd.cluster.interface import NodeStatus
from uploadd.cluster.pinger import Pinger
from uploadd.cluster.registry import Health, Registry
from uploadd.cluster.repair import Repairer, plan
from uploadd.cluster.replicator import ReplicationSettings, Replicator
from uploadd.failures import FailureLog
from uploadd.store.blobs import BlobStore
from uploadd.store.interface import FileRecord
from uploadd.store.memory import MemoryStore

KIB = 1024


class Pushes(FakeReactor):
    """A reactor whose processes are rsync pushes: each waits for ``land()``,
    then lands in the node twin its URL names, or fails as rsync would
    (5 when the node's module is closed, 11 when its disk has no room)."""

    def __init__(self, network: Network) -> None:
        super().__init__()
        self.network = network
        self.waiting: list[tuple[ProcessProtocol, list[str]]] = []

    def spawnProcess(  # type: ignore[override]  # no transport: land() ends it
        self, protocol: ProcessProtocol, executable: str, args: list[str], **_: Any
    ) -> None:
        self.waiting.append((protocol, list(args)))

    def land(self) -> None:
        waiting, self.waiting = self.waiting, []
        for protocol, args in waiting:
            code = self._push(Path(args[-2]), args[-1])
            ended = ProcessDone(0) if code == 0 else ProcessTerminated(exitCode=code)
            protocol.processEnded(Failure(ended))

    def _push(self, source: Path, url: str) -> int:
        address, path = url.split("@", 1)[1].split("/", 1)
        port = int(address.rsplit(":", 1)[1])
        twin = next(t for t in self.network.twins.values() if t.rsync_port == port)
        if not twin.accepting:
            return 5
        data = source.read_bytes()
        if twin.files.space()[0] < len(data):
            return 11
        target = twin.files.path(path.rsplit("/", 1)[1])
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        return 0


@attrs.define
class Cluster:
    """uploadd's cluster parts in memory, around the node twins."""

    network: Network
    clock: Pushes
    store: MemoryStore
    blobs: BlobStore
    registry: Registry
    pinger: Pinger
    replicator: Replicator

    def settle(self, rounds: int = 60) -> None:
        """Land the pushes, answer the calls and pings, let time pass."""
        for _ in range(rounds):
            self.clock.land()
            tick(self.pinger, self.network, self.clock, 0.5)

    def add_file(self, data: bytes) -> FileRecord:
        return stored_file(self.store, self.blobs, self.clock, data)

    def held_by(self, node_id: str) -> list[str]:
        return sorted(f for (f, n) in self.store.replicas if n == node_id)


def cluster(tmp_path: Path, replicas: int, network: Network, *ids: str) -> Cluster:
    """Nodes ``ids`` registered and UP, and a replicator placing ``replicas``
    copies of each file."""
    clock = Pushes(network)
    store = MemoryStore()
    blobs = BlobStore(tmp_path / "uploadd")
    registry = Registry(store, clock, network.clients(clock))
    now(registry.load(tuple((i, "127.0.0.1", 7000 + n) for n, i in enumerate(ids))))
    pinger = Pinger(registry, clock, 2.0, 1.0, rise=2, fall=3)
    settings = ReplicationSettings(
        replicas=replicas,
        transfers_per_node=2,
        keep_local=True,
    )
    replicator = Replicator(
        registry, store, blobs, run_inline, clock, settings, failures=FailureLog(clock)
    )
    running = Cluster(network, clock, store, blobs, registry, pinger, replicator)
    tick(pinger, network, clock)
    tick(pinger, network, clock)
    assert all(n.health is Health.UP for n in registry.nodes.values())
    return running


def test_copies_on_their_way_count_against_a_nodes_room(tmp_path: Path) -> None:
    """14 files of 4 KiB stored at once, 3 copies each, onto a node with
    24 KiB of room above its reserve and two roomy ones: the tight node takes
    the 6 copies that fit and never dips below its reserve, no copy fails,
    and the roomy nodes hold every file."""
    network = Network(tmp_path / "nodes")
    network.reserve["tight"] = "16K"
    network.capacity.update(tight=40 * KIB, roomy1=10_000 * KIB, roomy2=10_000 * KIB)
    running = cluster(tmp_path, 3, network, "tight", "roomy1", "roomy2")
    records = [running.add_file(bytes([n]) * 4 * KIB) for n in range(14)]
    for record in records:
        running.replicator.stored(record)
    running.settle()
    free, _ = network.twins["tight"].files.space()
    assert free >= 16 * KIB
    assert running.replicator.failures.entries == []
    assert len(running.held_by("tight")) == 6
    everything = sorted(r.id for r in records)
    assert running.held_by("roomy1") == running.held_by("roomy2") == everything
    assert [n.in_flight for n in running.registry.nodes.values()] == [0, 0, 0]


def test_a_node_silent_after_a_copy_is_charged_for_it(tmp_path: Path) -> None:
    """After a copy the node is asked for its space; if it does not answer,
    the copy's bytes come off what it last said, and an answer to a ping
    asked before then is not taken over that."""
    network = Network(tmp_path / "nodes")
    running = cluster(tmp_path, 1, network, "n1")
    node = running.registry.get("n1")
    before = node.free
    network.pumps.clear()  # n1 hears nothing more
    stale = Deferred.fromCoroutine(running.registry.ping(node, 1.0))
    stale.addErrback(lambda f: None)
    refreshing = Deferred.fromCoroutine(
        running.registry.refresh_space(node, 1.0, 4 * KIB)
    )
    running.clock.advance(1.0)
    assert refreshing.called
    assert node.free == before - 4 * KIB
    node.note_space(node.pings_asked - 1, NodeStatus("n1", "up", before, 1, 0, 0.0))
    assert node.free == before - 4 * KIB


def test_a_repair_pass_counts_the_copies_it_made(tmp_path: Path) -> None:
    """A file whose second copy is on a node DOWN past repair_after is copied
    to the spare node, and the pass reports that copy (it compared a count
    with the dead copy to one without, and reported 0)."""
    network = Network(tmp_path / "nodes")
    running = cluster(tmp_path, 2, network, "a", "b", "c")
    record = running.add_file(b"precious bytes")
    running.replicator.stored(record)
    running.settle(4)
    holders = [n for n in "abc" if running.held_by(n)]
    assert len(holders) == 2
    dead = holders[1]
    network.dead.add(dead)
    running.registry.get(dead).client.disconnect()
    running.settle(140)  # 70 s: DOWN, then past repair_after
    assert running.registry.get(dead).health is Health.DOWN
    repairer = Repairer(
        running.registry,
        running.store,
        running.replicator,
        running.clock,
        replicas=2,
        repair_after=60.0,
        interval=10.0,
    )
    passed = Deferred.fromCoroutine(repairer.repair())
    running.settle(4)
    assert passed.called
    assert repairer.last_pass["copied"] == 1
    spare = next(n for n in "abc" if n not in holders)
    assert running.held_by(spare) == [record.id]


def test_surplus_copies_are_dropped_from_tied_nodes_in_turn() -> None:
    """Nodes added together tie on added_at: their surplus copies are spread
    among them (not all taken from one), the same way on every pass."""
    nodes = {name: up(name) for name in ("a", "b", "c")}
    page = [(f"{n:032x}", ["a", "b", "c"]) for n in range(30)]
    steps = plan(page, nodes, replicas=2, now=0.0, repair_after=60.0)
    dropped = Counter(step.node_id for step in steps)
    assert sum(dropped.values()) == 30
    assert set(dropped) == {"a", "b", "c"}
    assert min(dropped.values()) >= 5
    assert plan(page, nodes, replicas=2, now=0.0, repair_after=60.0) == steps
