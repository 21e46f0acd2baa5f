"""The replicator and repairer on in-memory node twins: what they do when
nodes are too few, fail a copy, hold a bad copy, hold too many, or vanish
in the middle of a copy. Time on a Clock; nothing leaves the process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.logger import capturedLogs, formatEvent

from noded.threads import run_inline
from tests.support import now, stored_file
from tests.unit.test_cluster import health
from uploadd.cluster.memory import MemoryNode, MemoryNodes
from uploadd.cluster.pinger import Pinger
from uploadd.cluster.registry import Health, Registry
from uploadd.cluster.repair import Repairer
from uploadd.cluster.replicator import ReplicationSettings, Replicator
from uploadd.failures import FailureLog
from uploadd.store.blobs import BlobStore
from uploadd.store.interface import FileRecord, Replica
from uploadd.store.memory import MemoryStore

REPAIR_AFTER = 60.0


@attrs.define
class Cluster:
    """uploadd's cluster parts around node twins, every twin UP."""

    clock: Clock
    store: MemoryStore
    blobs: BlobStore
    twins: dict[str, MemoryNode]
    registry: Registry
    pinger: Pinger
    replicator: Replicator
    repairer: Repairer

    def add_file(self, data: bytes) -> FileRecord:
        """A stored file, with uploadd's own copy and no replica yet."""
        return stored_file(self.store, self.blobs, self.clock, data)

    def replicate(self, record: FileRecord) -> Deferred[int]:
        return Deferred.fromCoroutine(self.replicator.replicate(record.id))

    def holders(self, record: FileRecord) -> list[str]:
        """The nodes with a verified copy of ``record`` on record."""
        return sorted(n for (f, n) in self.store.replicas if f == record.id)

    def holding(self, record: FileRecord) -> list[str]:
        """The twins that have ``record``'s bytes, right or wrong."""
        return sorted(t.node_id for t in self.twins.values() if record.id in t.files)

    def failures(self) -> list[tuple[str, str]]:
        """(node, reason) of each failed copy, oldest first."""
        return [(e["node_id"], e["reason"]) for e in self.replicator.failures.entries]


def cluster(
    tmp_path: Path, replicas: int, *twins: MemoryNode, keep_local: bool = True
) -> Cluster:
    clock = Clock()
    store = MemoryStore()
    blobs = BlobStore(tmp_path / "uploadd")
    by_id = {twin.node_id: twin for twin in twins}
    registry = Registry(store, clock, MemoryNodes(by_id))
    now(registry.load(tuple((i, "127.0.0.1", 7000 + n) for n, i in enumerate(by_id))))
    pinger = Pinger(registry, clock, 2.0, 1.0, rise=2, fall=3)
    settings = ReplicationSettings(
        replicas=replicas, transfers_per_node=2, keep_local=keep_local
    )
    replicator = Replicator(
        registry, store, blobs, run_inline, clock, settings, failures=FailureLog(clock)
    )
    repairer = Repairer(
        registry, store, replicator, clock, replicas, REPAIR_AFTER, interval=10.0
    )
    pinger.on_change.append(repairer.health_changed)
    pinger.ping_all()
    pinger.ping_all()
    assert all(n.health is Health.UP for n in registry.nodes.values())
    return Cluster(clock, store, blobs, by_id, registry, pinger, replicator, repairer)


def done(pending: Deferred[Any]) -> Any:
    """The result of a Deferred that has fired."""
    results: list[Any] = []
    pending.addBoth(results.append)
    assert results, "still waiting"
    return results[0]


def test_with_too_few_nodes_a_file_gets_the_copies_there_is_room_for(
    tmp_path: Path,
) -> None:
    """Three copies wanted, two usable nodes and one without room for the
    file: two verified copies, a warning naming the shortfall, no copy
    tried on the full node, and uploadd keeps its own copy (it may go only
    once every copy exists)."""
    running = cluster(
        tmp_path,
        3,
        MemoryNode("a"),
        MemoryNode("b"),
        MemoryNode("full", capacity=10),
        keep_local=False,
    )
    record = running.add_file(b"more than ten bytes")
    with capturedLogs() as events:
        replicated = running.replicate(record)
        running.clock.advance(1.0)
    assert done(replicated) == 2
    assert running.holders(record) == running.holding(record) == ["a", "b"]
    lines = [formatEvent(event) for event in events]
    assert f"{record.id} has 2 of 3 copies: no usable node has room" in lines
    assert running.failures() == []
    assert running.blobs.path(record.id).exists()


def test_a_failing_copy_is_retried_on_another_node(tmp_path: Path) -> None:
    """A node whose copy fails is not tried again for that file; after the
    backoff the copy goes to another node, and the failure is on record
    with its reason."""
    running = cluster(
        tmp_path,
        1,
        MemoryNode("broken", copy_failure="rsync: error in file I/O"),
        MemoryNode("spare", state="read-only"),
    )
    record = running.add_file(b"precious bytes")
    replicated = running.replicate(record)
    assert running.failures() == [("broken", "rsync: error in file I/O")]
    assert not replicated.called
    # The spare takes copies from now on; the broken node still would.
    running.twins["spare"].state = "up"
    running.pinger.ping_all()
    running.clock.advance(0.5)
    assert done(replicated) == 1
    assert running.holders(record) == running.holding(record) == ["spare"]
    assert running.failures() == [("broken", "rsync: error in file I/O")]


def test_a_copy_that_fails_verification_does_not_count(tmp_path: Path) -> None:
    """A node that stores different bytes than were sent: its copy is never
    recorded, the failure says the copy does not match, and the file is
    left with no copy rather than a wrong one."""
    running = cluster(tmp_path, 1, MemoryNode("liar", corrupting=True))
    record = running.add_file(b"precious bytes")
    replicated = running.replicate(record)
    # (With no copy anywhere it waits a while for a node that could take it.)
    running.clock.pump([0.5] * 120)
    assert done(replicated) == 0
    assert running.holders(record) == []
    assert running.failures() == [("liar", "the copy does not match")]


def test_a_node_back_from_down_forgets_copies_that_fail_verification(
    tmp_path: Path,
) -> None:
    """The repairer audits a node returning from DOWN: a copy whose bytes
    changed while it was away is forgotten, a sound one kept, and the node
    serves again once the audit is over."""
    running = cluster(tmp_path, 1, MemoryNode("a"))
    sound, spoilt = running.add_file(b"sound"), running.add_file(b"spoilt")
    for record in (sound, spoilt):
        running.replicate(record)
    assert running.holders(sound) == running.holders(spoilt) == ["a"]
    twin, node = running.twins["a"], running.registry.get("a")
    twin.reachable = False
    for _ in range(3):
        running.pinger.ping_all()
    assert health(node) is Health.DOWN
    twin.files[spoilt.id] = b"spoiLt"
    twin.reachable = True
    running.pinger.ping_all()
    running.pinger.ping_all()
    assert health(node) is Health.UP
    assert running.holders(sound) == ["a"]
    assert running.holders(spoilt) == []
    assert node.serving


def test_surplus_copies_are_removed_from_their_nodes(tmp_path: Path) -> None:
    """Three copies where two are wanted: a repair pass deletes one from its
    node and forgets it; the next pass finds nothing to do."""
    running = cluster(tmp_path, 2, MemoryNode("a"), MemoryNode("b"), MemoryNode("c"))
    record = running.add_file(b"too many copies")
    for twin in running.twins.values():
        twin.files[record.id] = b"too many copies"
        now(running.store.add_replica(Replica(record.id, twin.node_id, 15, 0.0)))
    assert done(Deferred.fromCoroutine(running.repairer.repair())) == {
        "at": 0.0,
        "examined": 1,
        "copied": 0,
        "dropped": 1,
        "short": 0,
    }
    assert len(running.holders(record)) == 2
    assert running.holding(record) == running.holders(record)
    second = done(Deferred.fromCoroutine(running.repairer.repair()))
    assert (second["copied"], second["dropped"]) == (0, 0)


def test_a_node_lost_mid_copy_gets_the_file_copied_elsewhere(tmp_path: Path) -> None:
    """The node taking a copy vanishes before the copy ends: the copy fails,
    the bytes reserved for it are given back, and after the backoff the
    copy goes to another node."""
    running = cluster(
        tmp_path,
        1,
        MemoryNode("doomed", holding=True),
        MemoryNode("spare", state="read-only"),
    )
    record = running.add_file(b"precious bytes")
    replicated = running.replicate(record)
    doomed = running.registry.get("doomed")
    assert doomed.in_flight == record.size
    running.twins["doomed"].lose()
    assert running.failures() == [("doomed", "the node was lost mid-copy")]
    assert doomed.in_flight == 0
    running.twins["spare"].state = "up"
    running.pinger.ping_all()
    running.clock.advance(0.5)
    assert done(replicated) == 1
    assert running.holders(record) == running.holding(record) == ["spare"]
    assert [n.in_flight for n in running.registry.nodes.values()] == [0, 0]


def test_repair_copies_a_lost_file_from_a_surviving_node(tmp_path: Path) -> None:
    """uploadd no longer has its own copy and one of two holders is DOWN past
    repair_after: the surviving holder copies the file to the spare node."""
    running = cluster(tmp_path, 2, MemoryNode("a"), MemoryNode("b"), MemoryNode("c"))
    record = running.add_file(b"precious bytes")
    for node_id in ("a", "b"):
        running.twins[node_id].files[record.id] = b"precious bytes"
        now(running.store.add_replica(Replica(record.id, node_id, 14, 0.0)))
    running.blobs.path(record.id).unlink()
    running.twins["b"].lose()
    for _ in range(3):
        running.pinger.ping_all()
    running.clock.advance(REPAIR_AFTER + 1)
    passed = done(Deferred.fromCoroutine(running.repairer.repair()))
    assert passed["copied"] == 1
    assert running.holding(record) == ["a", "b", "c"]
    assert running.holders(record) == ["a", "b", "c"]
    assert running.twins["c"].files[record.id] == b"precious bytes"


def test_a_new_file_can_wait_for_its_first_copy(tmp_path: Path) -> None:
    """first_copy fires once one node holds a verified copy (the other may
    still be failing), or at once for a file not being replicated; and when
    no node ever takes it, once replication gives up."""
    running = cluster(
        tmp_path,
        2,
        MemoryNode("broken", copy_failure="rsync: error in file I/O"),
        MemoryNode("spare", state="read-only"),
    )
    record = running.add_file(b"precious bytes")
    replicated = running.replicate(record)
    first = running.replicator.first_copy(record)
    assert not first.called
    running.twins["spare"].state = "up"
    running.pinger.ping_all()
    running.clock.advance(0.5)
    assert first.called and not replicated.called
    running.clock.advance(60.0)
    assert done(replicated) == 1
    assert running.replicator.first_copy(record).called
    lonely = running.add_file(b"no room anywhere")
    running.twins["spare"].state = "read-only"
    running.pinger.ping_all()
    giving_up = running.replicate(lonely)
    waiting = running.replicator.first_copy(lonely)
    running.clock.pump([0.5] * 240)
    assert done(giving_up) == 0 and waiting.called
