"""The cluster in memory: registry and pinger rise/fall against real noded
twins reached by the AMP + rsync client over iosim, placement, repair
planning, and downloads located on in-memory node twins; time on a Clock."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import attrs
import pytest
import pytest_twisted
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.logger import capturedLogs, formatEvent
from twisted.protocols import amp
from twisted.test.iosim import IOPump, connectedServerAndClient

from noded.client import authenticate
from noded.files import NodeFiles
from noded.node import Node as NodedNode
from noded.node import NodeProtocol
from noded.signing import url_key
from tests.support import auth, harness, now
from tests.unit.test_noded import SECRET, make_node
from uploadd.cluster.amp_rsync import AmpRsyncNodes, RsyncSettings
from uploadd.cluster.memory import MemoryNode
from uploadd.cluster.pinger import Pinger
from uploadd.cluster.registry import Health, Node, Registry
from uploadd.store.interface import NodeRecord, Replica
from uploadd.store.memory import MemoryStore


@attrs.define
class Disk(NodeFiles):
    """A node twin's files on a disk of ``capacity`` bytes: free space is what
    the held files leave of it, whatever the real disk has."""

    capacity: int = 0

    def space(self) -> tuple[int, int]:
        self.files.mkdir(parents=True, exist_ok=True)
        used = sum(p.stat().st_size for p in self.files.rglob("*") if p.is_file())
        return self.capacity - used, self.capacity


@attrs.define
class Network:
    """In-memory nodes (real noded twins over iosim) reachable by id; a node
    can be cut off or silenced, given a ``reserve`` and a disk of a set
    ``capacity``. A twin's rsync port is its AMP port, so pushes find it;
    it serves downloads at ``http://<id>.test``; its own pushes (a relay)
    run on ``processes`` when set."""

    tmp_path: Path
    pumps: list[IOPump] = attrs.field(factory=list)
    dead: set[str] = attrs.field(factory=set)
    silent: set[str] = attrs.field(factory=set)
    reserve: dict[str, str] = attrs.field(factory=dict)
    capacity: dict[str, int] = attrs.field(factory=dict)
    twins: dict[str, NodedNode] = attrs.field(factory=dict)
    processes: Any = None

    async def connect(self, record: NodeRecord) -> amp.AMP:
        if record.id in self.dead:
            raise ConnectionRefusedError("connection refused")
        node = make_node(
            self.tmp_path / record.id,
            node__id=record.id,
            node__reserve=self.reserve.get(record.id, "0"),
        )
        if self.processes is not None:
            node = attrs.evolve(node, reactor=self.processes)
        if record.id in self.capacity:
            node.files = Disk(node.files.root, capacity=self.capacity[record.id])
        node.rsync_port = record.port
        node.http_url = f"http://{record.id}.test"
        self.twins[record.id] = node
        client, _, pump = connectedServerAndClient(lambda: NodeProtocol(node), amp.AMP)
        authenticating = Deferred.fromCoroutine(authenticate(client, SECRET))
        pump.flush()
        await authenticating
        if record.id not in self.silent:
            self.pumps.append(pump)
        return client

    def flush(self) -> None:
        for pump in self.pumps:
            pump.flush()

    def clients(self, reactor: Any) -> AmpRsyncNodes:
        """The AMP + rsync clients uploadd uses, connecting to these twins;
        ``reactor`` runs their rsync pushes."""
        password_file = self.tmp_path / "rsync.password"
        return AmpRsyncNodes(
            self.connect, reactor, url_key(SECRET), RsyncSettings(password_file)
        )


def health(node: Node) -> Health:
    """The node's health now (a call, so checks after a tick are not narrowed)."""
    return node.health


def setup(tmp_path: Path, *ids: str) -> tuple[Registry, Pinger, Network, Clock]:
    clock = Clock()
    store = MemoryStore()
    network = Network(tmp_path)
    registry = Registry(store, clock, network.clients(clock))
    now(registry.load(tuple((i, "127.0.0.1", 7000 + n) for n, i in enumerate(ids))))
    pinger = Pinger(registry, clock, 2.0, 1.0, rise=2, fall=3)
    return registry, pinger, network, clock


def tick(pinger: Pinger, network: Network, clock: Clock, seconds: float = 2.0) -> None:
    pinger.ping_all()
    network.flush()
    clock.advance(seconds)
    network.flush()


def test_a_configured_node_the_store_has_elsewhere_is_moved_there(
    tmp_path: Path,
) -> None:
    """A node of [cluster] nodes that the store knows at another address
    (it listens on another port now) is moved at start: the record, the
    connection and a warning follow the configuration; its copies stay."""
    clock, store, network = Clock(), MemoryStore(), Network(tmp_path)
    first = Registry(store, clock, network.clients(clock))
    now(first.load((("n1", "127.0.0.1", 7001),)))
    store.replicas[("f1", "n1")] = Replica("f1", "n1", 3, 0.0)
    again = Registry(store, clock, network.clients(clock))
    with capturedLogs() as events:
        now(again.load((("n1", "127.0.0.1", 7101),)))
    assert [formatEvent(e) for e in events] == [
        "node n1 moved from 127.0.0.1:7001 to 127.0.0.1:7101 ([cluster] nodes)"
    ]
    assert [(r.id, r.port) for r in now(store.list_nodes())] == [("n1", 7101)]
    moved = again.get("n1")
    assert moved.record.port == 7101
    assert getattr(moved.client, "record").port == 7101  # noqa: B009
    assert now(store.replicas_of("f1")) == [Replica("f1", "n1", 3, 0.0)]


def test_a_node_moved_by_another_instance_is_reached_at_its_new_address(
    tmp_path: Path,
) -> None:
    """An instance reading the node list (every ping) reaches a node another
    instance's configuration moved at its new address."""
    registry, _, network, clock = setup(tmp_path, "n1")
    other = Registry(registry._store, clock, network.clients(clock))
    now(other.load((("n1", "127.0.0.1", 7100),)))
    now(registry.refresh())
    assert getattr(registry.get("n1").client, "record").port == 7100  # noqa: B009


def test_nodes_rise_to_up_after_two_answers(tmp_path: Path) -> None:
    """Two answered pings make a node UP, with its space, zone and an RTT."""
    registry, pinger, network, clock = setup(tmp_path, "n1")
    changes: list[tuple[str, Health]] = []
    pinger.on_change.append(lambda node, was: changes.append((node.id, node.health)))
    node = registry.get("n1")
    tick(pinger, network, clock)
    assert health(node) is Health.UNKNOWN
    tick(pinger, network, clock)
    assert health(node) is Health.UP
    assert changes == [("n1", Health.UP)]
    assert node.free > 0 and node.zone == "z1" and node.rtt is not None
    assert node.usable and node.last_seen == clock.seconds() - 2.0


def test_an_unreachable_node_falls_down_after_three_failures(tmp_path: Path) -> None:
    """Three refused pings in a row make an UP node DOWN, noting since when."""
    registry, pinger, network, clock = setup(tmp_path, "n1")
    node = registry.get("n1")
    tick(pinger, network, clock)
    tick(pinger, network, clock)
    assert health(node) is Health.UP
    network.dead.add("n1")
    node.client.disconnect()
    tick(pinger, network, clock)
    tick(pinger, network, clock)
    assert health(node) is Health.UP
    died = clock.seconds()
    tick(pinger, network, clock)
    assert health(node) is Health.DOWN
    assert node.down_since == died
    assert not node.usable and not node.serving
    network.dead.clear()
    tick(pinger, network, clock)
    tick(pinger, network, clock)
    assert health(node) is Health.UP and node.down_since is None


def test_a_silent_node_times_out(tmp_path: Path) -> None:
    """A node that accepts the connection but never answers fails each ping
    after the timeout, and falls DOWN."""
    registry, pinger, network, clock = setup(tmp_path, "n1")
    network.silent.add("n1")
    node = registry.get("n1")
    for _ in range(3):
        tick(pinger, network, clock)
    assert health(node) is Health.DOWN
    assert node.failures == 3


def test_a_ping_timeout_is_logged_with_a_readable_reason(tmp_path: Path) -> None:
    """A node that never answers is logged DOWN with why in words ("no
    answer to Ping within 1 s"), not Deferred's "(1.0, 'Deferred')"."""
    registry, pinger, network, clock = setup(tmp_path, "n1")
    network.silent.add("n1")
    with capturedLogs() as events:
        for _ in range(3):
            tick(pinger, network, clock)
    assert health(registry.get("n1")) is Health.DOWN
    lines = [formatEvent(event) for event in events]
    down = [line for line in lines if "DOWN after" in line]
    assert down == ["node n1 DOWN after 3 failed pings: no answer to Ping within 1 s"]
    assert not any("'Deferred'" in line for line in lines)


def pinger_lines(
    pinger: Pinger, network: Network, clock: Clock, ticks: int
) -> list[tuple[float, str]]:
    """``ticks`` pings 2 s apart; what the pinger logged, with the Clock's
    time of the ping that said it."""
    said: list[tuple[float, str]] = []
    with capturedLogs() as events:
        for _ in range(ticks):
            at, before = clock.seconds(), len(events)
            tick(pinger, network, clock)
            said += [
                (at, formatEvent(event))
                for event in events[before:]
                if event["log_namespace"] == "uploadd.cluster.pinger"
            ]
    return said


def test_a_node_that_keeps_failing_is_logged_at_growing_intervals(
    tmp_path: Path,
) -> None:
    """A node refusing every ping for 10 minutes (300 pings) is logged when it
    falls DOWN, then reminded of after 2 s, 4 s, 8 s, ... : ten lines, not
    one per ping."""
    _, pinger, network, clock = setup(tmp_path, "n1")
    network.dead.add("n1")
    said = pinger_lines(pinger, network, clock, 300)
    assert said[:2] == [
        (4.0, "node n1 DOWN after 3 failed pings: connection refused"),
        (4.0, "node n1 is down"),
    ]
    reminders = said[2:]
    assert [when for when, _ in reminders] == [6, 10, 18, 34, 66, 130, 258, 514]
    assert reminders[0][1] == (
        "node n1 is still down: connection refused (4 failed pings in 6 s)"
    )
    assert reminders[-1][1] == (
        "node n1 is still down: connection refused (258 failed pings in 514 s)"
    )


def test_reminders_about_a_failing_node_come_at_most_every_5_minutes(
    tmp_path: Path,
) -> None:
    """The gap between two reminders stops growing at remind_at_most (5 min):
    an hour down is a line every 5 minutes once the gap reaches it."""
    _, pinger, network, clock = setup(tmp_path, "n1")
    network.dead.add("n1")
    said = pinger_lines(pinger, network, clock, 1800)
    times = [when for when, line in said if "is still down" in line]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert gaps[:8] == [4, 8, 16, 32, 64, 128, 256, 300]
    assert set(gaps[8:]) == {300}
    assert len(said) == 2 + 1 + len(gaps)


def test_a_failing_node_is_logged_at_once_when_its_state_changes(
    tmp_path: Path,
) -> None:
    """Each change is a line at once, reminders or not: a first missed ping,
    DOWN, failing for another reason, answering again, UP."""
    registry, pinger, network, clock = setup(tmp_path, "n1")
    pinger_lines(pinger, network, clock, 2)
    assert health(registry.get("n1")) is Health.UP
    network.dead.add("n1")
    registry.get("n1").client.disconnect()
    said = pinger_lines(pinger, network, clock, 10)
    network.dead.clear()
    network.silent.add("n1")
    said += pinger_lines(pinger, network, clock, 2)
    network.silent.clear()
    said += pinger_lines(pinger, network, clock, 2)
    assert said == [
        (4.0, "node n1 missed a ping; downloads avoid it: connection refused"),
        (8.0, "node n1 DOWN after 3 failed pings: connection refused"),
        (8.0, "node n1 is down"),
        (10.0, "node n1 is still down: connection refused (4 failed pings in 6 s)"),
        (14.0, "node n1 is still down: connection refused (6 failed pings in 10 s)"),
        (22.0, "node n1 is still down: connection refused (10 failed pings in 18 s)"),
        (
            24.0,
            "node n1 fails differently now: no answer to Ping within 1 s"
            " (was: connection refused)",
        ),
        (28.0, "node n1 answers again after 12 failed pings in 24 s"),
        (30.0, "node n1 is up"),
    ]


def test_downloads_avoid_a_node_from_its_first_failed_ping(tmp_path: Path) -> None:
    """One failed ping takes a node out of serving downloads and taking copies
    while it is still UP (it falls DOWN only after three); its next answer
    brings it back."""
    registry, pinger, network, clock = setup(tmp_path, "n1")
    node = registry.get("n1")
    tick(pinger, network, clock)
    tick(pinger, network, clock)
    assert node.serving
    network.dead.add("n1")
    node.client.disconnect()
    tick(pinger, network, clock)
    assert health(node) is Health.UP
    assert not node.serving
    assert not node.usable  # and it is sent no new copies
    network.dead.clear()
    tick(pinger, network, clock)
    assert node.serving
    assert node.usable


@pytest.mark.parametrize(
    ("changes", "usable"),
    [
        ({}, True),
        ({"reported_state": "read-only"}, False),
        ({"reported_state": "draining"}, False),
        ({"free": 10}, False),
    ],
)
def test_only_up_active_nodes_with_room_take_replicas(
    changes: dict[str, Any], usable: bool
) -> None:
    node = Node(
        NodeRecord("n", "h", 1, 0.0),
        MemoryNode("n"),
        health=Health.UP,
        reported_state="up",
        free=1000,
        reserved=100,
    )
    for name, value in changes.items():
        setattr(node, name, value)
    assert node.usable is usable
    drained = Node(
        NodeRecord("n", "h", 1, 0.0, mode="draining"),
        MemoryNode("n"),
        health=Health.UP,
        reported_state="up",
        free=1000,
    )
    assert not drained.usable and drained.serving


def up(node_id: str, zone: str = "", free: int = 10**9, **extra: Any) -> Node:
    """An UP node on an in-memory twin (serving downloads at ``http_url``)."""
    return Node(
        NodeRecord(node_id, "h", 1, 0.0, mode=extra.pop("mode", "active")),
        MemoryNode(node_id, zone=zone, http_url=extra.pop("http_url", "")),
        health=extra.pop("health", Health.UP),
        reported_state=extra.pop("state", "up"),
        free=free,
        reserved=extra.pop("reserved", 0),
        zone=zone,
    )


def test_placement_picks_distinct_usable_nodes_with_room() -> None:
    """Never a down, draining, read-only or full node, nor one holding it."""
    from uploadd.cluster.placement import choose

    nodes = [
        up("a"),
        up("down", health=Health.DOWN),
        up("drain", mode="draining"),
        up("ro", state="read-only"),
        up("full", free=500, reserved=400),
        up("b"),
        up("c"),
    ]
    picked = choose(nodes, 2, size=200, holders=[nodes[-1]])
    assert sorted(n.id for n in picked) == ["a", "b"]
    assert choose(nodes, 5, size=200) and len(choose(nodes, 5, size=200)) == 3


def test_placement_spreads_across_zones() -> None:
    """With zones set, the copies go to different zones first."""
    import random

    from uploadd.cluster.placement import choose

    nodes = [up("a1", "a"), up("a2", "a"), up("a3", "a"), up("b1", "b")]
    for seed in range(20):
        picked = choose(nodes, 2, size=1, rng=random.Random(seed))
        assert {n.zone for n in picked} == {"a", "b"}
    holders = [nodes[3]]
    picked = choose(nodes, 1, size=1, holders=holders)
    assert picked[0].zone == "a"


def test_placement_prefers_free_space() -> None:
    """Weighted by free space: a node with 9x the room is chosen ~9x as often."""
    import random

    from uploadd.cluster.placement import choose

    nodes = [up("big", free=9 * 10**9), up("small", free=10**9)]
    rng = random.Random(1)
    picks = [choose(nodes, 1, size=1, rng=rng)[0].id for _ in range(2000)]
    share = picks.count("big") / len(picks)
    assert 0.85 < share < 0.95


def test_repair_counts_copies_on_healthy_nodes_and_drops_surplus() -> None:
    """Copies on healthy nodes count; a node DOWN past repair_after does not,
    a blip does; draining copies go once enough others exist; surplus goes."""
    from uploadd.cluster.repair import Step, Verdict, plan

    nodes = {
        "a": up("a"),
        "b": up("b"),
        "c": up("c"),
        "gone": up("gone", health=Health.DOWN),
        "blip": up("blip", health=Health.DOWN),
        "drain": up("drain", mode="draining"),
    }
    nodes["gone"].down_since = 0.0
    nodes["blip"].down_since = 95.0
    nodes["c"].record = attrs.evolve(nodes["c"].record, added_at=9.0)
    page = [
        ("fine", ["a", "b"]),
        ("lost", ["a", "gone"]),
        ("blipped", ["a", "blip"]),
        ("drained", ["a", "b", "drain"]),
        ("surplus", ["a", "b", "c"]),
        ("local", []),
    ]
    steps = plan(page, nodes, replicas=2, now=100.0, repair_after=60.0)
    assert steps == [
        Step(Verdict.COPY, "lost"),
        Step(Verdict.DROP, "drained", "drain"),
        Step(Verdict.DROP, "surplus", "c"),
        Step(Verdict.COPY, "local"),
    ]


@pytest_twisted.ensureDeferred()
async def test_admins_add_drain_and_remove_nodes_and_others_get_403(
    tmp_path: Path,
) -> None:
    """Admins list, add, drain and remove nodes; others get 403."""
    app = harness(tmp_path)
    root, alice = app.user("root", "admin"), app.user("alice")
    assert (await app.call("GET", "/admin/nodes", headers=auth(alice))).code == 403
    added = await app.call(
        "POST",
        "/admin/nodes",
        data=b'{"id": "n1", "host": "127.0.0.1", "port": 7001}',
        headers={**auth(root), b"content-type": [b"application/json"]},
    )
    assert added.code == 201 and added.json()["health"] == "unknown"
    twice = await app.call(
        "POST",
        "/admin/nodes",
        data={"id": "n1", "host": "127.0.0.1", "port": "7001"},
        headers=auth(root),
    )
    assert twice.code == 409
    drained = await app.call(
        "PATCH", "/admin/nodes/n1", data={"mode": "draining"}, headers=auth(root)
    )
    assert drained.json()["mode"] == "draining"
    listing = (await app.call("GET", "/admin/nodes", headers=auth(root))).json()
    assert [n["id"] for n in listing["results"]] == ["n1"]
    assert listing["replicas"] == 2
    assert (await app.call("DELETE", "/admin/nodes/n1", headers=auth(root))).code == 204
    assert app.store.nodes == {}
    assert (await app.call("DELETE", "/admin/nodes/n1", headers=auth(root))).code == 404


@pytest_twisted.ensureDeferred()
async def test_downloads_go_to_the_nearest_serving_node(tmp_path: Path) -> None:
    """Zone of the client's network first, then RTT, then load; uploadd's own
    copy while no holder serves; 503 when only down nodes hold it."""
    app = harness(
        tmp_path,
        settings={("cluster", "zones"): "10.1.0.0/16=east, 127.0.0.0/8=west"},
    )
    token = app.user("alice")
    stored = (
        await app.call("PUT", "/files/a.txt", data=b"abc", headers=auth(token))
    ).json()
    registry = app.parts.registry
    for name, zone, rtt, load in [
        ("e", "east", 0.001, 0.0),
        ("w1", "west", 0.05, 0.0),
        ("w2", "west", 0.01, 5.0),
        ("w3", "west", 0.01, 1.0),
    ]:
        node = up(name, zone, http_url=f"http://{name}:1")
        node.rtt, node.load = rtt, load
        registry.nodes[name] = node
        await app.store.add_replica(Replica(stored["id"], name, 3, 0.0))
    path = f"/files/{stored['id']}/content"
    answer = await app.call("GET", path, headers=auth(token), allow_redirects=False)
    assert answer.code == 302
    assert (answer.header("location") or "").startswith(
        f"http://w3:1/files/{stored['id']}?"
    )
    for name in ("w1", "w2", "w3", "e"):
        registry.nodes[name].health = Health.DOWN
    local = await app.call("GET", path, headers=auth(token), allow_redirects=False)
    assert (local.code, local.body) == (200, b"abc")
    app.parts.blobs.path(stored["id"]).unlink()
    down = await app.call("GET", path, headers=auth(token), allow_redirects=False)
    assert down.code == 503 and down.header("retry-after") == "10"


@pytest_twisted.ensureDeferred()
async def test_downloads_and_replica_lists_show_only_reachable_copies(
    tmp_path: Path,
) -> None:
    """A node that missed its last ping, is DOWN or is under audit is neither
    a download target nor listed in the file's ``replicas``; the answering
    node is, even when the other one is nearer."""
    app = harness(tmp_path)
    token = app.user("alice")
    stored = (
        await app.call("PUT", "/files/a.txt", data=b"abc", headers=auth(token))
    ).json()
    registry = app.parts.registry
    for name, rtt in [("near", 0.001), ("far", 0.05)]:
        node = up(name, http_url=f"http://{name}:1")
        node.rtt = rtt
        registry.nodes[name] = node
        await app.store.add_replica(Replica(stored["id"], name, 3, 0.0))
    path = f"/files/{stored['id']}"

    async def target() -> str:
        answer = await app.call(
            "GET", f"{path}/content", headers=auth(token), allow_redirects=False
        )
        assert answer.code == 302
        return (answer.header("location") or "").split("/files/")[0]

    async def listed() -> list[str]:
        return sorted(
            (await app.call("GET", path, headers=auth(token))).json()["replicas"]
        )

    assert await target() == "http://near:1"
    assert await listed() == ["far", "near"]
    near = registry.nodes["near"]
    for state in ({"failures": 1}, {"health": Health.DOWN}, {"auditing": True}):
        for name, value in state.items():
            setattr(near, name, value)
        assert await target() == "http://far:1", state
        assert await listed() == ["far"], state
        near.failures, near.health, near.auditing = 0, Health.UP, False
