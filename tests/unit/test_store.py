"""The metadata store contract, run against SQLite, PostgreSQL (a private
cluster, started only when these tests run) and the in-memory fake."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import cast

import attrs
import pytest
import pytest_twisted
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater
from zope.interface.verify import verifyObject

from noded.reactor import checked
from tests.postgres import empty_tables
from uploadd.events.bus import IEventBus, InProcessBus
from uploadd.events.relay import OutboxRelay
from uploadd.store.buckets import (
    AccessKeyRecord,
    BucketRecord,
    ObjectRecord,
    PartRecord,
    key_successor,
)
from uploadd.store.interface import (
    Conflict,
    Delivery,
    Event,
    FileRecord,
    IMetadataStore,
    InstanceRecord,
    NodeRecord,
    PushSubscription,
    Rendition,
    Replica,
    Share,
    UploadRecord,
    Webhook,
)
from uploadd.store.memory import MemoryStore
from uploadd.store.postgres import PostgresStore
from uploadd.store.postgres import migrations as postgres_migrations
from uploadd.store.sqlite import SQLiteStore, migrations


@pytest_twisted.async_yield_fixture(params=["sqlite", "memory", "postgresql"])
async def store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[IMetadataStore]:
    if request.param == "memory":
        yield MemoryStore()
        return
    from twisted.internet import reactor

    made: SQLiteStore | PostgresStore
    if request.param == "postgresql":
        # This module's database, emptied after each test.
        url = request.getfixturevalue("postgres_url")
        made = PostgresStore(url, checked(reactor))
    else:
        made = SQLiteStore(tmp_path / "meta.sqlite3", checked(reactor))
    await made.migrate()
    try:
        yield made
    finally:
        made.close()
        if request.param == "postgresql":
            empty_tables(url)


def record(
    file_id: str, owner: int, at: float, parent: str | None = None
) -> FileRecord:
    return FileRecord(
        file_id,
        owner,
        f"{file_id}.txt",
        3,
        "s" * 64,
        "m" * 32,
        "text/plain",
        at,
        parent,
    )


@pytest_twisted.ensureDeferred()
async def test_each_store_provides_the_metadata_interface(
    store: IMetadataStore,
) -> None:
    assert verifyObject(IMetadataStore, store)


@pytest_twisted.ensureDeferred()
async def test_users_are_unique_and_updatable(store: IMetadataStore) -> None:
    """add, get, update and delete users; a taken name is a Conflict."""
    alice = await store.add_user("alice", "h1", frozenset({"write"}), 1.0)
    assert await store.get_user("alice") == alice
    assert await store.get_user_by_id(alice.id) == alice
    with pytest.raises(Conflict):
        await store.add_user("alice", "h2", frozenset({"read"}), 2.0)
    changed = await store.update_user("alice", scopes=frozenset({"admin"}))
    assert changed is not None and changed.scopes == frozenset({"admin"})
    assert changed.password_hash == "h1"
    assert await store.update_user("nobody", password_hash="x") is None
    await store.add_user("bob", "h", frozenset({"read"}), 3.0)
    assert [u.username for u in await store.list_users()] == ["alice", "bob"]
    assert await store.delete_user("bob")
    assert not await store.delete_user("bob")


@pytest_twisted.ensureDeferred()
async def test_files_list_newest_first_per_owner(store: IMetadataStore) -> None:
    """list_files pages one owner's files newest first and counts them all."""
    alice = await store.add_user("alice", "h", frozenset({"write"}), 0)
    bob = await store.add_user("bob", "h", frozenset({"write"}), 0)
    for n in range(5):
        await store.add_file(record(f"a{n}", alice.id, float(n)))
    await store.add_file(record("b0", bob.id, 9.0))
    page = await store.list_files(alice.id, 1, 2)
    assert page.count == 5
    assert [f.id for f in page.results] == ["a3", "a2"]
    everyone = await store.list_files(None, 0, 10)
    assert everyone.count == 6 and everyone.results[0].id == "b0"
    assert await store.get_file("a1") == record("a1", alice.id, 1.0)
    with pytest.raises(Conflict):
        await store.add_file(record("a1", alice.id, 1.0))


@pytest_twisted.ensureDeferred()
async def test_files_are_searched_by_name_and_sorted_by_name_size_or_date(
    store: IMetadataStore,
) -> None:
    """``search`` keeps names containing it, A-Z in either case, with % and _
    as plain characters; ``order`` sorts by name (A-Z folded, then byte by
    byte), size or date, either way, ties by id; count is of the matches."""
    alice = await store.add_user("alice", "h", frozenset({"write"}), 0)
    bob = await store.add_user("bob", "h", frozenset({"write"}), 0)
    names = {
        "f1": ("b-Report.PDF", 30, 5.0),
        "f2": ("a_report.txt", 10, 1.0),
        "f3": ("Zebra 50%.png", 20, 3.0),
        "f4": ("report.txt", 20, 2.0),
        "f5": ("Ärger report.txt", 5, 4.0),
        "f6": ("areport.txt", 1, 6.0),
    }
    for file_id, (name, size, at) in names.items():
        made = attrs.evolve(record(file_id, alice.id, at), filename=name, size=size)
        await store.add_file(made)
    theirs = attrs.evolve(record("b1", bob.id, 9.0), filename="report", size=25)
    await store.add_file(theirs)

    async def listed(search: str = "", order: str = "-created") -> list[str]:
        page = await store.list_files(alice.id, 0, 10, search, order)
        assert page.count == len(page.results)
        return [f.id for f in page.results]

    assert await listed("REPORT") == ["f6", "f1", "f5", "f4", "f2"]
    assert await listed("a_r") == ["f2"]
    assert await listed("50%") == ["f3"]
    assert await listed("%") == ["f3"]
    assert await listed("Ärger") == ["f5"]
    assert await listed("nothing") == []
    # A-Z folded: a_report < areport < b-report < report < zebra < Ärger.
    assert await listed(order="name") == ["f2", "f6", "f1", "f4", "f3", "f5"]
    assert await listed(order="-name") == ["f5", "f3", "f4", "f1", "f6", "f2"]
    assert await listed(order="size") == ["f6", "f5", "f2", "f3", "f4", "f1"]
    assert await listed(order="-size") == ["f1", "f3", "f4", "f2", "f5", "f6"]
    assert await listed(order="created") == ["f2", "f4", "f3", "f5", "f1", "f6"]
    page = await store.list_files(alice.id, 2, 2, "report", "name")
    assert page.count == 5
    assert [f.id for f in page.results] == ["f1", "f4"]
    everyone = await store.list_files(None, 0, 10, "report", "-size")
    assert [f.id for f in everyone.results][:2] == ["f1", "b1"]
    with pytest.raises(ValueError):
        await store.list_files(alice.id, 0, 10, "", "colour")


@pytest_twisted.ensureDeferred()
async def test_versions_list_oldest_first_and_outlive_their_deleted_parent(
    store: IMetadataStore,
) -> None:
    """versions_of lists children oldest first; deleting a parent orphans them."""
    alice = await store.add_user("alice", "h", frozenset({"write"}), 0)
    await store.add_file(record("root", alice.id, 1.0))
    await store.add_file(record("v2", alice.id, 3.0, parent="root"))
    await store.add_file(record("v1", alice.id, 2.0, parent="root"))
    assert [f.id for f in await store.versions_of("root")] == ["v1", "v2"]
    assert await store.delete_file("root")
    assert not await store.delete_file("root")
    assert (await store.get_file("v1")).parent is None  # type: ignore[union-attr]


@pytest_twisted.ensureDeferred()
async def test_deleting_a_user_deletes_their_file_records(
    store: IMetadataStore,
) -> None:
    alice = await store.add_user("alice", "h", frozenset({"write"}), 0)
    await store.add_file(record("a", alice.id, 1.0))
    await store.delete_user("alice")
    assert await store.get_file("a") is None


@pytest_twisted.ensureDeferred()
async def test_share_links_round_trip_and_go_with_their_file(
    store: IMetadataStore,
) -> None:
    """A file's share links are kept until deleted (with its event, once),
    listed oldest first, need a known file, and go when their file does."""
    alice = await store.add_user("alice", "h", frozenset({"write"}), 0)
    await store.add_file(record("deck", alice.id, 1.0))
    await store.add_file(record("other", alice.id, 1.0))
    first, second = Share("s1", "deck", 5.0), Share("s2", "deck", 6.0)
    await store.add_share(second)
    await store.add_share(first)
    await store.add_share(Share("s3", "other", 7.0))
    assert await store.get_share("s1") == first
    assert await store.shares_of("deck") == [first, second]
    with pytest.raises(Conflict):
        await store.add_share(Share("s4", "nothing", 8.0))
    revoked = Event("share.revoked", {"share_id": "s1"}, alice.id, 9.0)
    assert await store.delete_share("s1", [revoked])
    assert not await store.delete_share("s1", [revoked])
    assert [e.topic for e in await store.pending_events(10)] == ["share.revoked"]
    assert await store.get_share("s1") is None
    assert await store.delete_file("deck")
    assert await store.get_share("s2") is None
    assert await store.shares_of("deck") == []
    assert await store.get_share("s3") is not None


@pytest_twisted.ensureDeferred()
async def test_sqlite_migrations_are_versioned_and_idempotent(tmp_path: Path) -> None:
    """migrate() brings a new file to the newest version and is safe to repeat."""
    from twisted.internet import reactor

    made = SQLiteStore(tmp_path / "m.sqlite3", checked(reactor))
    newest = migrations()[-1][0]
    assert await made.migrate() == newest
    assert await made.migrate() == newest
    made.close()


def test_both_dialects_share_one_set_of_migration_versions() -> None:
    """Every version exists once for each dialect; PostgreSQL replaces the
    SQL of some versions (its types differ) and shares the rest."""
    sqlite = migrations()
    postgresql = postgres_migrations()
    assert [v for v, _ in sqlite] == [v for v, _ in postgresql]
    assert [v for v, _ in sqlite] == list(range(1, len(sqlite) + 1))
    shared = [v for (v, a), (_, b) in zip(sqlite, postgresql, strict=True) if a == b]
    assert 6 in shared and 1 not in shared


@pytest_twisted.ensureDeferred()
async def test_postgresql_migrations_are_versioned_idempotent_and_concurrent(
    postgres_url: str,
) -> None:
    """Two stores migrating one database at once (as two instances starting
    together) both end on the newest version, and again is a no-op."""
    from twisted.internet import reactor

    first = PostgresStore(postgres_url, checked(reactor))
    second = PostgresStore(postgres_url, checked(reactor))
    try:
        newest = postgres_migrations()[-1][0]
        both = await DeferredList(
            [Deferred.fromCoroutine(s.migrate()) for s in (first, second)],
            consumeErrors=True,
        )
        assert both == [(True, newest), (True, newest)]
        assert await first.migrate() == newest
    finally:
        first.close()
        second.close()
        empty_tables(postgres_url)


@pytest_twisted.ensureDeferred()
async def test_uploads_round_trip_and_expire(store: IMetadataStore) -> None:
    """An upload's every field survives save and load; expired_uploads finds
    open uploads past their expiry only."""
    alice = await store.add_user("alice", "h", frozenset({"write"}), 0)
    upload = UploadRecord(
        "u1",
        alice.id,
        "range",
        1000,
        created_at=1.0,
        expires_at=50.0,
        ranges=((0, 10), (20, 30)),
        metadata={"filename": "a.bin"},
        concat="partial",
        parts=("x", "y"),
        base=1,
        holder="uploadd-1",
    )
    await store.add_upload(upload)
    assert await store.get_upload("u1") == upload
    moved = attrs.evolve(upload, received=10, ranges=((0, 30),), expires_at=80.0)
    await store.save_upload(moved)
    assert await store.get_upload("u1") == moved
    await store.add_upload(UploadRecord("u2", alice.id, "tus", None, 1.0, 10.0))
    await store.add_upload(
        UploadRecord("u3", alice.id, "tus", 5, 1.0, 10.0, state="complete")
    )
    await store.add_upload(
        UploadRecord("u4", alice.id, "tus", 5, 1.0, 10.0, holder="uploadd-2")
    )
    # Each instance sweeps what it holds, and what no instance holds.
    assert [u.id for u in await store.expired_uploads(60.0, "uploadd-1")] == ["u2"]
    expired = await store.expired_uploads(60.0, "uploadd-2")
    assert sorted(u.id for u in expired) == ["u2", "u4"]
    assert sorted(u.id for u in await store.expired_uploads(60.0)) == ["u2", "u4"]
    assert await store.delete_upload("u2")
    assert await store.get_upload("u2") is None


@pytest_twisted.ensureDeferred()
async def test_a_users_unfinished_uploads_are_listed_wherever_they_are_held(
    store: IMetadataStore,
) -> None:
    """uploads_of lists one user's open uploads (whichever instance holds
    them) and complete partial ones not yet joined, oldest first; finished,
    joined, expired-and-swept and cancelled ones are not listed."""
    alice = await store.add_user("alice", "h", frozenset({"write"}), 0)
    bob = await store.add_user("bob", "h", frozenset({"write"}), 0)
    mine = [
        UploadRecord("open", alice.id, "tus", 9, 3.0, 99.0, metadata={"a": "b"}),
        UploadRecord("held-elsewhere", alice.id, "tus", 9, 1.0, 99.0, holder="b"),
        UploadRecord("part", alice.id, "tus", 9, 2.0, 99.0, "complete", 9,
                     concat="partial"),
        UploadRecord("joined", alice.id, "tus", 9, 2.0, 99.0, "complete", 9,
                     concat="partial", file_id="f"),
        UploadRecord("done", alice.id, "tus", 9, 2.0, 99.0, "complete", 9,
                     file_id="f"),
        UploadRecord("swept", alice.id, "tus", 9, 2.0, 9.0, "expired"),
        UploadRecord("cancelled", alice.id, "tus", 9, 2.0, 9.0, "cancelled"),
        UploadRecord("theirs", bob.id, "tus", 9, 2.0, 99.0),
    ]  # fmt: skip
    for upload in mine:
        await store.add_upload(upload)
    found = await store.uploads_of(alice.id)
    assert [u.id for u in found] == ["held-elsewhere", "part", "open"]
    assert found[2] == mine[0]
    assert [u.id for u in await store.uploads_of(bob.id)] == ["theirs"]
    assert await store.uploads_of(999) == []


@pytest_twisted.ensureDeferred()
async def test_instances_register_and_retiring_one_cancels_the_uploads_it_holds(
    store: IMetadataStore,
) -> None:
    """An instance registers (again after a restart, at a new URL); retiring
    it cancels its open and complete partial uploads, no other's, and it
    cannot register again."""
    alice = await store.add_user("alice", "h", frozenset({"write"}), 0)
    await store.register_instance(InstanceRecord("a", "http://127.0.0.1:1", 1.0))
    await store.register_instance(InstanceRecord("b", "http://127.0.0.1:2", 2.0))
    await store.register_instance(InstanceRecord("a", "http://127.0.0.1:3", 3.0))
    assert await store.list_instances() == [
        InstanceRecord("a", "http://127.0.0.1:3", 3.0),
        InstanceRecord("b", "http://127.0.0.1:2", 2.0),
    ]
    held = [
        UploadRecord("open-a", alice.id, "tus", 9, 1.0, 99.0, holder="a"),
        UploadRecord(
            "part-a", alice.id, "tus", 9, 1.0, 99.0, "complete", concat="partial"
        ),
        UploadRecord("done-a", alice.id, "tus", 9, 1.0, 99.0, "complete"),
        UploadRecord("open-b", alice.id, "tus", 9, 1.0, 99.0, holder="b"),
    ]
    held[1] = attrs.evolve(held[1], holder="a")
    held[2] = attrs.evolve(held[2], holder="a")
    for record in held:
        await store.add_upload(record)
    assert await store.retire_instance("a", 10.0) == 2
    assert await store.retire_instance("nobody", 10.0) == 0
    states = {r.id: (await store.get_upload(r.id)).state for r in held}  # type: ignore[union-attr]
    assert states == {
        "open-a": "cancelled",
        "part-a": "cancelled",
        "done-a": "complete",
        "open-b": "open",
    }
    retired = await store.get_instance("a")
    assert retired is not None and retired.retired_at == 10.0
    with pytest.raises(Conflict):
        await store.register_instance(InstanceRecord("a", "http://x:1", 11.0))


@pytest_twisted.ensureDeferred()
async def test_nodes_and_replicas_are_recorded_and_go_with_their_file_or_node(
    store: IMetadataStore,
) -> None:
    """Nodes are added, changed and removed; replicas are recorded per file
    and node, mapped for repair, and go with their file or node."""
    alice = await store.add_user("alice", "h", frozenset({"write"}), 0)
    await store.add_node(NodeRecord("n1", "127.0.0.1", 7001, 1.0))
    await store.add_node(NodeRecord("n2", "127.0.0.1", 7002, 2.0))
    with pytest.raises(Conflict):
        await store.add_node(NodeRecord("n1", "h", 1, 3.0))
    await store.save_node(NodeRecord("n2", "127.0.0.1", 7002, 2.0, mode="draining"))
    assert [(n.id, n.mode) for n in await store.list_nodes()] == [
        ("n1", "active"),
        ("n2", "draining"),
    ]
    for file_id in ("a", "b", "c"):
        await store.add_file(record(file_id, alice.id, 1.0))
    await store.add_replica(Replica("a", "n1", 3, 5.0))
    await store.add_replica(Replica("a", "n2", 3, 5.0))
    await store.add_replica(Replica("b", "n2", 3, 5.0))
    assert [r.node_id for r in await store.replicas_of("a")] == ["n1", "n2"]
    assert await store.replica_map("", 10) == [
        ("a", ["n1", "n2"]),
        ("b", ["n2"]),
        ("c", []),
    ]
    assert await store.replica_map("a", 1) == [("b", ["n2"])]
    assert await store.remove_replica("a", "n1")
    assert await store.delete_node("n2")
    assert await store.replica_map("", 10) == [("a", []), ("b", []), ("c", [])]
    await store.add_replica(Replica("c", "n1", 3, 5.0))
    await store.delete_file("c")
    assert await store.replicas_of("c") == []


@pytest_twisted.ensureDeferred()
async def test_events_ride_in_the_same_transaction(store: IMetadataStore) -> None:
    """add_file and delete_file record their events with the change; a failed
    change records none; pending events come oldest first until marked sent."""
    alice = await store.add_user("alice", "h", frozenset({"write"}), 0)
    await store.add_file(record("a", alice.id, 1.0), [Event("file.stored", {"n": 1})])
    with pytest.raises(Conflict):
        await store.add_file(
            record("a", alice.id, 1.0), [Event("file.stored", {"n": 2})]
        )
    await store.delete_file("a", [Event("file.deleted", {"n": 3})])
    assert not await store.delete_file("a", [Event("file.deleted", {"n": 4})])
    pending = await store.pending_events(10)
    assert [(e.topic, e.payload["n"]) for e in pending] == [
        ("file.stored", 1),
        ("file.deleted", 3),
    ]
    assert pending[0].id < pending[1].id
    assert await store.outbox_depth() == 2
    await store.mark_sent([pending[0].id], 5.0)
    assert [e.payload["n"] for e in await store.pending_events(10)] == [3]


@pytest_twisted.ensureDeferred()
async def test_the_outbox_tells_when_its_oldest_waiting_event_was_recorded(
    store: IMetadataStore,
) -> None:
    """outbox_oldest is the recording time of the first event not yet sent,
    the one the relay sends next (not of the first ever, nor the earliest
    time among those after it), and None once every event is sent."""
    assert await store.outbox_oldest() is None
    await store.add_events(
        [
            Event("slide.shown", {"n": 1}, created_at=10.0),
            Event("slide.shown", {"n": 2}, created_at=20.0),
            Event("slide.shown", {"n": 3}, created_at=15.0),
        ]
    )
    assert await store.outbox_oldest() == 10.0
    first, second, third = await store.pending_events(10)
    await store.mark_sent([first.id], 30.0)
    assert await store.outbox_oldest() == 20.0
    await store.mark_sent([second.id, third.id], 31.0)
    assert await store.outbox_oldest() is None
    assert await store.outbox_depth() == 0


@pytest_twisted.ensureDeferred()
async def test_renditions_fence_attempts_and_replace_outputs(
    store: IMetadataStore,
) -> None:
    """Pending renditions arrive with their file; only the current attempt
    adds outputs or saves; a second output at the same place replaces the
    first; outputs are not listed as files and go with their source."""
    alice = await store.add_user("alice", "h", frozenset({"write"}), 0)
    pending = Rendition("src", "audio-aac", "pending", 1.0, 1.0)
    await store.add_file(record("src", alice.id, 1.0), renditions=[pending])
    assert await store.renditions_of("src") == [pending]
    running = attrs.evolve(pending, state="running", attempt=1)
    await store.save_rendition(running, expect_attempt=0)
    with pytest.raises(Conflict):
        await store.save_rendition(attrs.evolve(running, attempt=2), expect_attempt=0)

    def output(file_id: str) -> FileRecord:
        return attrs.evolve(record(file_id, alice.id, 2.0), rendition_of="src")

    assert await store.add_output(output("o1"), "audio-aac", 0, attempt=1) is None
    with pytest.raises(Conflict):
        await store.add_output(output("stale"), "audio-aac", 0, attempt=0)
    assert await store.get_file("stale") is None
    # A redelivered job (attempt 2) makes the same output again: it replaces.
    current = await store.get_rendition("src", "audio-aac")
    assert current is not None and current.outputs == ("o1",)
    await store.save_rendition(attrs.evolve(current, attempt=2), expect_attempt=1)
    assert await store.add_output(output("o2"), "audio-aac", 0, attempt=2) == "o1"
    assert await store.get_file("o1") is None
    await store.add_output(
        output("o3"), "audio-aac", 1, attempt=2, events=[Event("file.stored", {"n": 1})]
    )
    found = await store.get_rendition("src", "audio-aac")
    assert found is not None and found.outputs == ("o2", "o3")
    await store.save_rendition(
        attrs.evolve(found, state="ready", outputs=("o2",)), 2, drop=["o3"]
    )
    assert await store.get_file("o3") is None
    page = await store.list_files(alice.id, 0, 10)
    assert [f.id for f in page.results] == ["src"]
    assert await store.delete_file("src")
    assert await store.get_file("o2") is None
    assert await store.renditions_of("src") == []
    assert await store.get_rendition("src", "audio-aac") is None


@pytest_twisted.ensureDeferred()
async def test_one_instance_leads_a_duty_and_another_takes_over_when_it_goes(
    postgres_url: str,
) -> None:
    """Of two stores on one PostgreSQL (two uploadd instances), one leads a
    duty and keeps leading it; duties are led apart; when the leader's
    store closes (its process died), the other leads at its next ask."""
    from twisted.internet import reactor

    first = PostgresStore(postgres_url, checked(reactor))
    second = PostgresStore(postgres_url, checked(reactor))
    try:
        assert await first.leads("outbox relay")
        assert not await second.leads("outbox relay")
        assert await first.leads("outbox relay")
        assert await second.leads("repair")
        assert not await first.leads("repair")
    finally:
        first.close()
    try:
        assert await second.leads("outbox relay")
    finally:
        second.close()


@attrs.define
class SlowBus:
    """A bus that takes a while to accept what it is given."""

    _bus: InProcessBus
    _clock: IReactorTime

    async def _later(self, events: Sequence[Event]) -> None:
        await deferLater(self._clock, 0.3)
        await self._bus.publish_many(events)

    def publish_many(self, events: Sequence[Event]) -> Deferred[None]:
        return Deferred.fromCoroutine(self._later(events))


@pytest_twisted.ensureDeferred()
async def test_two_relays_on_one_outbox_publish_each_event_once(
    postgres_url: str,
) -> None:
    """Relays of two instances sharing a PostgreSQL outbox, running at once
    (the bus slow enough that each reads the outbox before either has marked
    anything sent), put each event on the bus exactly once."""
    from twisted.internet import reactor

    stores = [PostgresStore(postgres_url, checked(reactor)) for _ in range(2)]
    published: list[int] = []
    bus = InProcessBus(checked(reactor))

    async def heard(event: Event) -> None:
        published.append(event.payload["n"])

    bus.subscribe("all", "#", heard)
    try:
        await stores[0].migrate()
        alice = await stores[0].add_user("alice", "h", frozenset({"write"}), 0)
        await stores[0].add_events(
            [Event("file.stored", {"n": n}, alice.id, 0.0) for n in range(30)]
        )
        # The relay asks only publish_many of its bus.
        slow = cast(IEventBus, SlowBus(bus, checked(reactor)))
        relays = [OutboxRelay(store, slow, checked(reactor)) for store in stores]
        for _ in range(3):
            await DeferredList([Deferred.fromCoroutine(r.relay()) for r in relays])
        await deferLater(reactor, 0.2)  # the in-process bus delivers
        assert sorted(published) == list(range(30))
    finally:
        for store in stores:
            store.close()
        empty_tables(postgres_url)


@pytest_twisted.ensureDeferred()
async def test_webhook_deliveries_are_recorded_and_updated(
    store: IMetadataStore,
) -> None:
    """A delivery is recorded, its retries update it (delivered at last),
    and it goes with its webhook."""
    alice = await store.add_user("alice", "h", frozenset({"write"}), 0)
    hook = Webhook("w1", alice.id, "https://example.com/h", ("file.*",), "s", 1.0)
    await store.add_webhook(hook)
    first = Delivery("d1", "w1", 7, "file.stored", 1, 500, "HTTP 500", False, 2.0)
    await store.save_delivery(first)
    assert await store.get_delivery("d1") == first
    done = attrs.evolve(first, attempts=2, status=204, error=None, delivered=True)
    await store.save_delivery(done)
    assert await store.get_delivery("d1") == done
    assert await store.delete_webhook("w1")
    assert await store.get_delivery("d1") is None


@pytest_twisted.ensureDeferred()
async def test_push_subscriptions_follow_their_browser_and_their_user(
    store: IMetadataStore,
) -> None:
    """A user's push subscriptions are listed oldest first and deleted by
    id; an endpoint subscribed again (by anyone) replaces the earlier record,
    since one endpoint is one browser; they go with their user."""
    alice = await store.add_user("alice", "h", frozenset({"write"}), 0)
    bob = await store.add_user("bob", "h", frozenset({"write"}), 0)

    def made(sub_id: str, owner: int, endpoint: str, at: float) -> PushSubscription:
        url = f"https://push.example.com/{endpoint}"
        return PushSubscription(sub_id, owner, url, "B" + "k" * 86, "a" * 22, at)

    phone, laptop = made("p1", alice.id, "phone", 2.0), made("p2", alice.id, "l", 1.0)
    await store.add_push_subscription(phone)
    await store.add_push_subscription(laptop)
    await store.add_push_subscription(made("p3", bob.id, "tablet", 3.0))
    assert await store.push_subscriptions_of(alice.id) == [laptop, phone]
    renewed = attrs.evolve(phone, id="p4", p256dh="B" + "n" * 86, created_at=4.0)
    await store.add_push_subscription(renewed)
    assert await store.push_subscriptions_of(alice.id) == [laptop, renewed]
    taken = made("p5", bob.id, "l", 5.0)
    await store.add_push_subscription(taken)
    assert await store.push_subscriptions_of(alice.id) == [renewed]
    assert [s.id for s in await store.push_subscriptions_of(bob.id)] == ["p3", "p5"]
    assert await store.delete_push_subscription("p4")
    assert not await store.delete_push_subscription("p4")
    assert await store.push_subscriptions_of(alice.id) == []
    assert await store.delete_user("bob")
    assert await store.push_subscriptions_of(bob.id) == []
    assert not await store.delete_push_subscription("p3")


@pytest_twisted.ensureDeferred()
async def test_published_events_are_replayed_by_owner_and_pruned_by_age(
    store: IMetadataStore,
) -> None:
    """events_after gives published events after an id, a user's own or
    everyone's; unpublished ones wait; prune_events forgets old published
    ones only."""
    await store.add_events(
        [
            Event("t.a", {"n": 1}, 1, 1.0),
            Event("t.b", {"n": 2}, 2, 2.0),
            Event("t.c", {"n": 3}, 1, 3.0),
            Event("t.d", {"n": 4}, 1, 4.0),
        ]
    )
    pending = await store.pending_events(10)
    ids = [e.id for e in pending]
    await store.mark_sent(ids[:2], 10.0)
    await store.mark_sent(ids[2:3], 20.0)
    assert [e.payload["n"] for e in await store.events_after(0, None, 10)] == [1, 2, 3]
    assert [e.payload["n"] for e in await store.events_after(ids[0], 1, 10)] == [3]
    assert [e.payload["n"] for e in await store.events_after(0, None, 2)] == [1, 2]
    assert await store.prune_events(15.0) == 2
    assert [e.payload["n"] for e in await store.events_after(0, None, 10)] == [3]
    assert [e.payload["n"] for e in await store.pending_events(10)] == [4]


# -- buckets, objects, access keys, multipart parts -------------------------------


@pytest_twisted.ensureDeferred()
async def test_buckets_have_unique_names_and_go_with_their_owner(
    store: IMetadataStore,
) -> None:
    """A bucket name is taken once, by anyone; buckets list by name, one
    owner's or everyone's; CORS rules are set and cleared; a bucket needs a
    known owner and goes with them."""
    alice = await store.add_user("alice", "h", frozenset({"write"}), 0)
    bob = await store.add_user("bob", "h", frozenset({"write"}), 0)
    photos = BucketRecord("photos", alice.id, 1.0)
    await store.add_bucket(BucketRecord("zebra", alice.id, 2.0))
    await store.add_bucket(photos)
    await store.add_bucket(BucketRecord("bobs", bob.id, 3.0))
    with pytest.raises(Conflict):
        await store.add_bucket(BucketRecord("photos", bob.id, 4.0))
    with pytest.raises(Conflict):
        await store.add_bucket(BucketRecord("nobodys", 999, 4.0))
    assert await store.get_bucket("photos") == photos
    assert await store.get_bucket("nothing") is None
    assert [b.name for b in await store.list_buckets(alice.id)] == ["photos", "zebra"]
    assert [b.name for b in await store.list_buckets(None)] == [
        "bobs",
        "photos",
        "zebra",
    ]
    assert await store.set_bucket_cors("photos", "<CORSConfiguration/>")
    assert (await store.get_bucket("photos")) == attrs.evolve(
        photos, cors="<CORSConfiguration/>"
    )
    assert await store.set_bucket_cors("photos", None)
    assert (await store.get_bucket("photos")) == photos
    assert not await store.set_bucket_cors("nothing", None)
    assert await store.delete_bucket("zebra")
    assert not await store.delete_bucket("zebra")
    assert await store.delete_user("alice")
    assert await store.list_buckets(None) == [BucketRecord("bobs", bob.id, 3.0)]


#: Keys whose code point order (UTF-8's byte order) differs from most
#: locales' and from UTF-16's: capitals first, '/' before digits, accents
#: and symbols after ASCII, a character beyond the BMP after U+FFFD.
KEYS = [
    "A",
    "a",
    "a/",
    "a/b",
    "a/b/c",
    "a/\U0010ffffx",
    "a0",
    "a\u00e9",
    "b",
    "z",
    "\u00e9t\u00e9",
    "\ufffd",
    "\U0001f600",
]


@pytest_twisted.ensureDeferred()
async def test_objects_list_in_utf8_byte_order_by_prefix_and_position(
    store: IMetadataStore,
) -> None:
    """Objects list in code point order (as S3: UTF-8's bytes, whatever the
    database's locale), from a position (after it, or at it), under a
    prefix, up to a limit; one bucket's only."""
    alice = await store.add_user("alice", "h", frozenset({"write"}), 0)
    await store.add_bucket(BucketRecord("one", alice.id, 1.0))
    await store.add_bucket(BucketRecord("two", alice.id, 1.0))
    await store.add_file(record("f", alice.id, 1.0))
    for key in reversed(KEYS):
        await store.put_object(ObjectRecord("one", key, "f", {"etag": key}, 2.0))
    await store.put_object(ObjectRecord("two", "a", "f", {}, 2.0))

    async def keys(**asked: object) -> list[str]:
        found = await store.list_objects("one", **asked)  # type: ignore[arg-type]
        return [o.key for o in found]

    assert await keys() == KEYS
    assert sorted(KEYS, key=lambda k: k.encode("utf-8")) == KEYS
    assert await keys(prefix="a/") == ["a/", "a/b", "a/b/c", "a/\U0010ffffx"]
    assert await keys(prefix="a/", after="a/b") == ["a/b/c", "a/\U0010ffffx"]
    assert await keys(prefix="a/", after="a/b", including=True) == [
        "a/b",
        "a/b/c",
        "a/\U0010ffffx",
    ]
    assert await keys(after="a0", limit=3) == ["a\u00e9", "b", "z"]
    assert await keys(after="\ufffd") == ["\U0001f600"]
    assert await keys(prefix="\u00e9") == ["\u00e9t\u00e9"]
    assert await keys(prefix="a/\U0010ffff") == ["a/\U0010ffffx"]
    assert await keys(prefix="q") == []
    listed = await store.list_objects("one", "a/b/", "", 10)
    assert listed == [ObjectRecord("one", "a/b/c", "f", {"etag": "a/b/c"}, 2.0)]


def test_the_successor_of_a_prefix_sorts_after_everything_under_it() -> None:
    """key_successor: the first text past every text starting with a prefix."""
    assert key_successor("a/") == "a0"
    assert key_successor("a\U0010ffff") == "b"
    assert key_successor("\ud7ff") == "\ue000"
    assert key_successor("\U0010ffff") is None
    assert key_successor("") is None


@pytest_twisted.ensureDeferred()
async def test_objects_are_replaced_deleted_and_go_with_their_file_or_bucket(
    store: IMetadataStore,
) -> None:
    """Putting a key again replaces its object (and gives back the one it
    replaced); an object needs a known bucket and file, goes with its file,
    and a bucket holding one cannot be deleted."""
    alice = await store.add_user("alice", "h", frozenset({"write"}), 0)
    await store.add_bucket(BucketRecord("b", alice.id, 1.0))
    for file_id in ("f1", "f2"):
        await store.add_file(record(file_id, alice.id, 1.0))
    first = ObjectRecord("b", "k", "f1", {"etag": "1", "meta": {"x": "y"}}, 2.0)
    assert await store.put_object(first) is None
    assert await store.has_objects("b")
    second = ObjectRecord("b", "k", "f2", {"etag": "2"}, 3.0)
    assert await store.put_object(second) == first
    assert await store.get_object("b", "k") == second
    assert await store.get_object("b", "other") is None
    with pytest.raises(Conflict):
        await store.put_object(ObjectRecord("nothing", "k", "f1", {}, 2.0))
    with pytest.raises(Conflict):
        await store.put_object(ObjectRecord("b", "k2", "nofile", {}, 2.0))
    with pytest.raises(Conflict):
        await store.delete_bucket("b")
    assert await store.delete_object("b", "k")
    assert not await store.delete_object("b", "k")
    assert not await store.has_objects("b")
    await store.put_object(ObjectRecord("b", "k3", "f1", {}, 4.0))
    assert await store.delete_file("f1")
    assert await store.get_object("b", "k3") is None
    assert await store.delete_bucket("b")


@pytest_twisted.ensureDeferred()
async def test_access_keys_are_listed_revoked_once_and_go_with_their_user(
    store: IMetadataStore,
) -> None:
    """An access key id is taken once and needs a known user; keys list
    oldest first, one user's or everyone's; a key is revoked once and stays
    listed; keys go with their user."""
    alice = await store.add_user("alice", "h", frozenset({"write"}), 0)
    bob = await store.add_user("bob", "h", frozenset({"write"}), 0)
    first = AccessKeyRecord("UPLDA", alice.id, "write", "sealed-1", 1.0)
    second = AccessKeyRecord("UPLDB", alice.id, "read", "sealed-2", 2.0)
    await store.add_access_key(second)
    await store.add_access_key(first)
    await store.add_access_key(AccessKeyRecord("UPLDC", bob.id, "read", "s", 3.0))
    with pytest.raises(Conflict):
        await store.add_access_key(attrs.evolve(first, user_id=bob.id))
    with pytest.raises(Conflict):
        await store.add_access_key(AccessKeyRecord("UPLDD", 999, "read", "s", 3.0))
    assert await store.get_access_key("UPLDA") == first
    assert await store.get_access_key("UPLDZ") is None
    assert await store.access_keys_of(alice.id) == [first, second]
    assert [k.key_id for k in await store.access_keys_of(None)] == [
        "UPLDA",
        "UPLDB",
        "UPLDC",
    ]
    assert await store.revoke_access_key("UPLDA", 5.0)
    assert not await store.revoke_access_key("UPLDA", 6.0)
    assert not await store.revoke_access_key("UPLDZ", 6.0)
    assert await store.get_access_key("UPLDA") == attrs.evolve(first, revoked_at=5.0)
    assert await store.delete_user("alice")
    assert [k.key_id for k in await store.access_keys_of(None)] == ["UPLDC"]


@pytest_twisted.ensureDeferred()
async def test_multipart_parts_replace_by_number_and_go_with_their_upload(
    store: IMetadataStore,
) -> None:
    """A part number saved again replaces the part (which is given back);
    parts list by number; they need their upload, are deleted together,
    and go with their upload."""
    alice = await store.add_user("alice", "h", frozenset({"write"}), 0)
    await store.add_upload(UploadRecord("mp", alice.id, "s3", None, 1.0, 99.0))
    size = 5 * 2**30  # parts may pass 32 bits
    second = PartRecord("mp", 2, "p2", size, "e2", 2.0)
    first = PartRecord("mp", 1, "p1", 5, "e1", 3.0, "CRC32", "AAAAAA==")
    assert await store.save_part(second) is None
    assert await store.save_part(first) is None
    assert await store.parts_of("mp") == [first, second]
    again = PartRecord("mp", 2, "p3", 7, "e3", 4.0, "SHA256", "x")
    assert await store.save_part(again) == second
    assert await store.parts_of("mp") == [first, again]
    with pytest.raises(Conflict):
        await store.save_part(PartRecord("nothing", 1, "p", 1, "e", 1.0))
    assert await store.delete_parts("mp") == 2
    assert await store.parts_of("mp") == []
    await store.save_part(first)
    assert await store.delete_upload("mp")
    assert await store.parts_of("mp") == []


@pytest_twisted.ensureDeferred()
async def test_touching_an_open_upload_moves_its_expiry_only(
    store: IMetadataStore,
) -> None:
    """touch_upload changes an open upload's expiry and nothing else, and
    leaves uploads that are not open as they are."""
    alice = await store.add_user("alice", "h", frozenset({"write"}), 0)
    upload = UploadRecord("u", alice.id, "s3", None, 1.0, 10.0, metadata={"a": "b"})
    await store.add_upload(upload)
    done = UploadRecord("done", alice.id, "s3", 1, 1.0, 10.0, "complete")
    await store.add_upload(done)
    assert await store.touch_upload("u", 50.0)
    assert await store.get_upload("u") == attrs.evolve(upload, expires_at=50.0)
    assert not await store.touch_upload("done", 50.0)
    assert (await store.get_upload("done")).expires_at == 10.0  # type: ignore[union-attr]
    assert not await store.touch_upload("nothing", 50.0)
