"""S3 requests that fail part-way: each must be answered, release its
upload slot (``uploads_in_flight`` back to 0) and leave no bytes on disk
(no staging file under <data>/incoming, no part under <data>/uploads)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.integration.s3daemon import Key, S3Daemon, running
from tests.integration.wire import read_answer

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Daemon]:
    yield from running(tmp_path_factory.mktemp("s3failures") / "uploadd")


def signed_head(s3: S3Daemon, key: Key, method: str, path: str, body: bytes) -> bytes:
    """The head of a signed request whose body is ``body`` (its sha256 signed)."""
    request = AWSRequest(
        method,
        f"{s3.endpoint}{path}",
        data=body,
        headers={"Host": f"127.0.0.1:{s3.port}", "Content-Length": str(len(body))},
    )
    S3SigV4Auth(Credentials(key.key_id, key.secret), "s3", "us-east-1").add_auth(
        request
    )
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(
        f"{name}: {value}\r\n" for name, value in request.headers.items()
    )
    return head.encode() + b"\r\n"


def wait_in_flight(s3: S3Daemon, count: int) -> None:
    deadline = time.monotonic() + 10
    while s3.in_flight() != count and time.monotonic() < deadline:
        time.sleep(0.05)
    assert s3.in_flight() == count


def leftovers(s3: S3Daemon) -> list[str]:
    root = s3.daemon.data_dir
    return sorted(
        str(p.relative_to(root))
        for folder in ("incoming", "uploads")
        if (root / folder).exists()
        for p in (root / folder).iterdir()
    )


def test_a_put_into_a_bucket_deleted_while_its_body_streams_leaves_no_file(
    s3: S3Daemon, alice: Key, client: Any
) -> None:
    """PutObject admitted, then its (empty) bucket deleted before the body
    ends: NoSuchBucket, and the staged body must be removed."""
    name = "gone-while-put"
    client.create_bucket(Bucket=name)
    before = leftovers(s3)
    body = b"x" * 200_000
    with socket.create_connection(("127.0.0.1", s3.port), timeout=10) as sock:
        sock.sendall(signed_head(s3, alice, "PUT", f"/{name}/k.bin", body))
        sock.sendall(body[:1000])
        wait_in_flight(s3, 1)
        client.delete_bucket(Bucket=name)
        sock.sendall(body[1000:])
        answer = read_answer(sock, time.monotonic())
    assert answer.status == 404, answer
    s3.settle()
    time.sleep(0.3)
    assert sorted(set(leftovers(s3)) - set(before)) == []


def test_an_upload_part_cut_off_by_its_client_leaves_no_part_on_disk(
    s3: S3Daemon, alice: Key, client: Any, bucket: str
) -> None:
    """A client leaving mid-UploadPart: the slot is released and the part's
    partial upload goes with its bytes (its body broke off)."""
    upload_id = client.create_multipart_upload(Bucket=bucket, Key="cut.bin")["UploadId"]
    before = leftovers(s3)
    body = b"y" * 300_000
    path = f"/{bucket}/cut.bin?partNumber=1&uploadId={upload_id}"
    with socket.create_connection(("127.0.0.1", s3.port), timeout=10) as sock:
        sock.sendall(signed_head(s3, alice, "PUT", path, body))
        sock.sendall(body[:100_000])
        wait_in_flight(s3, 1)
        time.sleep(0.3)
    s3.settle()
    time.sleep(0.5)
    assert sorted(set(leftovers(s3)) - set(before)) == []
    assert (
        client.list_parts(Bucket=bucket, Key="cut.bin", UploadId=upload_id).get(
            "Parts", []
        )
        == []
    )


def test_an_upload_part_of_an_upload_aborted_while_it_streams_is_removed(
    s3: S3Daemon, alice: Key, client: Any, bucket: str
) -> None:
    """AbortMultipartUpload while a part's body arrives: the part is
    answered NoSuchUpload when it ends, and none of its bytes stay."""
    upload_id = client.create_multipart_upload(Bucket=bucket, Key="ab.bin")["UploadId"]
    before = leftovers(s3)
    body = b"z" * 300_000
    path = f"/{bucket}/ab.bin?partNumber=1&uploadId={upload_id}"
    with socket.create_connection(("127.0.0.1", s3.port), timeout=10) as sock:
        sock.sendall(signed_head(s3, alice, "PUT", path, body))
        sock.sendall(body[:100_000])
        wait_in_flight(s3, 1)
        client.abort_multipart_upload(Bucket=bucket, Key="ab.bin", UploadId=upload_id)
        sock.sendall(body[100_000:])
        answer = read_answer(sock, time.monotonic())
    assert answer.status == 404, answer
    s3.settle()
    time.sleep(0.5)
    assert sorted(set(leftovers(s3)) - set(before)) == []


def test_a_post_form_with_too_much_metadata_leaves_no_staging_file(
    s3: S3Daemon, client: Any, bucket: str
) -> None:
    """A POST Object form whose policy allows its x-amz-meta-* field but
    whose metadata is over 2 KB: MetadataTooLarge, and the staged file part
    must be removed."""
    big = "m" * 3000
    post = client.generate_presigned_post(
        bucket,
        "form.bin",
        Fields={"x-amz-meta-big": big},
        Conditions=[["starts-with", "$x-amz-meta-big", ""]],
        ExpiresIn=600,
    )
    before = leftovers(s3)
    import urllib.request
    import uuid as _uuid

    boundary = _uuid.uuid4().hex
    parts = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
        f"{value}\r\n".encode()
        for name, value in post["fields"].items()
    )
    parts += (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="form.bin"\r\nContent-Type: application/octet-stream\r\n\r\n'
        ).encode()
        + b"f" * 50_000
        + f"\r\n--{boundary}--\r\n".encode()
    )
    request = urllib.request.Request(
        post["url"],
        data=parts,
        method="POST",
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            status, text = answer.status, answer.read()
    except urllib.error.HTTPError as error:
        status, text = error.code, error.read()
    assert status == 400 and b"MetadataTooLarge" in text, (status, text)
    s3.settle()
    time.sleep(0.3)
    assert sorted(set(leftovers(s3)) - set(before)) == []


def test_a_malformed_completion_document_is_answered_and_leaves_nothing(
    s3: S3Daemon, alice: Key, client: Any, bucket: str
) -> None:
    upload_id = client.create_multipart_upload(Bucket=bucket, Key="x.bin")["UploadId"]
    client.upload_part(
        Bucket=bucket, Key="x.bin", UploadId=upload_id, PartNumber=1, Body=b"p" * 10
    )
    before = leftovers(s3)
    body = b"<CompleteMultipartUpload><Part><PartNumber>1</Part>"
    path = f"/{bucket}/x.bin?uploadId={upload_id}"
    with socket.create_connection(("127.0.0.1", s3.port), timeout=10) as sock:
        sock.sendall(signed_head(s3, alice, "POST", path, body) + body)
        answer = read_answer(sock, time.monotonic())
    assert answer.status == 400, answer
    s3.settle()
    time.sleep(0.3)
    assert sorted(set(leftovers(s3)) - set(before)) == []
