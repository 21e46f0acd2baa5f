"""The S3 API's objects against a real uploadd, with boto3 and urllib: put,
get, head and delete with metadata, ranges and conditions, DeleteObjects,
CopyObject, presigned URLs and POST forms, what each access key may do,
and how signatures fail. Every object read back is compared with its
source, byte for byte and by sha256, and is a file of the main API."""

from __future__ import annotations

import datetime
import hashlib
import hmac
import os
import socket
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore import UNSIGNED
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.integration.s3daemon import (
    Key,
    S3Daemon,
    body_of,
    error_code,
    refused,
    running,
    sha256,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Daemon]:
    yield from running(
        tmp_path_factory.mktemp("s3objects") / "uploadd",
        "--s3-presign-max-expiry=1h",
    )


def stored(s3: S3Daemon, client: Any, bucket: str, key: str, data: bytes) -> None:
    """The object reads back as ``data`` and is one of the main API's files
    with its sha256."""
    read = body_of(client, bucket, key)
    assert (len(read), sha256(read)) == (len(data), sha256(data))
    assert read == data
    name = key.rsplit("/", 1)[-1]
    assert sha256(data) in [f["sha256"] for f in s3.files(name)]


def test_an_object_keeps_its_metadata_and_headers(
    s3: S3Daemon, client: Any, bucket: str
) -> None:
    """PutObject answers the md5 as ETag; GetObject and HeadObject give the
    bytes back with the user metadata (names in lower case, as S3 keeps
    them), the content type and the headers stored with it."""
    data = os.urandom(200_000)
    put = client.put_object(
        Bucket=bucket,
        Key="docs/report one.bin",
        Body=data,
        Metadata={"Color": "blue", "owner-name": "Ann"},
        ContentType="application/x-report; charset=utf-8",
        CacheControl="max-age=60",
        ContentDisposition='attachment; filename="r.bin"',
        ContentLanguage="en",
    )
    etag = f'"{hashlib.md5(data).hexdigest()}"'
    assert put["ETag"] == etag
    assert put["ResponseMetadata"]["HTTPHeaders"]["x-amz-request-id"]
    got = client.get_object(Bucket=bucket, Key="docs/report one.bin")
    assert got["Body"].read() == data
    head = client.head_object(Bucket=bucket, Key="docs/report one.bin")
    for answer in (got, head):
        assert answer["ETag"] == etag
        assert answer["ContentLength"] == len(data)
        assert answer["Metadata"] == {"color": "blue", "owner-name": "Ann"}
        assert answer["ContentType"] == "application/x-report; charset=utf-8"
        assert answer["CacheControl"] == "max-age=60"
        assert answer["ContentDisposition"] == 'attachment; filename="r.bin"'
        assert answer["ContentLanguage"] == "en"
    stored(s3, client, bucket, "docs/report one.bin", data)
    s3.settle()


def test_putting_a_key_again_makes_a_new_version_of_its_file(
    s3: S3Daemon, client: Any, bucket: str
) -> None:
    """The newest PutObject is what GetObject reads; its file's parent is
    the file the key named before."""
    first, second = b"first version\n", b"second version, longer\n"
    client.put_object(Bucket=bucket, Key="notes/v.txt", Body=first)
    client.put_object(Bucket=bucket, Key="notes/v.txt", Body=second)
    stored(s3, client, bucket, "notes/v.txt", second)
    files = {f["sha256"]: f for f in s3.files("v.txt")}
    assert files[sha256(second)]["parent"] == files[sha256(first)]["id"]


def test_a_range_is_served_as_206_and_one_past_the_end_is_invalid(
    client: Any, bucket: str
) -> None:
    data = bytes(range(256)) * 40
    client.put_object(Bucket=bucket, Key="r.bin", Body=data)
    part = client.get_object(Bucket=bucket, Key="r.bin", Range="bytes=100-299")
    assert part["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert part["ContentRange"] == f"bytes 100-299/{len(data)}"
    assert part["Body"].read() == data[100:300]
    assert body_of(client, bucket, "r.bin", Range="bytes=-10") == data[-10:]
    error = refused(
        client.get_object, Bucket=bucket, Key="r.bin", Range=f"bytes={len(data)}-"
    )
    assert error_code(error) == "InvalidRange"
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 416


def test_conditional_reads_answer_304_and_412_and_overrides_apply(
    client: Any, bucket: str
) -> None:
    """If-None-Match and If-Modified-Since answer 304 for the current
    object, If-Match and If-Unmodified-Since 412 for another; response-*
    parameters set the headers answered."""
    put = client.put_object(Bucket=bucket, Key="c.txt", Body=b"conditional")
    etag = put["ETag"]
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)
    earlier = later - datetime.timedelta(days=1)
    get = client.get_object
    assert error_code(refused(get, Bucket=bucket, Key="c.txt", IfNoneMatch=etag)) == (
        "304"
    )
    assert error_code(
        refused(get, Bucket=bucket, Key="c.txt", IfModifiedSince=later)
    ) == ("304")
    assert error_code(refused(get, Bucket=bucket, Key="c.txt", IfMatch='"0123"')) == (
        "PreconditionFailed"
    )
    assert error_code(
        refused(get, Bucket=bucket, Key="c.txt", IfUnmodifiedSince=earlier)
    ) == ("PreconditionFailed")
    assert error_code(
        refused(client.head_object, Bucket=bucket, Key="c.txt", IfMatch='"0123"')
    ) == ("412")
    matched = get(Bucket=bucket, Key="c.txt", IfMatch=etag, IfModifiedSince=earlier)
    assert matched["Body"].read() == b"conditional"
    overridden = get(
        Bucket=bucket,
        Key="c.txt",
        ResponseContentType="text/x-other",
        ResponseContentDisposition="inline",
        ResponseCacheControl="no-cache",
    )
    assert overridden["ContentType"] == "text/x-other"
    assert overridden["ContentDisposition"] == "inline"
    assert overridden["CacheControl"] == "no-cache"


def test_deleting_objects_one_or_many(s3: S3Daemon, client: Any, bucket: str) -> None:
    """DeleteObject answers 204, also for a key that is not there; the key
    is NoSuchKey after. DeleteObjects deletes each key named and reports
    them, none in quiet mode; the main API lists their files no more."""
    for key in ("d/1", "d/2", "d/3", "d/4"):
        client.put_object(Bucket=bucket, Key=key, Body=key.encode())
    deleted = client.delete_object(Bucket=bucket, Key="d/1")
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert (
        client.delete_object(Bucket=bucket, Key="d/1")["ResponseMetadata"][
            "HTTPStatusCode"
        ]
        == 204
    )
    error = refused(client.get_object, Bucket=bucket, Key="d/1")
    assert error_code(error) == "NoSuchKey"
    assert error.response["Error"]["Message"] == "The specified key does not exist."
    many = client.delete_objects(
        Bucket=bucket,
        Delete={"Objects": [{"Key": "d/2"}, {"Key": "d/3"}, {"Key": "d/none"}]},
    )
    assert sorted(d["Key"] for d in many["Deleted"]) == ["d/2", "d/3", "d/none"]
    assert "Errors" not in many
    quiet = client.delete_objects(
        Bucket=bucket, Delete={"Objects": [{"Key": "d/4"}], "Quiet": True}
    )
    assert "Deleted" not in quiet and "Errors" not in quiet
    assert client.list_objects_v2(Bucket=bucket, Prefix="d/")["KeyCount"] == 0
    assert s3.files("4") == []


def test_copy_keeps_or_replaces_metadata(
    s3: S3Daemon, client: Any, bucket: str
) -> None:
    """CopyObject makes a new object with the source's bytes and metadata,
    or the request's with REPLACE; a key copied onto itself needs REPLACE."""
    data = os.urandom(50_000)
    client.put_object(
        Bucket=bucket, Key="src.bin", Body=data, Metadata={"a": "1"}, ContentType="x/y"
    )
    other = f"{bucket}-copy"
    client.create_bucket(Bucket=other)
    copied = client.copy_object(
        Bucket=other, Key="dst.bin", CopySource={"Bucket": bucket, "Key": "src.bin"}
    )
    assert copied["CopyObjectResult"]["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
    head = client.head_object(Bucket=other, Key="dst.bin")
    assert (head["Metadata"], head["ContentType"]) == ({"a": "1"}, "x/y")
    stored(s3, client, other, "dst.bin", data)
    client.copy_object(
        Bucket=bucket,
        Key="src.bin",
        CopySource=f"{bucket}/src.bin",
        MetadataDirective="REPLACE",
        Metadata={"b": "2"},
        ContentType="text/plain",
    )
    head = client.head_object(Bucket=bucket, Key="src.bin")
    assert (head["Metadata"], head["ContentType"]) == ({"b": "2"}, "text/plain")
    assert body_of(client, bucket, "src.bin") == data
    error = refused(
        client.copy_object, Bucket=bucket, Key="src.bin", CopySource=f"{bucket}/src.bin"
    )
    assert error_code(error) == "InvalidRequest"
    error = refused(
        client.copy_object,
        Bucket=bucket,
        Key="x",
        CopySource=f"{bucket}/src.bin",
        CopySourceIfMatch='"00"',
    )
    assert error_code(error) == "PreconditionFailed"
    client.delete_object(Bucket=other, Key="dst.bin")
    client.delete_bucket(Bucket=other)


def test_a_wrong_content_md5_is_bad_digest_and_nothing_is_stored(
    s3: S3Daemon, client: Any, bucket: str
) -> None:
    error = refused(
        client.put_object,
        Bucket=bucket,
        Key="bad-md5.bin",
        Body=b"some bytes",
        ContentMD5="1B2M2Y8AsgTpgAmY7PhCfg==",
    )
    assert error_code(error) == "BadDigest"
    assert error.response["ResponseMetadata"]["RequestId"]
    assert error_code(refused(client.head_object, Bucket=bucket, Key="bad-md5.bin"))
    assert s3.files("bad-md5.bin") == []


def test_presigned_urls_get_and_put_without_a_client(
    s3: S3Daemon, client: Any, bucket: str
) -> None:
    """A presigned PUT URL stores the body urllib sends; a presigned GET URL
    reads it; one living longer than [s3] presign_max_expiry allows, or
    expired, is refused."""
    data = os.urandom(300_000)
    put_url = client.generate_presigned_url(
        "put_object", Params={"Bucket": bucket, "Key": "pre/signed.bin"}, ExpiresIn=600
    )
    request = urllib.request.Request(put_url, data=data, method="PUT")
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200
        assert response.headers["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
    get_url = client.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "pre/signed.bin"}, ExpiresIn=600
    )
    with urllib.request.urlopen(get_url, timeout=30) as response:
        assert response.read() == data
    stored(s3, client, bucket, "pre/signed.bin", data)
    too_long = client.generate_presigned_url(
        "get_object",
        Params={"Bucket": bucket, "Key": "pre/signed.bin"},
        ExpiresIn=2 * 3600,
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(too_long, timeout=30)
    assert caught.value.code == 400
    assert b"<Code>AuthorizationQueryParametersError</Code>" in caught.value.read()
    expired = client.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "pre/signed.bin"}, ExpiresIn=1
    )
    time.sleep(1.2)
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(expired, timeout=30)
    assert caught.value.code == 403
    assert b"<Message>Request has expired</Message>" in caught.value.read()


def form_body(fields: dict[str, str], filename: str, data: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
        f"{value}\r\n".encode()
        for name, value in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="{filename}"\r\nContent-Type: text/csv\r\n\r\n'.encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def post_form(url: str, fields: dict[str, str], name: str, data: bytes) -> Any:
    body, ctype = form_body(fields, name, data)
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": ctype}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_a_presigned_post_form_uploads_within_its_policy(
    s3: S3Daemon, client: Any, bucket: str
) -> None:
    """generate_presigned_post's form stores the file under its key (with
    ${filename}) and answers as success_action_status asks; a file over
    the policy's length range, or a form whose signature does not match,
    is refused and nothing is stored."""
    post = client.generate_presigned_post(
        bucket,
        "forms/${filename}",
        Fields={"success_action_status": "201", "Content-Type": "text/csv"},
        Conditions=[
            ["starts-with", "$key", "forms/"],
            {"success_action_status": "201"},
            {"Content-Type": "text/csv"},
            ["content-length-range", 1, 100_000],
        ],
        ExpiresIn=600,
    )
    data = b"a,b,c\n" * 1000
    status, headers, body = post_form(post["url"], post["fields"], "table.csv", data)
    assert status == 201, body
    assert b"<Key>forms/table.csv</Key>" in body
    assert headers["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
    assert client.head_object(Bucket=bucket, Key="forms/table.csv")["ContentType"] == (
        "text/csv"
    )
    stored(s3, client, bucket, "forms/table.csv", data)
    status, _, body = post_form(post["url"], post["fields"], "big.csv", data * 20)
    assert (status, b"<Code>EntityTooLarge</Code>" in body) == (400, True)
    forged = {**post["fields"], "x-amz-signature": "0" * 64}
    status, _, body = post_form(post["url"], forged, "forged.csv", data)
    assert (status, b"<Code>SignatureDoesNotMatch</Code>" in body) == (403, True)
    assert s3.files("big.csv") == s3.files("forged.csv") == []


def test_an_upload_only_key_stores_and_nothing_else(
    s3: S3Daemon, client: Any, bucket: str
) -> None:
    """A key of scope upload-only may PutObject and take a multipart upload
    to its end; reading, listing and deleting are AccessDenied, its own
    objects too, as are aborting and listing multipart uploads."""
    dropbox = s3.client(s3.key(scope="upload-only"))
    data = os.urandom(10_000)
    dropbox.put_object(Bucket=bucket, Key="drop/one.bin", Body=data)
    stored(s3, client, bucket, "drop/one.bin", data)
    denied = [
        refused(dropbox.get_object, Bucket=bucket, Key="drop/one.bin"),
        refused(dropbox.list_objects_v2, Bucket=bucket),
        refused(dropbox.list_objects, Bucket=bucket),
        refused(dropbox.delete_object, Bucket=bucket, Key="drop/one.bin"),
        refused(dropbox.list_buckets),
        refused(dropbox.list_multipart_uploads, Bucket=bucket),
    ]
    assert [error_code(e) for e in denied] == ["AccessDenied"] * len(denied)
    assert error_code(
        refused(dropbox.head_object, Bucket=bucket, Key="drop/one.bin")
    ) == ("403")
    error = refused(
        dropbox.delete_objects,
        Bucket=bucket,
        Delete={"Objects": [{"Key": "drop/one.bin"}]},
    )
    assert error_code(error) == "AccessDenied"
    upload = dropbox.create_multipart_upload(Bucket=bucket, Key="drop/parts.bin")
    upload_id = upload["UploadId"]
    part = dropbox.upload_part(
        Bucket=bucket, Key="drop/parts.bin", UploadId=upload_id, PartNumber=1, Body=data
    )
    for call in (dropbox.list_parts, dropbox.abort_multipart_upload):
        error = refused(call, Bucket=bucket, Key="drop/parts.bin", UploadId=upload_id)
        assert error_code(error) == "AccessDenied"
    dropbox.complete_multipart_upload(
        Bucket=bucket,
        Key="drop/parts.bin",
        UploadId=upload_id,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
    stored(s3, client, bucket, "drop/parts.bin", data)
    assert body_of(client, bucket, "drop/one.bin") == data


def test_bad_signatures_unknown_keys_and_anonymous_requests_are_refused(
    s3: S3Daemon, alice: Key, bucket: str
) -> None:
    wrong = s3.client(Key(alice.key_id, "x" * 40))
    for call, options in (
        (wrong.list_objects_v2, {"Bucket": bucket}),
        (wrong.put_object, {"Bucket": bucket, "Key": "w", "Body": b"w"}),
    ):
        error = refused(call, **options)
        assert error_code(error) == "SignatureDoesNotMatch"
        assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    unknown = s3.client(Key("UPLDAAAAAAAAAAAAAAAA", alice.secret))
    assert error_code(refused(unknown.list_buckets)) == "InvalidAccessKeyId"
    anonymous = s3.client(alice, signature_version=UNSIGNED)
    for call, options in (
        (anonymous.list_objects_v2, {"Bucket": bucket}),
        (anonymous.put_object, {"Bucket": bucket, "Key": "a", "Body": b"a"}),
    ):
        assert error_code(refused(call, **options)) == "AccessDenied"
    assert s3.files("w") == s3.files("a") == []


def test_a_refused_body_reads_as_an_s3_error_document(
    s3: S3Daemon, alice: Key, bucket: str, tmp_path: Path
) -> None:
    """A refusal made before the body is read (the ingest gate's: an
    unsigned PUT) is S3's XML with a request id, as urllib sees it."""
    url = f"{s3.endpoint}/{bucket}/raw.bin"
    request = urllib.request.Request(url, data=b"x" * 1000, method="PUT")
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=30)
    body = caught.value.read()
    assert caught.value.code == 403
    assert caught.value.headers["Content-Type"] == "application/xml"
    assert b"<Code>AccessDenied</Code>" in body
    request_id = caught.value.headers["x-amz-request-id"]
    assert f"<RequestId>{request_id}</RequestId>".encode() in body
    assert f"<Resource>/{bucket}/raw.bin</Resource>".encode() in body


def test_a_body_streaming_in_counts_in_the_main_apis_health(
    s3: S3Daemon, alice: Key, bucket: str
) -> None:
    """A signed PutObject whose body is still arriving is an upload in
    flight in GET /health of the main API; once its client leaves, it is
    not, and nothing of it is stored."""
    url = f"{s3.endpoint}/{bucket}/slow.bin"
    length = 10 * 1024 * 1024
    request = AWSRequest(
        "PUT",
        url,
        headers={
            "Host": f"127.0.0.1:{s3.port}",
            "Content-Length": str(length),
            "x-amz-content-sha256": "UNSIGNED-PAYLOAD",
        },
    )
    S3SigV4Auth(Credentials(alice.key_id, alice.secret), "s3", "us-east-1").add_auth(
        request
    )
    head = f"PUT /{bucket}/slow.bin HTTP/1.1\r\n" + "".join(
        f"{name}: {value}\r\n" for name, value in request.headers.items()
    )
    with socket.create_connection(("127.0.0.1", s3.port), timeout=10) as sock:
        sock.sendall(head.encode() + b"\r\n" + b"x" * 65536)
        deadline = time.monotonic() + 10
        while s3.in_flight() != 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert s3.in_flight() == 1
    s3.settle()
    assert s3.files("slow.bin") == []


def test_keys_of_any_shape_round_trip(s3: S3Daemon, client: Any, bucket: str) -> None:
    """Keys with runs of slashes, a trailing slash, a query's characters or
    letters beyond ASCII name their objects exactly, empty ones included."""
    keys = ["a//b", "dir/", "q?x=1#frag", "ünï/çødé.txt", "sp ace/+plus"]
    for key in keys:
        data = key.encode() * 3
        client.put_object(Bucket=bucket, Key=key, Body=data)
        assert body_of(client, bucket, key) == data
    client.put_object(Bucket=bucket, Key="empty", Body=b"")
    assert client.head_object(Bucket=bucket, Key="empty")["ContentLength"] == 0
    listed = client.list_objects_v2(Bucket=bucket)["Contents"]
    assert [o["Key"] for o in listed] == sorted([*keys, "empty"])
    client.delete_object(Bucket=bucket, Key="a//b")
    assert error_code(refused(client.head_object, Bucket=bucket, Key="a//b")) == ("404")


class _StreamingAuth(S3SigV4Auth):  # type: ignore[misc]  # botocore is untyped
    """botocore's signer for a body sent as signed aws-chunked chunks (as
    the Go and Java SDKs send over plain HTTP): the payload it signs is the
    streaming mode's name."""

    def payload(self, request: Any) -> str:
        return "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"


def _chunked_put(
    s3: S3Daemon, key: Key, path: str, data: bytes, size: int, tamper: int = -1
) -> tuple[int, bytes]:
    """PUT ``data`` to ``path`` in signed chunks of ``size`` (the byte at
    ``tamper`` changed after signing); the status and body answered."""
    pieces = [data[i : i + size] for i in range(0, len(data), size)] + [b""]
    framing = sum(len(f"{len(p):x};chunk-signature=") + 64 + 4 for p in pieces)
    length = framing + len(data)
    request = AWSRequest(
        "PUT",
        f"{s3.endpoint}{path}",
        headers={
            "Host": f"127.0.0.1:{s3.port}",
            "Content-Encoding": "aws-chunked",
            "x-amz-decoded-content-length": str(len(data)),
            "Content-Length": str(length),
        },
    )
    auth = _StreamingAuth(Credentials(key.key_id, key.secret), "s3", "us-east-1")
    auth.add_auth(request)
    amz_date = request.headers["X-Amz-Date"]
    scope = f"{amz_date[:8]}/us-east-1/s3/aws4_request"
    previous = request.headers["Authorization"].rsplit("Signature=", 1)[1]
    signing = ("AWS4" + key.secret).encode()
    for part in (amz_date[:8], "us-east-1", "s3", "aws4_request"):
        signing = hmac.new(signing, part.encode(), hashlib.sha256).digest()
    empty = hashlib.sha256(b"").hexdigest()
    body = b""
    for piece in pieces:
        text = "\n".join(
            (
                "AWS4-HMAC-SHA256-PAYLOAD",
                amz_date,
                scope,
                previous,
                empty,
                hashlib.sha256(piece).hexdigest(),
            )
        )
        previous = hmac.new(signing, text.encode(), hashlib.sha256).hexdigest()
        body += f"{len(piece):x};chunk-signature={previous}\r\n".encode() + piece
        body += b"\r\n"
    assert len(body) == length, (len(body), length)
    if tamper >= 0:
        body = body[:tamper] + bytes([body[tamper] ^ 1]) + body[tamper + 1 :]
    head = f"PUT {path} HTTP/1.1\r\n" + "".join(
        f"{name}: {value}\r\n" for name, value in request.headers.items()
    )
    with socket.create_connection(("127.0.0.1", s3.port), timeout=30) as sock:
        sock.sendall(head.encode() + b"\r\n" + body)
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += sock.recv(65536)
        status = int(answer.split(b" ", 2)[1])
        head_part, _, rest = answer.partition(b"\r\n\r\n")
        lengths = [
            int(line.split(b":", 1)[1])
            for line in head_part.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        ]
        while lengths and len(rest) < lengths[0]:
            more = sock.recv(65536)
            if not more:
                break
            rest += more
    return status, rest


def test_a_signed_chunked_body_is_checked_chunk_by_chunk(
    s3: S3Daemon, alice: Key, client: Any, bucket: str
) -> None:
    """STREAMING-AWS4-HMAC-SHA256-PAYLOAD: a body in 64 KiB chunks, each
    signed by the chain from the request's signature, is stored decoded; one
    byte changed in the third chunk fails that chunk's signature
    (SignatureDoesNotMatch) and nothing is stored."""
    data = os.urandom(300_000)
    status, _ = _chunked_put(s3, alice, f"/{bucket}/chunked.bin", data, 65536)
    assert status == 200
    assert body_of(client, bucket, "chunked.bin") == data
    at = 2 * (65536 + 90) + 500  # inside the third chunk's data
    status, answer = _chunked_put(
        s3, alice, f"/{bucket}/tampered.bin", data, 65536, tamper=at
    )
    assert status == 403 and b"<Code>SignatureDoesNotMatch</Code>" in answer
    assert error_code(refused(client.head_object, Bucket=bucket, Key="tampered.bin"))
    s3.settle()
    assert s3.files("tampered.bin") == []
