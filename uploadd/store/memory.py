"""An in-memory IMetadataStore for unit tests; same contract as SQLiteStore."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import attrs
from zope.interface import implementer

from uploadd.store.buckets import (
    AccessKeyRecord,
    BucketRecord,
    ObjectRecord,
    PartRecord,
)
from uploadd.store.interface import (
    FILE_ORDERS,
    Conflict,
    Delivery,
    Event,
    FileRecord,
    IMetadataStore,
    InstanceRecord,
    NodeRecord,
    Page,
    PushSubscription,
    Rendition,
    Replica,
    Share,
    UploadRecord,
    User,
    Webhook,
    ascii_lower,
    place_output,
)
from uploadd.store.memory_buckets import BucketsInMemory


@implementer(IMetadataStore)
@attrs.define
class MemoryStore(BucketsInMemory):
    users: dict[str, User] = attrs.field(factory=dict)
    files: dict[str, FileRecord] = attrs.field(factory=dict)
    uploads: dict[str, UploadRecord] = attrs.field(factory=dict)
    nodes: dict[str, NodeRecord] = attrs.field(factory=dict)
    instances: dict[str, InstanceRecord] = attrs.field(factory=dict)
    replicas: dict[tuple[str, str], Replica] = attrs.field(factory=dict)
    events: list[Event] = attrs.field(factory=list)
    webhooks: dict[str, Webhook] = attrs.field(factory=dict)
    deliveries: dict[str, Delivery] = attrs.field(factory=dict)
    renditions: dict[tuple[str, str], Rendition] = attrs.field(factory=dict)
    shares: dict[str, Share] = attrs.field(factory=dict)
    push_subscriptions: dict[str, PushSubscription] = attrs.field(factory=dict)
    sent: dict[int, float] = attrs.field(factory=dict)
    buckets: dict[str, BucketRecord] = attrs.field(factory=dict)
    objects: dict[tuple[str, str], ObjectRecord] = attrs.field(factory=dict)
    access_keys: dict[str, AccessKeyRecord] = attrs.field(factory=dict)
    parts: dict[tuple[str, int], PartRecord] = attrs.field(factory=dict)
    _next_event: int = 0
    _next_user: int = 1

    async def migrate(self) -> int:
        return 1

    def close(self) -> None:
        pass

    async def leads(self, duty: str) -> bool:
        return True  # one process's memory: the only instance

    async def add_user(
        self, username: str, password_hash: str, scopes: frozenset[str], now: float
    ) -> User:
        if username in self.users:
            raise Conflict(f"user {username!r} exists")
        user = User(self._next_user, username, password_hash, scopes, now)
        self._next_user += 1
        self.users[username] = user
        return user

    async def update_user(
        self,
        username: str,
        password_hash: str | None = None,
        scopes: frozenset[str] | None = None,
    ) -> User | None:
        user = self.users.get(username)
        if user is None:
            return None
        if password_hash is not None:
            user = attrs.evolve(user, password_hash=password_hash)
        if scopes is not None:
            user = attrs.evolve(user, scopes=scopes)
        self.users[username] = user
        return user

    async def set_email(self, username: str, email: str | None) -> bool:
        user = self.users.get(username)
        if user is None:
            return False
        self.users[username] = attrs.evolve(user, email=email)
        return True

    async def get_user(self, username: str) -> User | None:
        return self.users.get(username)

    async def get_user_by_id(self, user_id: int) -> User | None:
        return next((u for u in self.users.values() if u.id == user_id), None)

    async def list_users(self) -> list[User]:
        return sorted(self.users.values(), key=lambda u: u.username)

    async def delete_user(self, username: str) -> bool:
        user = self.users.pop(username, None)
        if user is None:
            return False
        for upload in [u for u in self.uploads.values() if u.owner_id == user.id]:
            await self.delete_upload(upload.id)
        self._forget_user(user.id)
        for record in [f for f in self.files.values() if f.owner_id == user.id]:
            await self.delete_file(record.id)
        for subscription in await self.push_subscriptions_of(user.id):
            del self.push_subscriptions[subscription.id]
        return True

    async def add_file(
        self,
        record: FileRecord,
        events: Sequence[Event] = (),
        renditions: Sequence[Rendition] = (),
    ) -> None:
        self._check_new(record)
        self.files[record.id] = record
        for rendition in renditions:
            self.renditions[(rendition.source_id, rendition.profile)] = rendition
        self._append(events)

    def _check_new(self, record: FileRecord) -> None:
        if record.id in self.files:
            raise Conflict(f"file {record.id} exists")
        for linked in (record.parent, record.rendition_of):
            if linked is not None and linked not in self.files:
                raise Conflict(f"file {record.id}: {linked} is unknown")

    async def renditions_of(self, source_id: str) -> list[Rendition]:
        return [r for key, r in self.renditions.items() if key[0] == source_id]

    async def get_rendition(self, source_id: str, profile: str) -> Rendition | None:
        return self.renditions.get((source_id, profile))

    async def save_rendition(
        self,
        rendition: Rendition,
        expect_attempt: int,
        events: Sequence[Event] = (),
        drop: Sequence[str] = (),
    ) -> None:
        key = (rendition.source_id, rendition.profile)
        found = self.renditions.get(key)
        if found is None or found.attempt != expect_attempt:
            raise Conflict(
                f"rendition {rendition.profile} of {rendition.source_id} is gone"
                f" or past attempt {expect_attempt}"
            )
        self.renditions[key] = rendition
        for file_id in drop:
            self.files.pop(file_id, None)
        self._append(events)

    async def add_output(
        self,
        record: FileRecord,
        profile: str,
        index: int,
        attempt: int,
        events: Sequence[Event] = (),
    ) -> str | None:
        key = (record.rendition_of or "", profile)
        found = self.renditions.get(key)
        if found is None or found.attempt != attempt:
            raise Conflict(
                f"rendition {profile} of {record.rendition_of} is gone or past"
                f" attempt {attempt}"
            )
        self._check_new(record)
        outputs, replaced = place_output(found.outputs, index, record.id)
        if replaced is not None:
            self.files.pop(replaced, None)
        self.files[record.id] = record
        self.renditions[key] = attrs.evolve(found, outputs=outputs)
        self._append(events)
        return replaced

    async def get_file(self, file_id: str) -> FileRecord | None:
        return self.files.get(file_id)

    async def list_files(
        self,
        owner_id: int | None,
        offset: int,
        limit: int,
        search: str = "",
        order: str = "-created",
    ) -> Page:
        if order not in FILE_ORDERS:
            raise ValueError(f"order is one of {', '.join(FILE_ORDERS)}")
        wanted = ascii_lower(search)
        mine = [
            f
            for f in self.files.values()
            if owner_id in (None, f.owner_id)
            and f.rendition_of is None
            and wanted in ascii_lower(f.filename)
        ]
        keys: dict[str, Callable[[FileRecord], Any]] = {
            "created": lambda f: f.created_at,
            "size": lambda f: f.size,
            "name": lambda f: (ascii_lower(f.filename), f.filename.encode()),
        }
        # Ties by id, whichever way: a stable sort keeps that order.
        mine.sort(key=lambda f: f.id.encode())
        mine.sort(key=keys[order.lstrip("-")], reverse=order.startswith("-"))
        return Page(len(mine), mine[offset : offset + limit])

    async def versions_of(self, file_id: str) -> list[FileRecord]:
        found = [f for f in self.files.values() if f.parent == file_id]
        return sorted(found, key=lambda f: (f.created_at, f.id))

    async def add_upload(self, record: UploadRecord) -> None:
        if record.id in self.uploads:
            raise Conflict(f"upload {record.id} exists")
        self.uploads[record.id] = record

    async def get_upload(self, upload_id: str) -> UploadRecord | None:
        return self.uploads.get(upload_id)

    async def save_upload(self, record: UploadRecord) -> None:
        if record.id in self.uploads:
            self.uploads[record.id] = record

    async def delete_upload(self, upload_id: str) -> bool:
        self._forget_upload(upload_id)
        return self.uploads.pop(upload_id, None) is not None

    async def touch_upload(self, upload_id: str, expires_at: float) -> bool:
        found = self.uploads.get(upload_id)
        if found is None or found.state != "open":
            return False
        self.uploads[upload_id] = attrs.evolve(found, expires_at=expires_at)
        return True

    async def uploads_of(self, owner_id: int) -> list[UploadRecord]:
        found = [
            u
            for u in self.uploads.values()
            if u.owner_id == owner_id
            and (
                u.state == "open"
                or (u.state, u.concat, u.file_id) == ("complete", "partial", None)
            )
        ]
        return sorted(found, key=lambda u: (u.created_at, u.id.encode()))

    async def expired_uploads(
        self, now: float, holder: str | None = None
    ) -> list[UploadRecord]:
        return [
            u
            for u in self.uploads.values()
            if u.state == "open"
            and u.expires_at is not None
            and u.expires_at <= now
            and (holder is None or u.holder in (holder, ""))
        ]

    async def register_instance(self, record: InstanceRecord) -> None:
        known = self.instances.get(record.name)
        if known is not None and known.retired_at is not None:
            raise Conflict(f"instance {record.name!r} was retired")
        self.instances[record.name] = record

    async def get_instance(self, name: str) -> InstanceRecord | None:
        return self.instances.get(name)

    async def list_instances(self) -> list[InstanceRecord]:
        return [self.instances[name] for name in sorted(self.instances)]

    async def retire_instance(self, name: str, now: float) -> int:
        if name not in self.instances:
            return 0
        self.instances[name] = attrs.evolve(self.instances[name], retired_at=now)
        held = [
            u
            for u in self.uploads.values()
            if u.holder == name
            and (u.state == "open" or (u.state, u.concat) == ("complete", "partial"))
        ]
        for upload in held:
            self.uploads[upload.id] = attrs.evolve(upload, state="cancelled")
        return len(held)

    async def add_node(self, record: NodeRecord) -> None:
        if record.id in self.nodes:
            raise Conflict(f"node {record.id!r} exists")
        self.nodes[record.id] = record

    async def save_node(self, record: NodeRecord) -> None:
        if record.id in self.nodes:
            self.nodes[record.id] = record

    async def delete_node(self, node_id: str) -> bool:
        for key in [k for k in self.replicas if k[1] == node_id]:
            del self.replicas[key]
        return self.nodes.pop(node_id, None) is not None

    async def list_nodes(self) -> list[NodeRecord]:
        return sorted(self.nodes.values(), key=lambda n: n.id)

    async def add_replica(self, replica: Replica, events: Sequence[Event] = ()) -> None:
        if replica.file_id in self.files:
            self.replicas[(replica.file_id, replica.node_id)] = replica
            self._append(events)

    async def remove_replica(self, file_id: str, node_id: str) -> bool:
        return self.replicas.pop((file_id, node_id), None) is not None

    async def replicas_of(self, file_id: str) -> list[Replica]:
        found = [r for (f, _), r in self.replicas.items() if f == file_id]
        return sorted(found, key=lambda r: r.node_id)

    async def replica_map(
        self, after_id: str, limit: int
    ) -> list[tuple[str, list[str]]]:
        ids = sorted(f for f in self.files if f > after_id)[:limit]
        return [(f, sorted(n for (g, n) in self.replicas if g == f)) for f in ids]

    async def add_webhook(self, webhook: Webhook) -> None:
        self.webhooks[webhook.id] = webhook

    async def webhooks_of(self, owner_id: int) -> list[Webhook]:
        found = [w for w in self.webhooks.values() if w.owner_id == owner_id]
        return sorted(found, key=lambda w: (w.created_at, w.id))

    async def delete_webhook(self, webhook_id: str) -> bool:
        for key in [
            k for k, d in self.deliveries.items() if d.webhook_id == webhook_id
        ]:
            del self.deliveries[key]
        return self.webhooks.pop(webhook_id, None) is not None

    async def save_delivery(self, delivery: Delivery) -> None:
        self.deliveries[delivery.id] = delivery

    async def get_delivery(self, delivery_id: str) -> Delivery | None:
        return self.deliveries.get(delivery_id)

    async def deliveries_of(self, webhook_id: str, limit: int) -> list[Delivery]:
        found = [d for d in self.deliveries.values() if d.webhook_id == webhook_id]
        return sorted(found, key=lambda d: (-d.updated_at, d.id))[:limit]

    async def replica_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for _, node_id in self.replicas:
            counts[node_id] = counts.get(node_id, 0) + 1
        return counts

    def _append(self, events: Sequence[Event]) -> None:
        for event in events:
            self._next_event += 1
            self.events.append(attrs.evolve(event, id=self._next_event))

    async def add_events(self, events: Sequence[Event]) -> None:
        self._append(events)

    async def pending_events(self, limit: int) -> list[Event]:
        return [e for e in self.events if e.id not in self.sent][:limit]

    async def mark_sent(self, event_ids: Sequence[int], now: float) -> None:
        self.sent.update(dict.fromkeys(event_ids, now))

    async def outbox_depth(self) -> int:
        return len([e for e in self.events if e.id not in self.sent])

    async def events_after(
        self, after: int, owner_id: int | None, limit: int
    ) -> list[Event]:
        return [
            e
            for e in self.events
            if e.id in self.sent
            and e.id > after
            and (owner_id is None or e.owner_id == owner_id)
        ][:limit]

    async def prune_events(self, sent_before: float) -> int:
        gone = {i for i, at in self.sent.items() if at < sent_before}
        self.events = [e for e in self.events if e.id not in gone]
        for event_id in gone:
            del self.sent[event_id]
        return len(gone)

    async def add_push_subscription(self, subscription: PushSubscription) -> None:
        for known in list(self.push_subscriptions.values()):
            if known.endpoint == subscription.endpoint:
                del self.push_subscriptions[known.id]
        self.push_subscriptions[subscription.id] = subscription

    async def push_subscriptions_of(self, owner_id: int) -> list[PushSubscription]:
        found = [s for s in self.push_subscriptions.values() if s.owner_id == owner_id]
        return sorted(found, key=lambda s: (s.created_at, s.id))

    async def delete_push_subscription(self, subscription_id: str) -> bool:
        return self.push_subscriptions.pop(subscription_id, None) is not None

    async def outbox_oldest(self) -> float | None:
        pending = (e for e in self.events if e.id not in self.sent)
        return next((e.created_at for e in pending), None)

    async def add_share(self, share: Share) -> None:
        if share.file_id not in self.files or share.id in self.shares:
            raise Conflict(f"share {share.id}: file {share.file_id} is unknown")
        self.shares[share.id] = share

    async def get_share(self, share_id: str) -> Share | None:
        return self.shares.get(share_id)

    async def shares_of(self, file_id: str) -> list[Share]:
        found = [s for s in self.shares.values() if s.file_id == file_id]
        return sorted(found, key=lambda s: (s.created_at, s.id))

    async def delete_share(self, share_id: str, events: Sequence[Event] = ()) -> bool:
        if self.shares.pop(share_id, None) is None:
            return False
        self._append(events)
        return True

    async def delete_file(self, file_id: str, events: Sequence[Event] = ()) -> bool:
        if self.files.pop(file_id, None) is None:
            return False
        self._append(events)
        self._forget_file(file_id)
        for share in await self.shares_of(file_id):
            del self.shares[share.id]
        for key in [k for k in self.replicas if k[0] == file_id]:
            del self.replicas[key]
        for child in await self.versions_of(file_id):
            self.files[child.id] = attrs.evolve(child, parent=None)
        for key in [k for k in self.renditions if k[0] == file_id]:
            del self.renditions[key]
        for output in [f for f in self.files.values() if f.rendition_of == file_id]:
            await self.delete_file(output.id)
        return True
