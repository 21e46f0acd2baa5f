"""The S3 API in memory: its listener's refusals and answers (StubTreq on
the S3 Site, requests signed by boto3 and caught unsent), how every failure
becomes an S3 code, the request documents it reads, bucket CORS rules, and
an object whose bytes only a node holds streamed through."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import pytest_twisted
from treq.testing import RequestTraversalAgent, StubTreq
from twisted.internet.defer import Deferred
from twisted.web.iweb import IRequest
from twisted.web.resource import Resource
from twisted.web.test.requesthelper import DummyRequest

from tests.support import Harness, Reply, connection, harness, now, pumped
from tests.unit import s3_signing
from uploadd import errors
from uploadd.api.problems import Problem
from uploadd.api.s3.cors import BucketCors
from uploadd.api.s3.errors import S3Error
from uploadd.api.s3.faults import s3_problem
from uploadd.api.s3.serving import ObjectReader
from uploadd.api.s3.xml import parse_complete, parse_cors, parse_delete
from uploadd.buckets import ObjectInfo, Reason
from uploadd.store.interface import FileRecord

ENDPOINT = "http://uploadd"


@pytest.fixture
def s3(tmp_path: Path) -> Harness:
    """An in-memory uploadd with its S3 listener, the clock at now, and a
    StubTreq bound to the S3 Site."""
    made = harness(
        tmp_path,
        settings={
            ("s3", "enabled"): "true",
            ("http", "max_upload_size"): "1M",
        },
    )
    made.clock.advance(time.time())
    listener = made.parts.s3
    assert listener is not None
    made.client = StubTreq(listener.router)
    made.client._agent._serverFactory = listener.site
    return made


def boto(s3: Harness) -> Any:
    """A boto3 client signing with a new key of alice's."""
    s3.user("alice")
    user = now(s3.store.get_user("alice"))
    assert user is not None
    record, secret = now(s3.parts.access_keys.create(user))
    return s3_signing.client(ENDPOINT, record.key_id, secret)


async def send(s3: Harness, sent: s3_signing.Sent) -> Reply:
    headers = {
        name: values
        for name, values in sent.headers.getAllRawHeaders()
        if name.lower() != b"content-length"
    }
    return await s3.call(
        sent.method,
        sent.target.decode(),
        headers=headers,
        data=sent.body or None,
    )


@pytest_twisted.ensureDeferred()
async def test_a_signed_put_is_read_back(s3: Harness) -> None:
    """A PutObject signed as boto3 signs it streams into the library and a
    signed GetObject reads it back, each answer with a request id."""
    client = boto(s3)
    made = await send(s3, s3_signing.sent(client.create_bucket, Bucket="memory"))
    assert made.code == 200, made.body
    put = await send(
        s3,
        s3_signing.sent(
            client.put_object, Bucket="memory", Key="a/b.txt", Body=b"in memory"
        ),
    )
    assert put.code == 200, put.body
    assert put.header("x-amz-request-id")
    got = await send(
        s3, s3_signing.sent(client.get_object, Bucket="memory", Key="a/b.txt")
    )
    assert (got.code, got.body) == (200, b"in memory")
    assert s3.parts.gate.in_flight == 0
    assert s3.parts.s3 is not None and s3.parts.s3.gate.in_flight == 0


def test_the_gates_refusals_are_s3_error_documents(s3: Harness) -> None:
    """A body over the upload limit is refused before it is read, in S3's
    words: EntityTooLarge, in XML, naming the resource and the request."""
    assert s3.parts.s3 is not None
    client = connection(s3.parts.s3.site)
    client.send(
        b"PUT /memory/big.bin HTTP/1.1\r\nHost: uploadd\r\n"
        b"Content-Length: %d\r\n\r\n" % (2 * 1024 * 1024)
    )
    status, headers, body = client.response()
    assert status == 400
    assert headers["content-type"] == "application/xml"
    assert b"<Code>EntityTooLarge</Code>" in body
    assert b"<Resource>/memory/big.bin</Resource>" in body
    request_id = headers["x-amz-request-id"]
    assert f"<RequestId>{request_id}</RequestId>".encode() in body
    assert s3.parts.s3.gate.in_flight == 0


@pytest_twisted.ensureDeferred()
async def test_unsupported_subresources_and_methods_are_s3_errors(
    s3: Harness,
) -> None:
    client = boto(s3)
    await send(s3, s3_signing.sent(client.create_bucket, Bucket="memory"))
    acl = await send(s3, s3_signing.sent(client.get_bucket_acl, Bucket="memory"))
    assert (acl.code, b"<Code>NotImplemented</Code>" in acl.body) == (501, True)
    patch = await s3.call("PATCH", "/memory/k")
    assert (patch.code, b"<Code>MethodNotAllowed</Code>" in patch.body) == (405, True)


@pytest.mark.parametrize(
    ("error", "code", "status"),
    [
        (errors.NotFound("x", reason=Reason.NO_BUCKET), "NoSuchBucket", 404),
        (errors.NotFound("x", reason=Reason.NO_KEY), "NoSuchKey", 404),
        (errors.NotFound("x", reason=Reason.NO_UPLOAD), "NoSuchUpload", 404),
        (errors.Forbidden("x", reason=Reason.NOT_YOURS), "AccessDenied", 403),
        (errors.Forbidden("x", reason=Reason.NOT_ALLOWED), "AccessDenied", 403),
        (errors.Conflict("x", reason=Reason.BUCKET_TAKEN), "BucketAlreadyExists", 409),
        (
            errors.Conflict("x", reason=Reason.BUCKET_OWNED),
            "BucketAlreadyOwnedByYou",
            409,
        ),
        (errors.Conflict("x", reason=Reason.BUCKET_NOT_EMPTY), "BucketNotEmpty", 409),
        (errors.Invalid("x", reason=Reason.BAD_BUCKET_NAME), "InvalidBucketName", 400),
        (errors.Invalid("x", reason=Reason.KEY_TOO_LONG), "KeyTooLongError", 400),
        (errors.Invalid("x", reason=Reason.BAD_PART), "InvalidPart", 400),
        (errors.Invalid("x", reason=Reason.PART_ORDER), "InvalidPartOrder", 400),
        (errors.Invalid("x", reason=Reason.PART_TOO_SMALL), "EntityTooSmall", 400),
        (errors.Invalid("x"), "InvalidArgument", 400),
        (errors.TooLarge(10), "EntityTooLarge", 400),
        (errors.ChecksumMismatch("x"), "BadDigest", 400),
        (errors.Busy("x"), "OperationAborted", 409),
        (errors.StorageFull(), "ServiceUnavailable", 503),
        (errors.Unavailable("x"), "SlowDown", 503),
        (Problem(413, "too big"), "EntityTooLarge", 400),
        (Problem(503, "stopping", headers={"Retry-After": "5"}), "SlowDown", 503),
        (Problem(401, "who"), "AccessDenied", 403),
        (S3Error("InvalidRange", "no"), "InvalidRange", 416),
    ],
)
def test_every_failure_has_its_s3_code(
    error: Exception, code: str, status: int
) -> None:
    problem = s3_problem(error, "/b/k", "RID")
    assert (problem.code, problem.status) == (code, status)
    body = problem.body()
    assert f"<Code>{code}</Code>".encode() in body
    assert b"<Resource>/b/k</Resource><RequestId>RID</RequestId>" in body
    if isinstance(error, errors.Unavailable):
        assert problem.headers["Retry-After"] == str(error.retry_after)


def test_an_unexpected_failure_is_an_internal_error_with_an_incident_id() -> None:
    """The client is told an incident id, never what failed."""
    problem = s3_problem(RuntimeError("secret detail"), "/b", "RID")
    assert (problem.code, problem.status) == ("InternalError", 500)
    assert "incident" in problem.detail
    assert b"secret detail" not in problem.body()


def test_request_documents_are_read_with_or_without_the_namespace() -> None:
    ns = 'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'
    complete = (
        f"<CompleteMultipartUpload {ns}><Part><PartNumber>2</PartNumber>"
        '<ETag>"ab"</ETag><ChecksumCRC32>AAAAAA==</ChecksumCRC32></Part>'
        "</CompleteMultipartUpload>"
    ).encode()
    assert parse_complete(complete) == [(2, '"ab"', {"CRC32": "AAAAAA=="})]
    delete = b"<Delete><Quiet>true</Quiet><Object><Key>a b</Key></Object></Delete>"
    assert parse_delete(delete) == (True, ["a b"])
    for bad in (
        b"<Delete></Delete>",
        b"<Delete><Object><Key>a</Key></Object>",
        b"<Other/>",
        b'<!DOCTYPE d [<!ENTITY e "x">]><Delete><Object><Key>&e;</Key></Object>'
        b"</Delete>",
    ):
        with pytest.raises(S3Error) as caught:
            parse_delete(bad)
        assert caught.value.code == "MalformedXML"
    with pytest.raises(S3Error) as caught:
        parse_cors(
            b"<CORSConfiguration><CORSRule><AllowedOrigin>*</AllowedOrigin>"
            b"<AllowedMethod>PATCH</AllowedMethod></CORSRule></CORSConfiguration>"
        )
    assert caught.value.code == "InvalidRequest"


def preflight_request(origin: str, method: str, headers: str = "") -> Any:
    request = DummyRequest([b""])
    request.method = b"OPTIONS"
    request.requestHeaders.setRawHeaders(b"origin", [origin.encode()])
    request.requestHeaders.setRawHeaders(
        b"access-control-request-method", [method.encode()]
    )
    if headers:
        request.requestHeaders.setRawHeaders(
            b"access-control-request-headers", [headers.encode()]
        )
    return request


def test_cors_rules_match_origin_patterns_methods_and_headers() -> None:
    """The first rule whose origin pattern, method and every asked header
    match answers; a header no rule allows refuses the preflight."""
    rules = [
        {
            "origins": ["https://*.example.com"],
            "methods": ["PUT"],
            "headers": ["content-type", "x-amz-*"],
            "expose": ["ETag"],
            "max_age": 60,
        }
    ]
    cors = BucketCors()
    allowed = preflight_request(
        "https://app.example.com", "PUT", "Content-Type, X-Amz-Date"
    )
    cors.preflight(allowed, rules)
    assert allowed.responseHeaders.getRawHeaders(b"access-control-allow-origin") == [
        b"https://app.example.com"
    ]
    assert allowed.responseHeaders.getRawHeaders(b"access-control-max-age") == [b"60"]
    for origin, method, headers in (
        ("https://example.org", "PUT", ""),
        ("https://app.example.com", "GET", ""),
        ("https://app.example.com", "PUT", "authorization"),
    ):
        with pytest.raises(S3Error) as caught:
            cors.preflight(preflight_request(origin, method, headers), rules)
        assert caught.value.code == "AccessForbidden"


class _Node(Resource):
    """A storage node serving one file's bytes, one range at most."""

    isLeaf = True

    def __init__(self, data: bytes) -> None:
        super().__init__()
        self.data = data
        self.ranges: list[bytes | None] = []

    def render_GET(self, request: IRequest) -> bytes:
        asked = request.getHeader(b"range")
        self.ranges.append(asked)
        if asked is None:
            return self.data
        first, last = (int(n) for n in asked.split(b"=")[1].split(b"-"))
        request.setResponseCode(206)
        return self.data[first : last + 1]


class _Streamed(DummyRequest):
    """A DummyRequest taking a push producer (DummyRequest pulls forever)."""

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        self.producer = producer

    def unregisterProducer(self) -> None:
        self.producer = None


class _NodesOnly:
    """A Locator whose file is on a node only."""

    async def redirect(self, record: FileRecord, client: str, local: Path) -> str:
        return f"http://node/{quote(record.id)}"


@pytest_twisted.ensureDeferred()
async def test_an_object_on_nodes_only_is_streamed_through(tmp_path: Path) -> None:
    """GetObject of an object whose bytes are on a node, not here: the node
    is asked for the range the client asked for, and its bytes are the
    answer's, with the object's own headers."""
    data = bytes(range(256)) * 16
    node = _Node(data)
    agent = RequestTraversalAgent(node)
    reader = ObjectReader(_NodesOnly(), agent)  # type: ignore[arg-type]
    info = ObjectInfo("b", "k", "f1", len(data), "abc", "text/plain", 1e9)
    record = FileRecord("f1", 1, "k", len(data), "s", "abc", "text/plain", 1e9)
    request: Any = _Streamed([b""])
    request.method = b"GET"
    request.requestHeaders.setRawHeaders(b"range", [b"bytes=10-99"])
    answer = await pumped(
        agent,  # type: ignore[arg-type]
        _deferred(reader.answer(request, info, record, tmp_path / "absent")),
    )
    assert not isinstance(answer, bytes)
    answer.render(request)
    agent.flush()
    assert node.ranges == [b"bytes=10-99"]
    assert request.responseCode == 206
    assert b"".join(request.written) == data[10:100]
    assert request.finished
    assert request.responseHeaders.getRawHeaders(b"etag") == [b'"abc"']


def _deferred(coroutine: Any) -> Any:
    return Deferred.fromCoroutine(coroutine)
