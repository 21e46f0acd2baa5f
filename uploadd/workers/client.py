"""A transcode worker's side of the renditions API, over HTTP with treq.

The worker needs nothing but this API and a token of scope ``worker``, so it
runs beside uploadd or on any other machine. Sources arrive through their
signed URLs (redirected to the node nearest), streamed to disk through the
same sink uploads use, hashed and checked against the source's sha256.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import attrs
from treq.client import HTTPClient
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone

from noded.threads import Runner
from uploadd.ingest.blob import BlobFile, Digest
from uploadd.ingest.sink import FlowLimits, UploadSink


class JobOver(Exception):
    """The job is not this worker's to do (done, failed, superseded or gone)."""


class ApiError(Exception):
    """uploadd refused or failed a call; the job should be tried again."""


class NotYet(ApiError):
    """uploadd cannot do it now (503), and says when to ask again."""

    def __init__(self, detail: str, retry_after: float) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


@attrs.frozen
class Job:
    """One attempt at one rendition, as ``start`` answered it."""

    file_id: str
    profile: str
    attempt: int
    filename: str
    content_type: str
    size: int
    sha256: str
    source_url: str


_DONE = Failure(ResponseDone())


class _Download(Protocol):
    """A response body into a file, paused while the disk catches up."""

    def __init__(self, target: BlobFile, run: Runner) -> None:
        self._target = target
        self._run = run
        self.done: Deferred[Digest] = Deferred()
        self._sink: UploadSink | None = None

    def connectionMade(self) -> None:
        # The body's transport is a producer: the sink pauses and resumes it.
        flow: Any = self.transport
        self._sink = UploadSink(
            self._target, self._run, flow, FlowLimits(8 << 20, 2 << 20, None)
        )

    def dataReceived(self, data: bytes) -> None:
        assert self._sink is not None
        self._sink.write(data)

    def connectionLost(self, reason: Failure = _DONE) -> None:
        assert self._sink is not None
        if reason.check(ResponseDone):
            self._sink.complete().chainDeferred(self.done)
        else:
            self._sink.abort()
            self.done.errback(reason)


@attrs.define
class RenditionsClient:
    _http: HTTPClient
    _run: Runner
    _base: Callable[[], str]
    _token: Callable[[], str]

    def _url(self, file_id: str, profile: str, *rest: str) -> str:
        path = "/".join(
            quote(part, safe="") for part in (file_id, "renditions", profile, *rest)
        )
        return f"{self._base().rstrip('/')}/files/{path}"

    def _headers(self) -> dict[bytes | str, bytes | str]:
        return {"Authorization": f"Bearer {self._token()}"}

    async def _call(
        self, method: str, url: str, document: dict[str, Any] | None = None
    ) -> Any:
        headers = self._headers()
        body = None
        if document is not None:
            headers["Content-Type"] = "application/json"
            body = json.dumps(document).encode("utf-8")
        response = await self._http.request(method, url, headers=headers, data=body)
        return await _answer(response)

    async def start(self, file_id: str, profile: str) -> Job:
        found = await self._call("POST", self._url(file_id, profile, "start"))
        return Job(
            found["file_id"],
            profile,
            found["attempt"],
            found["filename"],
            found["content_type"],
            found["size"],
            found["sha256"],
            found["source_url"],
        )

    async def report(self, job: Job, percent: float) -> None:
        await self._state(job, "running", percent=percent)

    async def fail(self, job: Job, error: str) -> None:
        await self._state(job, "failed", error=error)

    async def finish(self, job: Job, count: int) -> None:
        await self._state(job, "ready", outputs=count)

    async def _state(self, job: Job, state: str, **fields: Any) -> None:
        document = {"attempt": job.attempt, "state": state, **fields}
        await self._call("PATCH", self._url(job.file_id, job.profile), document)

    async def fetch(self, job: Job, path: Path) -> None:
        """The source's bytes into ``path``; ApiError unless they are whole."""
        response = await self._http.get(job.source_url)
        if response.code != 200:
            await _answer(response)
        target = await self._run(BlobFile, path, False)
        download = _Download(target, self._run)
        response.deliverBody(download)
        digest = await download.done
        if digest.sha256 != job.sha256 or digest.size != job.size:
            raise ApiError(
                f"the source arrived as {digest.size} bytes with sha256"
                f" {digest.sha256}, not {job.size} bytes with {job.sha256}"
            )

    async def send(
        self, job: Job, index: int, path: Path, filename: str, content_type: str
    ) -> None:
        """Output ``index`` of the job, from ``path``."""
        query = urlencode({"attempt": job.attempt, "filename": filename})
        url = f"{self._url(job.file_id, job.profile, str(index))}?{query}"
        headers = {**self._headers(), "Content-Type": content_type}
        with path.open("rb") as body:
            response = await self._http.put(url, data=body, headers=headers)
            await _answer(response)


async def _answer(response: Any) -> Any:
    text = await response.content()
    try:
        document = json.loads(text) if text else {}
    except ValueError:
        document = {"detail": text[:200].decode("utf-8", "replace")}
    if response.code in (404, 409, 410):
        raise JobOver(document.get("detail", f"HTTP {response.code}"))
    if response.code == 503:
        raise NotYet(f"HTTP 503: {document.get('detail', '')}", _retry_after(response))
    if response.code >= 400:
        raise ApiError(f"HTTP {response.code}: {document.get('detail', '')}")
    return document


def _retry_after(response: Any) -> float:
    """The response's Retry-After in seconds (a date counts as 5)."""
    values = response.headers.getRawHeaders(b"retry-after") or [b"5"]
    try:
        return max(1.0, float(values[0]))
    except ValueError:
        return 5.0
