"""What an operator graphs, counted where it happens or read at scrape
time: nodes, copies, the replication and repair backlogs, transcode jobs,
webhook deliveries, the bus and the outbox. Node twins, a Clock, StubTreq."""

from __future__ import annotations

from pathlib import Path

import pytest_twisted
from prometheus_client import generate_latest
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from tests.metrics import labelled, value
from tests.support import FakeReactor, auth, harness, now
from tests.unit.test_renditions import upload, worker
from tests.unit.test_replicator_and_repairer import Cluster, cluster, done
from tests.unit.test_webhooks import hook, settle
from uploadd.cluster.memory import MemoryNode
from uploadd.events.amqp import AmqpAddress, AmqpBus
from uploadd.events.bus import InProcessBus
from uploadd.gauges import watch_bus, watch_cluster, watch_outbox
from uploadd.metrics import Metrics
from uploadd.store.interface import Event
from uploadd.store.memory import MemoryStore


def watched(running: Cluster) -> Metrics:
    """A Metrics the cluster's pinger and replicator count on, and that
    reads its nodes and backlogs."""
    metrics = Metrics()
    running.pinger.metrics = metrics
    running.replicator.metrics = metrics
    watch_cluster(metrics, running.registry, running.replicator, running.repairer)
    return metrics


def text(metrics: Metrics) -> str:
    return generate_latest(metrics.registry).decode()


def test_each_node_shows_its_health_state_mode_space_and_ping_time(
    tmp_path: Path,
) -> None:
    """A node that answers is up with its space and ping time; one that
    stopped is down (its state as it last said); one that never answered
    is unknown, with no space or ping time; pings count by outcome; a
    node the operator drains shows it."""
    running = cluster(
        tmp_path, 1, MemoryNode("a", capacity=5000), MemoryNode("b", state="draining")
    )
    metrics = watched(running)
    running.twins["c"] = MemoryNode("c", reachable=False)
    now(running.registry.add("c", "127.0.0.1", 7100))
    running.twins["b"].reachable = False
    for _ in range(3):
        running.pinger.ping_all()
    now(running.registry.set_mode("a", "draining"))
    shown = text(metrics)
    assert labelled(shown, "uploadd_node_up") == {
        frozenset({("node", "a")}): 1,
        frozenset({("node", "b")}): 0,
        frozenset({("node", "c")}): 0,
    }
    assert value(shown, "uploadd_node_state", node="a", state="up") == 1
    assert value(shown, "uploadd_node_state", node="b", state="draining") == 1
    assert value(shown, "uploadd_node_state", node="c", state="unknown") == 1
    assert value(shown, "uploadd_node_state", node="c", state="up") == 0
    assert value(shown, "uploadd_node_mode", node="a", mode="draining") == 1
    assert value(shown, "uploadd_node_mode", node="b", mode="active") == 1
    assert value(shown, "uploadd_node_free_bytes", node="a") == 5000
    assert value(shown, "uploadd_node_size_bytes", node="a") == 5000
    assert value(shown, "uploadd_node_free_bytes", node="c") is None
    assert value(shown, "uploadd_node_ping_rtt_seconds", node="a") == 0.0
    assert value(shown, "uploadd_node_ping_rtt_seconds", node="c") is None
    pings = "uploadd_node_pings_total"
    assert value(shown, pings, node="a", outcome="answered") == 3
    assert value(shown, pings, node="b", outcome="failed") == 3
    assert value(shown, pings, node="c", outcome="failed") == 3


def test_copies_are_counted_by_node_and_outcome_and_the_backlog_while_they_run(
    tmp_path: Path,
) -> None:
    """Two copies wanted: the broken node's copy fails, the slow node's is
    verified once it lands; while it runs the file is in the replication
    backlog, and out of it after."""
    running = cluster(
        tmp_path,
        2,
        MemoryNode("broken", copy_failure="rsync: error in file I/O"),
        MemoryNode("slow", holding=True),
    )
    metrics = watched(running)
    record = running.add_file(b"precious bytes")
    replicating = running.replicate(record)
    assert value(text(metrics), "uploadd_replication_backlog_files") == 1
    running.clock.advance(2)
    running.twins["slow"].land()
    running.clock.pump([0.5] * 120)
    assert done(replicating) == 1
    shown = text(metrics)
    assert labelled(shown, "uploadd_replica_copies_total") == {
        frozenset({("node", "broken"), ("outcome", "failed")}): 1,
        frozenset({("node", "slow"), ("outcome", "verified")}): 1,
    }
    assert value(shown, "uploadd_replica_copy_duration_seconds_count") == 1
    assert value(shown, "uploadd_replica_copy_duration_seconds_sum") == 2
    assert value(shown, "uploadd_replication_backlog_files") == 0


def test_the_repair_backlog_is_what_the_last_pass_left_short(tmp_path: Path) -> None:
    """Two copies wanted and one node able to take one: the pass leaves the
    file short (backlog 1, at the pass's time); with a second node able,
    the next pass copies it and leaves none short."""
    running = cluster(
        tmp_path, 2, MemoryNode("a"), MemoryNode("b", copy_failure="disk full")
    )
    metrics = watched(running)
    shown = text(metrics)
    assert value(shown, "uploadd_repair_backlog_files") is None
    record = running.add_file(b"precious bytes")
    running.clock.advance(running.repairer.settle + 1)
    passing = Deferred.fromCoroutine(running.repairer.repair())
    running.clock.pump([0.5] * 200)
    assert done(passing)["short"] == 1
    shown = text(metrics)
    assert value(shown, "uploadd_repair_backlog_files") == 1
    when = running.repairer.last_pass["at"]
    assert value(shown, "uploadd_repair_last_pass_timestamp_seconds") == when
    running.twins["b"].copy_failure = ""
    passing = Deferred.fromCoroutine(running.repairer.repair())
    running.clock.pump([0.5] * 200)
    assert done(passing)["short"] == 0
    assert value(text(metrics), "uploadd_repair_backlog_files") == 0
    assert running.holders(record) == ["a", "b"]


@pytest_twisted.ensureDeferred()
async def test_transcode_jobs_are_counted_by_profile_and_state_with_durations(
    tmp_path: Path,
) -> None:
    """An MP3 asks for audio-aac (pending); a worker starts it (running),
    reports progress (no new state) and fails it 7 s later: each state
    entered once, the job's 7 s recorded."""
    app = harness(tmp_path)
    shown = await upload(app, app.user("alice"), "talk.mp3", "audio/mpeg")
    job = f"/files/{shown['id']}/renditions/audio-aac"
    started = await app.call("POST", f"{job}/start", headers=worker(app))
    assert started.code == 200
    moved = await app.call(
        "PATCH", job, json={"attempt": 1, "state": "running", "percent": 40},
        headers=worker(app),
    )  # fmt: skip
    assert moved.code == 200
    app.clock.advance(7)
    failed = await app.call(
        "PATCH", job, json={"attempt": 1, "state": "failed", "error": "bad media"},
        headers=worker(app),
    )  # fmt: skip
    assert failed.code == 200
    scraped = text(app.parts.metrics)
    assert labelled(scraped, "uploadd_transcode_jobs_total") == {
        frozenset({("profile", "audio-aac"), ("state", "pending")}): 1,
        frozenset({("profile", "audio-aac"), ("state", "running")}): 1,
        frozenset({("profile", "audio-aac"), ("state", "failed")}): 1,
    }
    seconds = "uploadd_transcode_duration_seconds_sum"
    assert value(scraped, seconds, profile="audio-aac", state="failed") == 7


@pytest_twisted.ensureDeferred()
async def test_webhook_deliveries_are_counted_by_outcome(tmp_path: Path) -> None:
    """One webhook answers 500 then 200, another cannot be reached: after
    the first try and the retry, one delivery refused and one delivered,
    two unreachable."""
    answers = [500]

    async def post(url: str, body: bytes, headers: dict[str, str]) -> int:
        if "down" in url:
            raise ConnectionRefusedError(url)
        return answers.pop(0) if answers else 200

    app = harness(tmp_path, poster=post)
    token = app.user("alice")
    await hook(app, token, "http://up.test/in")
    await hook(app, token, "http://down.test/in")
    await app.call("PUT", "/files/a.txt", data=b"x", headers=auth(token))
    settle(app)
    settle(app, 1.0)
    assert labelled(text(app.parts.metrics), "uploadd_webhook_deliveries_total") == {
        frozenset({("outcome", "refused")}): 1,
        frozenset({("outcome", "delivered")}): 1,
        frozenset({("outcome", "unreachable")}): 2,
    }


def test_the_bus_tells_whether_it_takes_events_and_how_many_it_took() -> None:
    """The in-process bus always takes events and shows its queues; a
    RabbitMQ bus not connected to its broker shows 0."""
    clock = Clock()
    local, remote = Metrics(), Metrics()
    bus = InProcessBus(clock)
    bus.subscribe("push.webhooks", "#", ignore)
    watch_bus(local, bus)
    bus.publish(Event("file.stored", {}))
    watch_bus(remote, AmqpBus(FakeReactor(), AmqpAddress.parse("amqp://127.0.0.1:1/")))
    shown = text(local)
    assert value(shown, "uploadd_bus_connected") == 1
    assert value(shown, "uploadd_bus_published_events_total") == 1
    assert value(shown, "uploadd_bus_queue_messages", queue="push.webhooks") == 1
    shown = text(remote)
    assert value(shown, "uploadd_bus_connected") == 0
    assert labelled(shown, "uploadd_bus_queue_messages") == {}


async def ignore(event: Event) -> None:
    """A consumer that takes every event (and is never run here)."""


@pytest_twisted.ensureDeferred()
async def test_the_outbox_shows_its_depth_and_how_long_its_oldest_event_waited() -> (
    None
):
    """Read before each scrape: two events waiting, the oldest recorded 60 s
    ago; then one, 30 s; then none, 0 s."""
    clock = Clock()
    clock.advance(100)
    store = MemoryStore()
    metrics = Metrics()
    watch_outbox(metrics, store, clock)
    await store.add_events(
        [Event("a", {}, created_at=40.0), Event("b", {}, created_at=70.0)]
    )
    await metrics.refresh()
    assert value(text(metrics), "uploadd_outbox_events") == 2
    assert value(text(metrics), "uploadd_outbox_oldest_age_seconds") == 60
    first, second = await store.pending_events(10)
    await store.mark_sent([first.id], 100)
    await metrics.refresh()
    assert value(text(metrics), "uploadd_outbox_events") == 1
    assert value(text(metrics), "uploadd_outbox_oldest_age_seconds") == 30
    await store.mark_sent([second.id], 100)
    await metrics.refresh()
    assert value(text(metrics), "uploadd_outbox_events") == 0
    assert value(text(metrics), "uploadd_outbox_oldest_age_seconds") == 0


class Unreadable(MemoryStore):
    """A store whose database goes away when ``gone`` is set."""

    gone = False

    async def outbox_depth(self) -> int:
        if self.gone:
            raise ConnectionError("the database is gone")
        return await super().outbox_depth()


@pytest_twisted.ensureDeferred()
async def test_an_outbox_that_cannot_be_read_shows_no_samples_not_old_ones() -> None:
    """Once the database fails the reading, the outbox families are empty
    (unknown) rather than showing the last values, and the scrape still
    answers."""
    metrics = Metrics()
    store = Unreadable()
    watch_outbox(metrics, store, Clock())
    await store.add_events([Event("a", {})])
    await metrics.refresh()
    assert value(text(metrics), "uploadd_outbox_events") == 1
    store.gone = True
    await metrics.refresh()
    shown = text(metrics)
    assert labelled(shown, "uploadd_outbox_events") == {}
    assert labelled(shown, "uploadd_outbox_oldest_age_seconds") == {}
    assert value(shown, "uploadd_upload_bodies_in_flight") == 0
