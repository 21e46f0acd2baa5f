"""``/instances/``: what one uploadd instance asks of another.

The bytes of a complete partial upload (tus concatenation) held by this
instance, for the instance joining a final upload from parts the load
balancer spread over several (``GET``), and their removal once joined
(``DELETE``). Requests carry a signature made with the cluster secret's
URL key, as node download URLs do; clients have no use for these routes.
"""

from __future__ import annotations

from typing import Any

import attrs
from klein import Klein
from twisted.internet.interfaces import IReactorTime
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource

from noded.download import BlobResource
from noded.signing import BadSignature, verify
from noded.threads import Runner
from uploadd import errors
from uploadd.api import problems
from uploadd.api.forward import part_grant
from uploadd.api.http import empty
from uploadd.store.blobs import BlobStore
from uploadd.uploads import rules
from uploadd.uploads.resumable import Resumable


@attrs.define(slots=False)
class InstancesAPI:
    app = Klein()
    problems.install(app)

    _uploads: Resumable
    _blobs: BlobStore
    _run: Runner
    _key: bytes
    _clock: IReactorTime

    @app.route("/instances/uploads/<upload_id>/data", methods=["GET", "DELETE"])
    async def part_data(self, request: IRequest, upload_id: str) -> Any:
        query = {
            key.decode("latin-1"): values[0].decode("latin-1")
            for key, values in (request.args or {}).items()
            if values
        }
        try:
            verify(self._key, part_grant(upload_id), query, self._clock.seconds())
        except BadSignature as error:
            raise errors.Forbidden(str(error)) from None
        record = await self._uploads.current(upload_id)
        if record is None or record.concat != rules.PARTIAL:
            raise errors.NotFound(f"no such partial upload: {upload_id}")
        if not self._uploads.holds(record):
            raise errors.NotFound(f"upload {upload_id}'s bytes are not here")
        path = self._blobs.upload_path(upload_id)
        if request.method == b"DELETE":
            await self._run(self._blobs.remove_upload, upload_id)
            return empty(request, 204)
        resource: IResource = BlobResource(path, upload_id, "application/octet-stream")
        return resource
