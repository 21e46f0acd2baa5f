"""The S3 API over TLS, where boto3 sends what it sends by default to AWS:
bodies in ``aws-chunked`` coding with their checksum as a trailer
(``STREAMING-UNSIGNED-PAYLOAD-TRAILER``). Objects and parts so sent are
stored decoded and verified, their checksums kept and answered; boto3
checks a read object against the checksum it is answered with."""

from __future__ import annotations

import base64
import datetime
import io
import os
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from boto3.s3.transfer import TransferConfig
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.integration.s3daemon import S3Daemon, running, sha256

pytestmark = pytest.mark.integration

MiB = 1024 * 1024


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A key and a certificate for 127.0.0.1, valid for a day."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    key_path, cert_path = directory / "key.pem", directory / "cert.pem"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Daemon]:
    base = tmp_path_factory.mktemp("s3tls")
    key, cert = self_signed(base)
    endpoint = f"ssl:0:interface=127.0.0.1:privateKey={key}:certKey={cert}"
    yield from running(base / "uploadd", endpoint=endpoint)


@pytest.fixture
def client(s3: S3Daemon) -> Any:
    return s3.client(s3.key())


def payloads(client: Any, operation: str) -> list[bytes]:
    """The x-amz-content-sha256 of each ``operation`` request ``client``
    sends from now on (what says how its body is coded)."""
    seen: list[bytes] = []

    def sending(request: Any, **_: Any) -> None:
        seen.append(request.headers["x-amz-content-sha256"])

    client.meta.events.register(f"before-send.s3.{operation}", sending)
    return seen


def crc32(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_bodies_with_checksum_trailers_are_decoded_and_checked(
    s3: S3Daemon, client: Any
) -> None:
    """PutObject with boto3's default CRC32 trailer, and with each other
    algorithm asked for, stores the decoded bytes and answers the checksum;
    GetObject answers it back and boto3's own validation of it passes."""
    client.create_bucket(Bucket="trailers")
    seen = payloads(client, "PutObject")
    data = os.urandom(3 * MiB + 17)
    put = client.put_object(Bucket="trailers", Key="crc32.bin", Body=data)
    assert seen == [b"STREAMING-UNSIGNED-PAYLOAD-TRAILER"]
    assert put["ChecksumCRC32"] == crc32(data)
    got = client.get_object(Bucket="trailers", Key="crc32.bin", ChecksumMode="ENABLED")
    assert got["ChecksumCRC32"] == crc32(data)
    assert got["Body"].read() == data
    for algorithm in ("CRC32C", "CRC64NVME", "SHA1", "SHA256"):
        key = f"{algorithm.lower()}.bin"
        put = client.put_object(
            Bucket="trailers",
            Key=key,
            Body=io.BytesIO(data),
            ChecksumAlgorithm=algorithm,
        )
        assert put[f"Checksum{algorithm}"]
        read = client.get_object(Bucket="trailers", Key=key, ChecksumMode="ENABLED")
        assert read[f"Checksum{algorithm}"] == put[f"Checksum{algorithm}"]
        assert sha256(read["Body"].read()) == sha256(data)
    assert [f["sha256"] for f in s3.files("sha256.bin")] == [sha256(data)]
    s3.settle()


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_a_multipart_upload_with_trailers(s3: S3Daemon, client: Any) -> None:
    """upload_fileobj over TLS sends each part aws-chunked with its CRC32;
    the parts keep their checksums and the object is the source."""
    client.create_bucket(Bucket="trailer-parts")
    seen = payloads(client, "UploadPart")
    data = os.urandom(24 * MiB)
    config = TransferConfig(multipart_threshold=8 * MiB, multipart_chunksize=8 * MiB)
    client.upload_fileobj(io.BytesIO(data), "trailer-parts", "parts.bin", Config=config)
    got = client.get_object(Bucket="trailer-parts", Key="parts.bin")
    assert sha256(got["Body"].read()) == sha256(data)
    assert got["ETag"].endswith('-3"')
    assert seen == [b"STREAMING-UNSIGNED-PAYLOAD-TRAILER"] * 3
    upload_id = client.create_multipart_upload(
        Bucket="trailer-parts", Key="listed.bin", ChecksumAlgorithm="CRC32"
    )["UploadId"]
    part = data[: 5 * MiB]
    sent = client.upload_part(
        Bucket="trailer-parts",
        Key="listed.bin",
        UploadId=upload_id,
        PartNumber=1,
        Body=part,
        ChecksumAlgorithm="CRC32",
    )
    assert sent["ChecksumCRC32"] == crc32(part)
    parts = client.list_parts(
        Bucket="trailer-parts", Key="listed.bin", UploadId=upload_id
    )["Parts"]
    assert [(p["PartNumber"], p["ChecksumCRC32"]) for p in parts] == [(1, crc32(part))]
    client.abort_multipart_upload(
        Bucket="trailer-parts", Key="listed.bin", UploadId=upload_id
    )
    s3.settle()
