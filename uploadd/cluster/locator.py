"""Where a client should fetch a file: the nearest node with a verified copy.

Only a node that serves now counts: UP, its last ping answered (a node is
avoided from its first failed ping, before it is DOWN) and not under audit.
Nearest means: a node in the zone the client's network maps to (``zones``),
then the lowest round-trip time, then the lowest load. The answer is a
URL the node's client signs, valid for ``download_ttl``. Before any copy
exists (or while uploadd still has its own) uploadd serves the bytes itself;
with copies only on nodes that are all down, :class:`uploadd.errors.Unavailable`
says when to retry. So it does for a file another uploadd instance received
and is still copying to the nodes: its bytes are on that instance's disk
only, and on a node shortly. uploadd's own signed URLs (for workers fetching a source)
are made and checked here too, with the same key.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from pathlib import Path

import attrs
from twisted.internet.interfaces import IReactorTime

from noded.signing import BadSignature, signed_query, verify
from noded.threads import Runner
from uploadd import errors
from uploadd.cluster.registry import Node, Registry
from uploadd.store.interface import FileRecord, IMetadataStore, Replica

#: Seconds to wait for a file another instance is copying to the nodes.
ON_ITS_WAY = 2


@attrs.define
class Locator:
    _registry: Registry
    _store: IMetadataStore
    _clock: IReactorTime
    _key: bytes
    _run: Runner
    ttl: float
    zones: tuple[tuple[str, str], ...] = ()

    def zone_of(self, client: str) -> str | None:
        try:
            address = ipaddress.ip_address(client)
        except ValueError:
            return None
        for network, zone in self.zones:
            if address in ipaddress.ip_network(network, strict=False):
                return zone
        return None

    async def redirect(
        self, record: FileRecord, client: str, local: Path
    ) -> str | None:
        """A signed node URL for ``record``, or None to serve ``local``."""
        replicas = await self._store.replicas_of(record.id)
        expires = self._expires()
        offers = [
            (node, url)
            for node in self.reachable(replicas)
            if (url := node.client.download_url(record, expires)) is not None
        ]
        if not offers:
            if await self._run(local.exists):
                return None
            if replicas:
                raise errors.Unavailable(
                    "every node holding this file is down; try again shortly",
                    retry_after=10,
                )
            if self._registry.nodes:
                raise errors.Unavailable(
                    "this file is on its way to the storage nodes from the"
                    " uploadd instance that received it; try again shortly",
                    retry_after=ON_ITS_WAY,
                )
            return None  # no cluster, no bytes: the download says so
        zone = self.zone_of(client)

        def nearness(offer: tuple[Node, str]) -> tuple[int, float, float]:
            node = offer[0]
            rtt = node.rtt if node.rtt is not None else float("inf")
            return (0 if zone and node.zone == zone else 1, rtt, node.load)

        return min(offers, key=nearness)[1]

    def reachable(self, replicas: Iterable[Replica]) -> list[Node]:
        """The nodes holding ``replicas`` that serve downloads now: UP, their
        last ping answered, not under audit."""
        nodes = self._registry.nodes
        return [
            nodes[r.node_id]
            for r in replicas
            if r.node_id in nodes and nodes[r.node_id].serving
        ]

    def _expires(self) -> int:
        return int(self._clock.seconds() + self.ttl)

    def sign(self, record: FileRecord) -> str:
        """A query string that lets its holder fetch ``record`` from uploadd
        for ``ttl``."""
        expires = self._expires()
        return signed_query(
            self._key, record.id, expires, record.filename, record.content_type
        )

    def check(self, record: FileRecord, query: dict[str, str]) -> None:
        """Forbidden unless ``query`` is a valid, unexpired signature for
        ``record``."""
        try:
            verify(self._key, record.id, query, self._clock.seconds())
        except BadSignature as error:
            raise errors.Forbidden(str(error)) from None
