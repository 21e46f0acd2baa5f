"""Several uploadd instances in memory: what one announces on the bus the
others hear (upload progress, failures, failed sign-ins, events waiting for
the relay's leader, repair), what one answers for bytes another instance
holds, and a warning when their secrets cannot be shared.
Two parts sharing one in-process bus stand for two instances; time on a
Clock."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import attrs
import pytest
import pytest_twisted
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.logger import capturedLogs, formatEvent
from twisted.python.failure import Failure

from noded.threads import run_inline
from tests.support import FakeReactor, auth, harness, now, stored_file
from tests.unit.test_cluster import up
from uploadd.auth.throttle import Refusal, SignInLimits, SignInThrottle
from uploadd.cluster.memory import MemoryNode, MemoryNodes
from uploadd.cluster.pinger import Pinger
from uploadd.cluster.registry import Registry
from uploadd.cluster.repair import Repairer
from uploadd.cluster.replicator import ReplicationSettings, Replicator
from uploadd.config import load_config
from uploadd.events import topics
from uploadd.events.bus import IEventBus, InProcessBus
from uploadd.events.relay import OutboxRelay
from uploadd.failures import FailureLog
from uploadd.ingest.progress import ProgressBoard
from uploadd.service import warn_of_unset_cluster_settings
from uploadd.store.blobs import BlobStore
from uploadd.store.interface import Event, Replica
from uploadd.store.memory import MemoryStore
from uploadd.workers.client import Job, JobOver, NotYet, RenditionsClient
from uploadd.workers.profiles import ToolSettings
from uploadd.workers.transcode import TranscodeWorker
from uploadd.workers.wiring import WORKER


def test_announcements_reach_every_hearer_and_no_queue() -> None:
    """An announcement goes to the hearers of its topic on a later turn, not
    to the queues consumers subscribe (webhooks, live streams), and is not
    counted as published; a hearer that fails is not asked again."""
    clock = Clock()
    bus = InProcessBus(clock)
    queued: list[str] = []
    heard: list[str] = []
    failing: list[str] = []

    async def consume(event: Event) -> None:
        queued.append(event.topic)

    async def hear(event: Event) -> None:
        heard.append(event.topic)

    async def broken(event: Event) -> None:
        failing.append(event.topic)
        raise RuntimeError("cannot take it")

    bus.subscribe("everything", "#", consume)
    bus.hear("upload.*", hear)
    bus.hear("upload.progress", broken)
    bus.announce(Event(topics.UPLOAD_PROGRESS, {}))
    bus.announce(Event(topics.WORK_FAILED, {}))
    bus.publish(Event(topics.FILE_STORED, {}))
    assert heard == []
    clock.advance(0)
    clock.advance(10)
    assert heard == failing == [topics.UPLOAD_PROGRESS]
    assert queued == [topics.FILE_STORED]
    assert bus.published == 1


def two(clock: Clock, ttl: float = 60.0) -> tuple[ProgressBoard, ProgressBoard]:
    """The progress boards of two instances on one bus."""
    bus = InProcessBus(clock)
    boards = ProgressBoard(clock, ttl), ProgressBoard(clock, ttl)
    for board in boards:
        board.attach(bus)
    return boards


def shown(board: ProgressBoard, key: str, owner: int) -> dict[str, Any] | None:
    entry = board.get(key, owner)
    return None if entry is None else entry.document()


def test_an_upload_into_one_instance_shows_on_the_other() -> None:
    """b shows a's upload from its start, its bytes at most one interval
    late, and its end at once; only to its owner; a's own view is a's."""
    clock = Clock()
    a, b = two(clock)
    entry = a.start("k", 1, 1000)
    clock.advance(0)
    assert shown(b, "k", 1) == shown(a, "k", 1)
    assert shown(b, "k", 2) is None
    clock.advance(0.2)
    a.advance(entry, 100)
    clock.advance(0)
    assert shown(b, "k", 1)["received"] == 0  # type: ignore[index]
    clock.advance(0.5)
    a.advance(entry, 300)
    clock.advance(0.3)  # an interval after the start's announcement
    assert shown(b, "k", 1)["received"] == 300  # type: ignore[index]
    a.advance(entry, 1000)
    a.end(entry, "file-1", None)
    clock.advance(0)
    assert shown(b, "k", 1) == shown(a, "k", 1)
    assert shown(b, "k", 1)["state"] == "done"  # type: ignore[index]
    assert shown(b, "k", 1)["file_id"] == "file-1"  # type: ignore[index]
    clock.advance(60)
    assert shown(a, "k", 1) is None and shown(b, "k", 1) is None


def test_an_upload_whose_instance_fell_silent_is_forgotten_after_ttl() -> None:
    """An upload b heard start and then nothing of (a died) goes ``ttl``
    seconds after the last word; every word starts the time again."""
    clock = Clock()
    a, b = two(clock, ttl=30)
    entry = a.start("k", 1, None)
    clock.advance(20)
    a.advance(entry, 5)
    clock.advance(0)
    clock.advance(29)
    assert shown(b, "k", 1)["received"] == 5  # type: ignore[index]
    clock.advance(1)
    assert shown(b, "k", 1) is None


@attrs.define
class Announcements:
    """A bus that only records what it is asked to announce."""

    got: list[Event] = attrs.field(factory=list)

    def announce(self, event: Event) -> Deferred[None]:
        self.got.append(event)
        return succeed(None)

    def hear(self, pattern: str, handler: Any) -> None:
        pass


def test_older_news_of_an_upload_does_not_replace_newer() -> None:
    """Announcements heard out of order, or of an earlier upload under the
    same key from another instance, leave the newest in place."""
    clock = Clock()
    told = Announcements()
    a = ProgressBoard(clock, 60)
    a.attach(cast(IEventBus, told))
    b = ProgressBoard(clock, 60)
    entry = a.start("k", 1, 10)
    a.end(entry, "f", None)
    start, end = told.got
    now(b.heard(end))
    now(b.heard(start))
    assert shown(b, "k", 1)["state"] == "done"  # type: ignore[index]
    clock.advance(5)
    c = ProgressBoard(clock, 60)
    c.attach(cast(IEventBus, told))
    c.start("k", 1, 20)
    now(b.heard(told.got[-1]))
    now(b.heard(end))
    assert shown(b, "k", 1)["expected"] == 20  # type: ignore[index]


def test_one_board_alone_on_the_in_process_bus_answers_as_without_one() -> None:
    """With one instance the board hears only itself, and its answers are
    the ones of a board with no bus at all."""
    clock = Clock()
    bus = InProcessBus(clock)
    alone, bare = ProgressBoard(clock, 60), ProgressBoard(clock, 60)
    alone.attach(bus)
    entries = [board.start("k", 1, 100) for board in (alone, bare)]
    for received in (10, 50, 100):
        clock.advance(0.3)
        for board, entry in zip((alone, bare), entries, strict=True):
            board.advance(entry, received)
        assert shown(alone, "k", 1) == shown(bare, "k", 1)
        assert alone.get("k", 1) is entries[0]
    for board, entry in zip((alone, bare), entries, strict=True):
        board.end(entry, "f", None)
    clock.advance(1)
    assert shown(alone, "k", 1) == shown(bare, "k", 1)
    clock.advance(60)
    assert alone.get("k", 1) is None


def test_each_failure_log_shows_every_instances_failures_once() -> None:
    """A failure on a shows on b, one on b on a, newest first on both, and
    neither log repeats its own."""
    clock = Clock()
    bus = InProcessBus(clock)
    a, b = FailureLog(clock), FailureLog(clock)
    for log in (a, b):
        log.attach(bus)
    a.add("replication", "rsync exit 23", file_id="f1", node_id="n1")
    clock.advance(1)
    b.add("webhook", "HTTP 500", webhook_id="w1", event_id=7)
    clock.advance(0)
    for log in (a, b):
        assert [(f["kind"], f["at"]) for f in log.recent()] == [
            ("webhook", 1.0),
            ("replication", 0.0),
        ]
    assert b.recent()[1]["file_id"] == "f1"


def test_failed_sign_ins_on_one_instance_count_on_the_others() -> None:
    """Two wrong passwords for bob on a, with two allowed, and b refuses bob
    too; a right password (forgiven) is no news."""
    clock = Clock()
    bus = InProcessBus(clock)
    limits = SignInLimits(per_user=2, per_address=50, window=60)
    a, b = SignInThrottle(clock, limits), SignInThrottle(clock, limits)
    for throttle in (a, b):
        throttle.attach(bus)
    right = a.admit("carol", "10.0.0.1")
    assert not isinstance(right, Refusal)
    a.forgive(right)
    for _ in range(2):
        attempt = a.admit("bob", "10.0.0.1")
        assert not isinstance(attempt, Refusal)
        a.failed(attempt)
    assert isinstance(a.admit("bob", "10.0.0.9"), Refusal)
    assert not isinstance(b.admit("bob", "10.0.0.2"), Refusal)
    clock.advance(0)
    assert isinstance(b.admit("bob", "10.0.0.2"), Refusal)
    assert not isinstance(b.admit("carol", "10.0.0.2"), Refusal)
    clock.advance(60)
    assert not isinstance(b.admit("bob", "10.0.0.2"), Refusal)


@attrs.define
class Following(MemoryStore):
    """The store as an instance that does not lead the relay sees it."""

    async def leads(self, duty: str) -> bool:
        return False


def test_events_written_through_a_follower_are_relayed_by_the_leader_at_once() -> None:
    """A change on an instance that does not lead the relay has the leader
    publish its events at once, not at the leader's next tick; a tick on the
    follower tells nobody."""
    clock = Clock()
    bus = InProcessBus(clock)
    shared = MemoryStore()
    leader = OutboxRelay(shared, bus, clock)
    follower = OutboxRelay(Following(), bus, clock)
    for relay in (leader, follower):
        relay.attach()
    published: list[int] = []

    async def consume(event: Event) -> None:
        published.append(event.id)

    bus.subscribe("all", topics.FILE_STORED, consume)
    heard: list[Event] = []

    async def hear(event: Event) -> None:
        heard.append(event)

    bus.hear(topics.OUTBOX_WAITING, hear)
    now(shared.add_events([Event(topics.FILE_STORED, {"n": n}) for n in range(3)]))
    follower.poll()
    clock.advance(0)
    assert heard == [] and published == []
    follower.kick()
    clock.advance(0)
    clock.advance(0)
    assert len(heard) == 1
    assert published == [1, 2, 3]


def test_every_instance_shows_the_repair_leaders_last_pass() -> None:
    """The instance that leads repair makes the pass; the one that does not
    makes none and shows the leader's as its last."""
    clock = Clock()
    bus = InProcessBus(clock)
    repairers = [
        Repairer(
            Registry(store, clock, lambda record: MemoryNode(record.id)),
            store,
            cast(Replicator, None),  # no file to copy
            clock,
            replicas=1,
            repair_after=60,
            interval=10,
        )
        for store in (MemoryStore(), Following())
    ]
    for repairer in repairers:
        repairer.attach(bus)
    clock.advance(5)
    leader, follower = (now(r.repair()) for r in repairers)
    assert leader == {
        "at": 5.0,
        "examined": 0,
        "copied": 0,
        "dropped": 0,
        "short": 0,
    }
    assert follower == {"examined": 0, "copied": 0, "dropped": 0, "short": 0}
    clock.advance(0)
    assert repairers[1].last_pass == repairers[0].last_pass == leader


def test_the_repair_leader_has_the_holder_of_a_files_only_copy_copy_it(
    tmp_path: Path,
) -> None:
    """A file whose only copy is on b's disk (its copy to the node failed,
    or is still under way) is repaired with a leading: a asks, b copies it
    to the node, and a records no failed copy of its own."""
    clock = Clock()
    bus = InProcessBus(clock)
    store = MemoryStore()
    twin = MemoryNode("n1")
    instances = []
    for name in ("a", "b"):
        registry = Registry(store, clock, MemoryNodes({"n1": twin}))
        now(registry.load((("n1", "127.0.0.1", 7000),)))
        pinger = Pinger(registry, clock, 2.0, 1.0, rise=2, fall=3)
        pinger.ping_all()
        pinger.ping_all()
        blobs = BlobStore(tmp_path / name)
        replicator = Replicator(
            registry,
            store,
            blobs,
            run_inline,
            clock,
            ReplicationSettings(replicas=1, transfers_per_node=2, keep_local=True),
            failures=FailureLog(clock),
        )
        repairer = Repairer(registry, store, replicator, clock, 1, 60, 10)
        repairer.attach(bus)
        instances.append((blobs, replicator, repairer))
    (_, leader_copies, leader), (b_blobs, _, _) = instances
    record = stored_file(store, b_blobs, clock, b"only on b")
    # While new, it is b's replicator's; repair waits it out first.
    assert now(leader.repair())["copied"] == 0
    clock.advance(0)
    assert not twin.files
    clock.advance(leader.settle)
    assert now(leader.repair())["copied"] == 0
    clock.advance(0)
    clock.advance(1)
    assert [node for (file_id, node) in store.replicas if file_id == record.id] == [
        "n1"
    ]
    assert twin.files[record.id] == b"only on b"
    assert leader_copies.failures.entries == []


@pytest_twisted.ensureDeferred()
async def test_a_file_deleted_through_another_instance_leaves_no_bytes_here(
    tmp_path: Path,
) -> None:
    """file.deleted on the bus (the file deleted through another instance)
    takes this instance's copy of the bytes; a file still recorded keeps
    them."""
    app = harness(tmp_path)
    token = app.user("alice")
    ids = [
        (
            await app.call("PUT", f"/files/{n}.txt", data=b"x", headers=auth(token))
        ).json()["id"]
        for n in ("gone", "kept")
    ]
    paths = [app.parts.blobs.path(file_id) for file_id in ids]
    assert all(path.exists() for path in paths)
    await app.store.delete_file(ids[0])
    for file_id in ids:
        await app.parts.bus.publish(Event(topics.FILE_DELETED, {"file_id": file_id}))
    app.clock.advance(0)
    assert [path.exists() for path in paths] == [False, True]


@pytest_twisted.ensureDeferred()
async def test_bytes_on_their_way_to_the_nodes_from_another_instance_are_a_503(
    tmp_path: Path,
) -> None:
    """A file with no copy here and none on a node yet (another instance
    received it and is copying it) is a 503 with a short Retry-After, for a
    download and for a transcode worker's start, which spends no attempt;
    without a cluster the missing bytes stay a 404."""
    app = harness(tmp_path)
    token = app.user("alice")
    reply = await app.call(
        "PUT",
        "/files/talk.mp3",
        data=b"ID3 not really audio",
        headers={**auth(token), b"content-type": [b"audio/mpeg"]},
    )
    file_id = reply.json()["id"]
    app.parts.blobs.path(file_id).unlink()
    content = f"/files/{file_id}/content"
    assert (await app.call("GET", content, headers=auth(token))).code == 404
    app.parts.registry.nodes["n1"] = up("n1", http_url="http://n1:1")
    waiting = await app.call("GET", content, headers=auth(token))
    assert (waiting.code, waiting.header("retry-after")) == (503, "2")
    start = f"/files/{file_id}/renditions/audio-aac/start"
    worker = auth(app.parts.tokens.issue(WORKER, 3600))
    refused = await app.call("POST", start, headers=worker)
    assert (refused.code, refused.header("retry-after")) == (503, "2")
    assert (await app.store.get_rendition(file_id, "audio-aac")).attempt == 0  # type: ignore[union-attr]
    await app.store.add_replica(Replica(file_id, "n1", 20, 0.0))
    started = await app.call("POST", start, headers=worker)
    assert (started.code, started.json()["attempt"]) == (200, 1)
    moved = await app.call("GET", content, headers=auth(token), allow_redirects=False)
    assert moved.code == 302


@attrs.define
class NotYetClient:
    """Renditions API answers: 503 (retry in 2 s) ``waits`` times, then the
    job is over."""

    waits: int
    asked: list[float] = attrs.field(factory=list)
    clock: FakeReactor = attrs.field(factory=FakeReactor)

    async def start(self, file_id: str, profile: str) -> Job:
        self.asked.append(self.clock.seconds())
        if len(self.asked) <= self.waits:
            raise NotYet("HTTP 503: on its way to the nodes", 2.0)
        raise JobOver("done already")


@pytest.mark.parametrize(
    ("waits", "limit", "asked"), [(2, 60, [0, 2, 4]), (5, 5, [0, 2, 4])]
)
def test_a_worker_waits_for_a_source_on_its_way_as_long_as_a_job_may_take(
    tmp_path: Path, waits: int, limit: float, asked: list[float]
) -> None:
    """A start answered 503 is asked again after its Retry-After, until the
    source can be had; past the job time limit the worker gives the event
    back to the bus (an error)."""
    client = NotYetClient(waits)
    worker = TranscodeWorker(
        cast(RenditionsClient, client),
        client.clock,
        run_inline,
        tmp_path,
        ToolSettings(time_limit=limit),
    )
    errors: list[BaseException | None] = []

    def failed(failure: Failure) -> None:
        errors.append(failure.value)

    rendering = Deferred.fromCoroutine(worker.render("f", "audio-aac"))
    rendering.addErrback(failed)
    for _ in range(5):
        client.clock.advance(2)
    assert client.asked == asked
    assert rendering.called
    assert [type(e) for e in errors] == ([] if waits < len(asked) else [NotYet])


#: A Web Push private key (RFC 8291's example sender's).
VAPID_KEY = "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw"


@pytest.mark.parametrize(
    ("settings", "unset"),
    [
        (
            {
                ("database", "url"): "postgresql://u@127.0.0.1:5432/db",
                ("cluster", "instance"): "uploadd-1",
            },
            3,
        ),
        (
            {
                ("database", "url"): "postgresql://u@127.0.0.1:5432/db",
                ("cluster", "instance"): "uploadd-1",
                ("auth", "secret"): "a" * 32,
            },
            2,
        ),
        (
            {
                ("database", "url"): "postgresql://u@127.0.0.1:5432/db",
                ("cluster", "instance"): "uploadd-1",
                ("auth", "secret"): "a" * 32,
                ("push", "vapid_private_key"): VAPID_KEY,
            },
            1,
        ),
        ({}, 0),
    ],
)
def test_a_shared_database_without_shared_secrets_is_warned_of(
    tmp_path: Path, settings: dict[tuple[str, str], str], unset: int
) -> None:
    """On PostgreSQL (a store instances may share) each secret left to be
    generated (token, cluster, Web Push key) is a warning; on the SQLite
    default nothing is."""
    config = load_config(
        environ={}, options={("storage", "data_dir"): str(tmp_path), **settings}
    )
    with capturedLogs() as logged:
        warn_of_unset_cluster_settings(config)
    lines = [formatEvent(event) for event in logged]
    assert len(lines) == unset
    assert all("instances sharing the database need the same one" in x for x in lines)


def test_an_unnamed_instance_on_a_shared_database_is_warned_of(tmp_path: Path) -> None:
    """Its name would be the host's, which may not survive a restart."""
    config = load_config(
        environ={},
        options={
            ("storage", "data_dir"): str(tmp_path),
            ("database", "url"): "postgresql://u@127.0.0.1:5432/db",
            ("auth", "secret"): "a" * 32,
            ("cluster", "secret"): "b" * 32,
            ("push", "vapid_private_key"): VAPID_KEY,
        },
    )
    with capturedLogs() as logged:
        warn_of_unset_cluster_settings(config)
    (line,) = [formatEvent(event) for event in logged]
    assert line.startswith("[cluster] instance is not set")
