"""S3 multipart uploads against a real uploadd, with boto3: a 64 MiB
``upload_fileobj`` in 8 MiB parts, and every step by hand (parts out of
order, ListParts, ListMultipartUploads, completion and its refusals,
abort). The objects made are compared with their sources and are files of
the main API."""

from __future__ import annotations

import hashlib
import io
import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from boto3.s3.transfer import TransferConfig

from tests.integration.s3daemon import (
    S3Daemon,
    error_code,
    refused,
    running,
    sha256,
)

pytestmark = pytest.mark.integration

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Daemon]:
    yield from running(tmp_path_factory.mktemp("s3multipart") / "uploadd")


def multipart_etag(parts: list[bytes]) -> str:
    joined = b"".join(hashlib.md5(part).digest() for part in parts)
    return f'"{hashlib.md5(joined).hexdigest()}-{len(parts)}"'


def test_upload_fileobj_sends_64_mib_in_parts(
    s3: S3Daemon, client: Any, bucket: str
) -> None:
    """boto3's managed transfer splits 64 MiB into eight 8 MiB parts sent
    side by side; the object is the source, with the multipart entity tag,
    and one file of the main API with the source's sha256."""
    data = os.urandom(64 * MiB)
    config = TransferConfig(
        multipart_threshold=8 * MiB, multipart_chunksize=8 * MiB, max_concurrency=4
    )
    client.upload_fileobj(io.BytesIO(data), bucket, "big/sixty-four.bin", Config=config)
    head = client.head_object(Bucket=bucket, Key="big/sixty-four.bin")
    chunks = [data[i : i + 8 * MiB] for i in range(0, len(data), 8 * MiB)]
    assert head["ETag"] == multipart_etag(chunks)
    assert head["ContentLength"] == len(data)
    got = io.BytesIO()
    client.download_fileobj(bucket, "big/sixty-four.bin", got, Config=config)
    assert sha256(got.getvalue()) == sha256(data)
    assert got.getvalue() == data
    [file] = s3.files("sixty-four.bin")
    assert (file["sha256"], file["size"]) == (sha256(data), len(data))
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_a_multipart_upload_step_by_step(
    s3: S3Daemon, client: Any, bucket: str
) -> None:
    """Parts sent out of order are listed by number with their entity tags
    and sizes; the upload is listed while open; a completion naming a part
    with another tag, out of order, or a small part before the last is
    refused and changes nothing; the right one makes the object."""
    key = "hand/made.bin"
    first, second, third = os.urandom(5 * MiB), os.urandom(5 * MiB), b"tail" * 1000
    upload = client.create_multipart_upload(
        Bucket=bucket,
        Key=key,
        ContentType="application/x-made",
        Metadata={"by": "hand"},
    )
    upload_id = upload["UploadId"]
    tags = {}
    for number, body in ((3, third), (1, first), (2, second)):
        sent = client.upload_part(
            Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body
        )
        assert sent["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'
        tags[number] = sent["ETag"]
    parts = client.list_parts(Bucket=bucket, Key=key, UploadId=upload_id)
    assert [(p["PartNumber"], p["ETag"], p["Size"]) for p in parts["Parts"]] == [
        (1, tags[1], len(first)),
        (2, tags[2], len(second)),
        (3, tags[3], len(third)),
    ]
    page = client.list_parts(Bucket=bucket, Key=key, UploadId=upload_id, MaxParts=2)
    assert page["IsTruncated"] and page["NextPartNumberMarker"] == 2
    uploads = client.list_multipart_uploads(Bucket=bucket)["Uploads"]
    assert [(u["Key"], u["UploadId"]) for u in uploads] == [(key, upload_id)]

    def complete(listed: list[tuple[int, str]]) -> Any:
        return client.complete_multipart_upload(
            Bucket=bucket,
            Key=key,
            UploadId=upload_id,
            MultipartUpload={
                "Parts": [{"PartNumber": n, "ETag": tag} for n, tag in listed]
            },
        )

    for listed, code in (
        ([(1, tags[1]), (2, tags[1]), (3, tags[3])], "InvalidPart"),
        ([(2, tags[2]), (1, tags[1])], "InvalidPartOrder"),
        ([(1, tags[1]), (3, tags[3]), (2, tags[2])], "InvalidPartOrder"),
        ([(3, tags[3]), (4, tags[3])], "InvalidPart"),
    ):
        assert error_code(refused(complete, listed=listed)) == code
    small = client.create_multipart_upload(Bucket=bucket, Key="hand/small.bin")
    for number in (1, 2):
        client.upload_part(
            Bucket=bucket,
            Key="hand/small.bin",
            UploadId=small["UploadId"],
            PartNumber=number,
            Body=b"tiny",
        )
    error = refused(
        client.complete_multipart_upload,
        Bucket=bucket,
        Key="hand/small.bin",
        UploadId=small["UploadId"],
        MultipartUpload={
            "Parts": [
                {"PartNumber": 1, "ETag": f'"{hashlib.md5(b"tiny").hexdigest()}"'},
                {"PartNumber": 2, "ETag": f'"{hashlib.md5(b"tiny").hexdigest()}"'},
            ]
        },
    )
    assert error_code(error) == "EntityTooSmall"
    client.abort_multipart_upload(
        Bucket=bucket, Key="hand/small.bin", UploadId=small["UploadId"]
    )
    done = complete([(1, tags[1]), (2, tags[2]), (3, tags[3])])
    assert done["ETag"] == multipart_etag([first, second, third])
    assert (done["Bucket"], done["Key"]) == (bucket, key)
    data = first + second + third
    got = client.get_object(Bucket=bucket, Key=key)
    assert (got["ContentType"], got["Metadata"]) == (
        "application/x-made",
        {"by": "hand"},
    )
    assert sha256(got["Body"].read()) == sha256(data)
    assert [f["sha256"] for f in s3.files("made.bin")] == [sha256(data)]
    again = complete([(1, tags[1]), (2, tags[2]), (3, tags[3])])
    assert again["ETag"] == done["ETag"]
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_an_aborted_upload_takes_its_parts_with_it(
    s3: S3Daemon, client: Any, bucket: str
) -> None:
    """AbortMultipartUpload forgets the upload: it is listed no more, and a
    part sent for it, listing it or completing it is NoSuchUpload."""
    key = "gone.bin"
    upload_id = client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    part = client.upload_part(
        Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=1, Body=b"p" * 1000
    )
    aborted = client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
    assert aborted["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    for call, options in (
        (client.upload_part, {"PartNumber": 2, "Body": b"late"}),
        (client.list_parts, {}),
        (
            client.complete_multipart_upload,
            {"MultipartUpload": {"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]}},
        ),
        (client.abort_multipart_upload, {}),
    ):
        error = refused(call, Bucket=bucket, Key=key, UploadId=upload_id, **options)
        assert error_code(error) == "NoSuchUpload"
    assert error_code(refused(client.head_object, Bucket=bucket, Key=key)) == "404"
    assert s3.files("gone.bin") == []


def test_presigned_upload_part_urls_take_parts_from_a_browser(
    s3: S3Daemon, client: Any, bucket: str
) -> None:
    """A page given presigned UploadPart URLs (seed 001's restricted
    browser upload) PUTs each part with no credentials of its own; the
    ETags it reads back complete the upload; a URL for part 1 does not
    take part 2, and one past its expiry is refused."""
    key = "browser/parts.bin"
    data = os.urandom(5 * MiB + 12345)
    parts = [data[: 5 * MiB], data[5 * MiB :]]
    upload_id = client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]

    def presigned(number: int, expires: int = 600) -> str:
        url: str = client.generate_presigned_url(
            "upload_part",
            Params={
                "Bucket": bucket,
                "Key": key,
                "UploadId": upload_id,
                "PartNumber": number,
            },
            ExpiresIn=expires,
        )
        return url

    def put(url: str, body: bytes) -> tuple[int, str]:
        request = urllib.request.Request(url, data=body, method="PUT")
        try:
            with urllib.request.urlopen(request, timeout=60) as answer:
                return answer.status, answer.headers["ETag"]
        except urllib.error.HTTPError as refusal:
            return refusal.code, refusal.read().decode()

    tampered = presigned(1).replace("partNumber=1", "partNumber=2")
    status, document = put(tampered, parts[1])
    assert status == 403 and "<Code>SignatureDoesNotMatch</Code>" in document
    etags = []
    for number, part in enumerate(parts, start=1):
        status, etag = put(presigned(number), part)
        assert status == 200
        assert etag == f'"{hashlib.md5(part).hexdigest()}"'
        etags.append(etag)
    client.complete_multipart_upload(
        Bucket=bucket,
        Key=key,
        UploadId=upload_id,
        MultipartUpload={
            "Parts": [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, 1)]
        },
    )
    got = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    assert sha256(got) == sha256(data)
    upload_id = client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    stale = presigned(1, expires=1)
    time.sleep(2.1)
    status, document = put(stale, parts[0])
    assert status == 403 and "<Code>AccessDenied</Code>" in document
    assert "expired" in document
    client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
