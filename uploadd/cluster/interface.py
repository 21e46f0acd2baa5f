"""The node seam: what uploadd asks of one storage node, whatever kind it is.

The registry holds one :class:`INodeClient` per node, made from the node's
record by a :data:`NodeClientFactory`; the pinger, replicator, repairer and
locator reach a node only through it. Implementations:

- ``uploadd/cluster/amp_rsync.py``: a ``twistd noded`` node, over AMP
  (ping, stat, delete, relay) with copies pushed by rsync;
- ``uploadd/cluster/memory.py``: the in-memory twin the unit tests use.

A new kind of node (an S3 bucket) is a third module implementing this
interface and a factory choosing it by the node's record.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import attrs
from zope.interface import Interface

from uploadd.store.interface import FileRecord, NodeRecord


@attrs.frozen
class NodeStatus:
    """A node's answer to a ping: its state, space and whereabouts.

    ``state`` is what the node says of itself: ``up``, ``read-only`` (below
    its reserve, or configured so) or ``draining``; ``reserved`` is the room
    it keeps free; ``load`` is its load average.
    """

    node_id: str
    state: str
    free: int
    total: int
    reserved: int
    load: float
    zone: str = ""
    version: str = ""


@attrs.frozen
class Held:
    """A copy a node holds: its size and sha256, how a copy is verified."""

    size: int
    sha256: str


@attrs.frozen
class CopyOutcome:
    """How putting a copy on a node ended: ``reason`` says why in a few words
    (for the log and the admin console's failures), ``detail`` adds what the
    transfer said (stderr)."""

    ok: bool
    reason: str = ""
    detail: str = ""


class INodeClient(Interface):
    """One storage node as uploadd sees it.

    Every call may fail with an exception when the node cannot be reached;
    a call that never returns is cancelled by the caller's timeout (cancelling
    the awaiting Deferred). A copy that merely fails is not an exception: it
    is a :class:`CopyOutcome` that is not ``ok``.
    """

    def ping() -> Awaitable[NodeStatus]:
        """The node's state, space and load now."""

    def stat(file_id: str) -> Awaitable[Held]:
        """Size and sha256 of the node's copy of ``file_id``;
        :class:`uploadd.errors.NotFound` when it holds none."""

    def put(file_id: str, source: Path) -> Awaitable[CopyOutcome]:
        """Copy the local file ``source`` onto the node as ``file_id``. A
        half-made copy never appears under that name."""

    def copy_from(file_id: str, holder: INodeClient) -> Awaitable[CopyOutcome]:
        """Have ``holder`` (another node) copy its ``file_id`` onto this node
        (repair, when uploadd has no copy of its own). Raises when
        ``holder`` cannot be asked, holds no copy
        (:class:`uploadd.errors.NotFound`), or is a kind of node this one
        cannot copy from (:class:`uploadd.errors.Unprocessable`)."""

    def delete(file_id: str) -> Awaitable[bool]:
        """Remove the node's copy of ``file_id``; False if it held none."""

    def download_url(record: FileRecord, expires: int) -> str | None:
        """A URL from which anyone may fetch ``record``'s bytes from this node
        until ``expires`` (a POSIX time), signed so it cannot be altered, or
        None while the node has not said where it serves downloads."""

    def disconnect() -> None:
        """Let go of any connection; the next call makes a new one."""


#: Makes the client for a node from its record (the registry's one way to
#: reach a node of any kind).
NodeClientFactory = Callable[[NodeRecord], INodeClient]
