"""The metadata store seam: records and the interface both stores provide."""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import Any

import attrs

from uploadd.store.buckets import IBucketStore


@attrs.frozen
class User:
    id: int
    username: str
    password_hash: str
    scopes: frozenset[str]
    created_at: float
    email: str | None = None


@attrs.frozen
class FileRecord:
    """A stored file: its bytes live in the blob store under ``id``."""

    id: str
    owner_id: int
    filename: str
    size: int
    sha256: str
    md5: str
    content_type: str
    created_at: float
    parent: str | None = None
    rendition_of: str | None = None


@attrs.frozen
class Rendition:
    """One profile's output for a source file: a job and what it made.

    ``state`` goes pending -> running -> ready or failed; ``attempt`` counts
    the starts, and only the newest attempt may add outputs or finish, so a
    redelivered job replaces, never duplicates. ``outputs`` are file ids in
    order (slide 1, 2, ...).
    """

    source_id: str
    profile: str
    state: str
    created_at: float
    updated_at: float
    percent: float = 0.0
    error: str | None = None
    attempt: int = 0
    outputs: tuple[str, ...] = ()
    started_at: float | None = None


#: A gap in a rendition's outputs (an attempt that has not sent that one yet).
MISSING = "-"


def place_output(
    outputs: Sequence[str], index: int, file_id: str
) -> tuple[tuple[str, ...], str | None]:
    """``outputs`` with ``file_id`` at ``index`` (gaps before it marked
    MISSING), and the file id it replaced there, if any."""
    placed = [*outputs, *[MISSING] * (index + 1 - len(outputs))]
    replaced, placed[index] = placed[index], file_id
    return tuple(placed), None if replaced == MISSING else replaced


@attrs.frozen
class UploadRecord:
    """A resumable upload in progress (tus or Content-Range).

    ``received`` is the durable, contiguous byte count from the start (tus
    offset); ``ranges`` are the covered ``[start, end)`` spans for uploads
    whose chunks may arrive out of order; ``base`` is 1 for clients that
    number Content-Range bytes from 1.
    """

    id: str
    owner_id: int
    protocol: str
    length: int | None
    created_at: float
    expires_at: float | None
    state: str = "open"
    received: int = 0
    ranges: tuple[tuple[int, int], ...] = ()
    metadata: dict[str, str] = attrs.field(factory=dict, hash=False)
    concat: str | None = None
    parts: tuple[str, ...] = ()
    file_id: str | None = None
    base: int = 0
    #: The instance whose disk holds the bytes ('': the only instance).
    holder: str = ""


@attrs.frozen
class InstanceRecord:
    """An uploadd instance sharing the store: its name, where the other
    instances reach it, and when it last started (or was retired)."""

    name: str
    url: str
    started_at: float
    retired_at: float | None = None


@attrs.frozen
class NodeRecord:
    """A storage node uploadd knows: where its AMP port is and what the
    operator wants of it (``active``, or ``draining``: keep serving, take
    nothing new, move everything away)."""

    id: str
    host: str
    port: int
    added_at: float
    mode: str = "active"


@attrs.frozen
class Replica:
    """A verified copy of a file on a node."""

    file_id: str
    node_id: str
    size: int
    verified_at: float


@attrs.frozen
class Event:
    """Something that happened, for the event bus: a routing ``topic`` such
    as ``file.stored``, the user it concerns, and a JSON-able payload. ``id``
    orders events and makes redelivery recognisable."""

    topic: str
    payload: dict[str, Any] = attrs.field(hash=False)
    owner_id: int | None = None
    created_at: float = 0.0
    id: int = 0


@attrs.frozen
class Webhook:
    """A user's HTTP endpoint for events matching ``events`` (topic patterns)."""

    id: str
    owner_id: int
    url: str
    events: tuple[str, ...]
    secret: str
    created_at: float


@attrs.frozen
class Delivery:
    """One event's delivery to one webhook; ``id`` stays the same on retries."""

    id: str
    webhook_id: str
    event_id: int
    topic: str
    attempts: int
    status: int | None
    error: str | None
    delivered: bool
    updated_at: float


@attrs.frozen
class PushSubscription:
    """A browser's Web Push subscription (the W3C Push API's
    PushSubscription) for a user: the push service URL to POST to, and the
    browser's keys that encrypt what is sent (RFC 8291): ``p256dh``, its
    P-256 public key, and ``auth``, a 16-byte secret, both base64url."""

    id: str
    owner_id: int
    endpoint: str
    p256dh: str
    auth: str
    created_at: float


@attrs.frozen
class Share:
    """A share link of a file: whoever holds its token may follow the file's
    slides. It lasts until its owner deletes it (or the file goes)."""

    id: str
    file_id: str
    created_at: float


#: How a listing of files may be ordered: by date (newest first with the
#: minus), by name (A-Z in either case, then exactly) or by size.
FILE_ORDERS = ("-created", "created", "name", "-name", "size", "-size")


def ascii_lower(text: str) -> str:
    """``text`` with A-Z lowered and nothing else, as every store folds
    names to search and sort them (SQLite's ``lower()`` does no more), so
    that they agree."""
    return text.translate(_ASCII_LOWER)


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


@attrs.frozen
class Page:
    count: int
    results: list[FileRecord]


class Conflict(Exception):
    """The record exists already; str() names it."""


class IMetadataStore(IBucketStore):
    """Users and file records, uploads, nodes, events and the rest (buckets
    and what goes with them: :class:`~uploadd.store.buckets.IBucketStore`);
    every method returns an awaitable."""

    def migrate() -> Awaitable[int]:
        """Bring the schema to the newest version; return that version."""

    def close() -> None:
        """Release the connections; nothing is asked of the store after it."""

    def leads(duty: str) -> Awaitable[bool]:
        """Whether this process runs ``duty`` (the outbox relay, the expiry
        sweep, repair) now. A store only one process uses always says yes;
        a store several uploadd instances share names one leader per duty,
        and a dead leader's duty passes to another instance at its next ask.
        """

    def add_user(
        username: str, password_hash: str, scopes: frozenset[str], now: float
    ) -> Awaitable[User]:
        """Create a user; Conflict if the name is taken."""

    def update_user(
        username: str,
        password_hash: str | None = None,
        scopes: frozenset[str] | None = None,
    ) -> Awaitable[User | None]:
        """Change a user's password and/or scopes; None if there is no such user."""

    def set_email(username: str, email: str | None) -> Awaitable[bool]:
        """Set (or clear) where a user's notifications go; False if no user."""

    def get_user(username: str) -> Awaitable[User | None]:
        """The user called ``username``."""

    def get_user_by_id(user_id: int) -> Awaitable[User | None]:
        """The user with ``user_id``."""

    def list_users() -> Awaitable[list[User]]:
        """Every user, by name."""

    def delete_user(username: str) -> Awaitable[bool]:
        """Remove a user; False if there was none."""

    def add_file(
        record: FileRecord,
        events: Sequence[Event] = (),
        renditions: Sequence[Rendition] = (),
    ) -> Awaitable[None]:
        """Record a file whose bytes are already durable in the blob store,
        with ``events`` (the outbox) and its pending ``renditions`` in the
        same transaction."""

    def get_file(file_id: str) -> Awaitable[FileRecord | None]:
        """The file with ``file_id``."""

    def list_files(
        owner_id: int | None,
        offset: int,
        limit: int,
        search: str = "",
        order: str = "-created",
    ) -> Awaitable[Page]:
        """Files of one owner (None: everyone's) whose name contains
        ``search`` (letters A-Z in either case; ``%`` and ``_`` are plain
        characters), in ``order`` (one of :data:`FILE_ORDERS`; ties by id);
        ``count`` is how many match. Renditions' outputs are listed with
        their source, not here."""

    def versions_of(file_id: str) -> Awaitable[list[FileRecord]]:
        """Files whose parent is ``file_id``, oldest first."""

    def renditions_of(source_id: str) -> Awaitable[list[Rendition]]:
        """A file's renditions, in the order they were asked for."""

    def get_rendition(source_id: str, profile: str) -> Awaitable[Rendition | None]:
        """One rendition of a file."""

    def save_rendition(
        rendition: Rendition,
        expect_attempt: int,
        events: Sequence[Event] = (),
        drop: Sequence[str] = (),
    ) -> Awaitable[None]:
        """Store a changed rendition if its stored attempt is still
        ``expect_attempt`` (else Conflict), forget the files ``drop`` and
        record ``events``, in one transaction."""

    def add_output(
        record: FileRecord,
        profile: str,
        index: int,
        attempt: int,
        events: Sequence[Event] = (),
    ) -> Awaitable[str | None]:
        """Record output ``index`` of ``record.rendition_of``'s ``profile``
        rendition for ``attempt`` (Conflict if another attempt is current or
        there is no such rendition); the id of the file it replaced, which is
        forgotten in the same transaction."""

    def add_upload(record: UploadRecord) -> Awaitable[None]:
        """Record a new resumable upload."""

    def get_upload(upload_id: str) -> Awaitable[UploadRecord | None]:
        """The upload with ``upload_id``."""

    def save_upload(record: UploadRecord) -> Awaitable[None]:
        """Store a changed upload (matched by id)."""

    def delete_upload(upload_id: str) -> Awaitable[bool]:
        """Forget an upload; False if there was none."""

    def touch_upload(upload_id: str, expires_at: float) -> Awaitable[bool]:
        """Move an open upload's expiry to ``expires_at`` and change nothing
        else (an instance that does not hold its bytes may keep it alive
        without overwriting what its holder records); False unless open."""

    def uploads_of(owner_id: int) -> Awaitable[list[UploadRecord]]:
        """A user's unfinished uploads, oldest first: open ones (expired or
        not: the sweep decides), and complete partial ones no final upload
        has joined yet (no ``file_id``). Whichever instance holds them."""

    def expired_uploads(
        now: float, holder: str | None = None
    ) -> Awaitable[list[UploadRecord]]:
        """Open uploads whose expiry is at or before ``now``: those ``holder``
        holds (or that name no holder), or all with None."""

    def register_instance(record: InstanceRecord) -> Awaitable[None]:
        """Record that the instance ``record.name`` runs at ``record.url``;
        Conflict if that name was retired."""

    def get_instance(name: str) -> Awaitable[InstanceRecord | None]:
        """The instance called ``name``."""

    def list_instances() -> Awaitable[list[InstanceRecord]]:
        """Every instance that ever registered, by name."""

    def retire_instance(name: str, now: float) -> Awaitable[int]:
        """Mark ``name`` retired and cancel the uploads whose bytes it holds
        (open ones, and complete partial ones); how many were cancelled. An
        unknown name changes nothing (0)."""

    def add_node(record: NodeRecord) -> Awaitable[None]:
        """Register a node; Conflict if the id is taken."""

    def save_node(record: NodeRecord) -> Awaitable[None]:
        """Store a changed node (matched by id)."""

    def delete_node(node_id: str) -> Awaitable[bool]:
        """Forget a node and its replica records; False if none."""

    def list_nodes() -> Awaitable[list[NodeRecord]]:
        """Every node, by id."""

    def add_replica(replica: Replica, events: Sequence[Event] = ()) -> Awaitable[None]:
        """Record (or refresh) a verified copy, with ``events``."""

    def remove_replica(file_id: str, node_id: str) -> Awaitable[bool]:
        """Forget a copy; False if there was none."""

    def replicas_of(file_id: str) -> Awaitable[list[Replica]]:
        """The verified copies of a file."""

    def replica_map(
        after_id: str, limit: int
    ) -> Awaitable[list[tuple[str, list[str]]]]:
        """(file id, ids of the nodes holding it) for up to ``limit`` files
        whose id sorts after ``after_id``: a page of what repair walks."""

    def replica_counts() -> Awaitable[dict[str, int]]:
        """How many verified copies each node holds."""

    def add_webhook(webhook: Webhook) -> Awaitable[None]:
        """Register a webhook."""

    def webhooks_of(owner_id: int) -> Awaitable[list[Webhook]]:
        """A user's webhooks, oldest first."""

    def delete_webhook(webhook_id: str) -> Awaitable[bool]:
        """Forget a webhook and its deliveries; False if none."""

    def save_delivery(delivery: Delivery) -> Awaitable[None]:
        """Record (or update) a delivery attempt."""

    def get_delivery(delivery_id: str) -> Awaitable[Delivery | None]:
        """A delivery by its id."""

    def deliveries_of(webhook_id: str, limit: int) -> Awaitable[list[Delivery]]:
        """A webhook's deliveries, newest first."""

    def add_push_subscription(subscription: PushSubscription) -> Awaitable[None]:
        """Record a browser's push subscription. One endpoint is one browser:
        a subscription recorded before for the same endpoint (whoever's) is
        replaced, so the browser follows the user who subscribed it last."""

    def push_subscriptions_of(owner_id: int) -> Awaitable[list[PushSubscription]]:
        """A user's push subscriptions, oldest first."""

    def delete_push_subscription(subscription_id: str) -> Awaitable[bool]:
        """Forget a push subscription; False if there was none."""

    def add_share(share: Share) -> Awaitable[None]:
        """Record a share link; Conflict if its file is unknown."""

    def get_share(share_id: str) -> Awaitable[Share | None]:
        """A share link by its id."""

    def shares_of(file_id: str) -> Awaitable[list[Share]]:
        """A file's share links, oldest first."""

    def delete_share(share_id: str, events: Sequence[Event] = ()) -> Awaitable[bool]:
        """Forget a share link and record ``events`` in the same
        transaction; False if none."""

    def delete_file(file_id: str, events: Sequence[Event] = ()) -> Awaitable[bool]:
        """Forget a file (its versions lose their parent, its share links
        go) and record ``events`` in the same transaction. False if none."""

    def add_events(events: Sequence[Event]) -> Awaitable[None]:
        """Events that accompany no other change (a presenter's slide)."""

    def pending_events(limit: int) -> Awaitable[list[Event]]:
        """Events not yet handed to the bus, oldest first."""

    def mark_sent(event_ids: Sequence[int], now: float) -> Awaitable[None]:
        """The bus has these events."""

    def outbox_depth() -> Awaitable[int]:
        """How many events wait for the bus."""

    def events_after(
        after: int, owner_id: int | None, limit: int
    ) -> Awaitable[list[Event]]:
        """Events the bus has, newer than event ``after``, oldest first: those
        of ``owner_id``, or everyone's with None."""

    def prune_events(sent_before: float) -> Awaitable[int]:
        """Forget events the bus had before ``sent_before``; how many."""

    def outbox_oldest() -> Awaitable[float | None]:
        """When the first event waiting for the bus (the next the relay
        sends) was recorded; None when no event waits."""
