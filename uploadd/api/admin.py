"""``/admin``: the storage nodes, their health, and changing them; the
state of the event pipeline and recent failures of background work."""

from __future__ import annotations

import re
from typing import Any

import attrs
from klein import Klein
from twisted.web.iweb import IRequest

from noded.settings import parse_host, parse_port
from uploadd.api import problems
from uploadd.api.access import principal_of
from uploadd.api.http import empty, json_body, read_fields
from uploadd.auth.tokens import Action, TokenIssuer
from uploadd.cluster.registry import Registry
from uploadd.cluster.repair import Repairer
from uploadd.cluster.replicator import Replicator
from uploadd.events.bus import IEventBus
from uploadd.failures import FailureLog
from uploadd.store.interface import IMetadataStore

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@attrs.define(slots=False)
class AdminAPI:
    app = Klein()
    problems.install(app)

    _registry: Registry
    _replicator: Replicator
    _repairer: Repairer
    _store: IMetadataStore
    _tokens: TokenIssuer
    _bus: IEventBus
    _failures: FailureLog

    @app.route("/admin/status", methods=["GET"])
    async def status(self, request: IRequest) -> bytes:
        principal_of(self._tokens, request, Action.ADMIN)
        bus = self._bus
        return json_body(
            request,
            200,
            {
                "outbox": await self._store.outbox_depth(),
                "bus": bus.kind,
                "published": bus.published,
                # The broker keeps its own queues (None); in process they are here.
                "queues": bus.depth(),
                "recent_failures": self._failures.recent(20),
            },
        )

    @app.route("/admin/nodes", methods=["GET"])
    async def nodes(self, request: IRequest) -> bytes:
        principal_of(self._tokens, request, Action.ADMIN)
        counts = await self._store.replica_counts()
        return json_body(
            request,
            200,
            {
                "replicas": self._replicator.settings.replicas,
                # Copies this instance is making (each copies what it received).
                "replicating": len(self._replicator.busy),
                "last_repair": self._repairer.last_pass,
                "results": [
                    node.document(counts.get(node.id, 0))
                    for node in sorted(
                        self._registry.nodes.values(), key=lambda n: n.id
                    )
                ],
                "recent_failures": [
                    f for f in self._failures.recent(20) if f["kind"] == "replication"
                ],
            },
        )

    @app.route("/admin/nodes", methods=["POST"])
    async def add(self, request: IRequest) -> bytes:
        principal_of(self._tokens, request, Action.ADMIN)
        fields = read_fields(request)
        node_id = str(fields.get("id") or "")
        if not _ID.match(node_id):
            raise problems.bad_request("id: letters, digits, dot, dash or underscore")
        try:
            host = parse_host(str(fields.get("host") or ""))
            port = parse_port(str(fields.get("port") or ""))
        except ValueError:
            raise problems.bad_request(
                "host is an IP address, port 1 to 65535"
            ) from None
        node = await self._registry.add(node_id, host, port)
        return json_body(request, 201, node.document(0))

    @app.route("/admin/nodes/<node_id>", methods=["PATCH"])
    async def change(self, request: IRequest, node_id: str) -> bytes:
        principal_of(self._tokens, request, Action.ADMIN)
        mode = str(read_fields(request).get("mode") or "")
        if mode not in ("active", "draining"):
            raise problems.bad_request("mode is 'active' or 'draining'")
        node = await self._registry.set_mode(node_id, mode)
        if mode == "draining":
            self._repairer.run_pass()
        counts: dict[str, Any] = await self._store.replica_counts()
        return json_body(request, 200, node.document(counts.get(node_id, 0)))

    @app.route("/admin/nodes/<node_id>", methods=["DELETE"])
    async def remove(self, request: IRequest, node_id: str) -> bytes:
        principal_of(self._tokens, request, Action.ADMIN)
        await self._registry.remove(node_id)
        return empty(request, 204)
