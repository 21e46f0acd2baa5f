"""Where a client should fetch a file: the nearest node with a verified copy.

Only a node that serves now counts: UP, its last ping answered (a node is
avoided from its first failed ping, before it is DOWN) and not under audit.
Nearest means: a node in the zone the client's network maps to (``zones``),
then the lowest round-trip time, then the lowest load. The answer is a
signed URL valid for ``download_ttl``. Before any copy exists (or while
uploadd still has its own) uploadd serves the bytes itself; with copies only
on nodes that are all down, the answer is 503 with Retry-After.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import quote

import attrs
from twisted.internet.interfaces import IReactorTime

from noded.signing import BadSignature, signed_query, verify
from noded.threads import Runner
from uploadd.api.problems import Problem
from uploadd.cluster.registry import Node, Registry
from uploadd.store.interface import FileRecord, IMetadataStore, Replica


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
        serving = [node for node in self.reachable(replicas) if node.http_url]
        if not serving:
            if not replicas or await self._run(local.exists):
                return None
            raise Problem(
                503,
                "every node holding this file is down; try again shortly",
                headers={"Retry-After": "10"},
            )
        zone = self.zone_of(client)
        best = min(
            serving,
            key=lambda n: (
                0 if zone and n.zone == zone else 1,
                n.rtt if n.rtt is not None else float("inf"),
                n.load,
            ),
        )
        return f"{best.http_url}/files/{quote(record.id)}?{self.sign(record)}"

    def reachable(self, replicas: Iterable[Replica]) -> list[Node]:
        """The nodes holding ``replicas`` that serve downloads now: UP, their
        last ping answered, not under audit."""
        nodes = self._registry.nodes
        return [
            nodes[r.node_id]
            for r in replicas
            if r.node_id in nodes and nodes[r.node_id].serving
        ]

    def sign(self, record: FileRecord) -> str:
        """A query string that lets its holder fetch ``record`` for ``ttl``."""
        expires = int(self._clock.seconds() + self.ttl)
        return signed_query(
            self._key, record.id, expires, record.filename, record.content_type
        )

    def check(self, record: FileRecord, query: dict[str, str]) -> None:
        """403 unless ``query`` is a valid, unexpired signature for ``record``."""
        try:
            verify(self._key, record.id, query, self._clock.seconds())
        except BadSignature as error:
            raise Problem(403, str(error)) from None
