"""S3's checksum algorithms: each one's digest is the one botocore computes
(the AWS SDK for Python, which uses zlib and the AWS common runtime) and
the one the published check values give, whatever slices the bytes come in;
values are read from headers as S3 reads them; and what a body vouched for
in its headers is verified against the digests its write computed."""

from __future__ import annotations

import base64
import hashlib
import random

import pytest
from botocore import httpchecksum
from twisted.web.http_headers import Headers

from uploadd.api.s3.checksums import (
    ALGORITHMS,
    BodyChecks,
    Checksum,
    algorithm_of,
    decode_value,
    header_of,
)
from uploadd.api.s3.errors import S3Error

#: The CRC catalogue's check value of each CRC: its digest of b"123456789".
CHECK_VALUES = {
    "CRC32": 0xCBF43926,
    "CRC32C": 0xE3069283,
    "CRC64NVME": 0xAE8B14860A799888,
}

BOTOCORE = {
    "CRC32": httpchecksum.Crc32Checksum,
    "CRC32C": httpchecksum.CrtCrc32cChecksum,
    "CRC64NVME": httpchecksum.CrtCrc64NvmeChecksum,
    "SHA1": httpchecksum.Sha1Checksum,
    "SHA256": httpchecksum.Sha256Checksum,
}


@pytest.mark.parametrize("algorithm", sorted(CHECK_VALUES))
def test_crcs_give_the_catalogue_check_values(algorithm: str) -> None:
    """Each CRC of "123456789" is its catalogue check value, big-endian."""
    checksum = Checksum(algorithm)
    checksum.update(b"123456789")
    assert checksum.digest() == CHECK_VALUES[algorithm].to_bytes(checksum.size, "big")


def test_crc32_of_hello_is_what_s3_answers() -> None:
    """CRC32 of ``hello\\n`` is ``NjowIA==``, as S3 answers it."""
    checksum = Checksum("crc32")
    checksum.update(b"hello\n")
    assert checksum.b64digest() == "NjowIA=="


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_digests_match_botocore_in_any_slices(algorithm: str) -> None:
    """Updated with random slices of random bytes, each checksum ends with
    the digest botocore's own implementation computes over the whole."""
    rng = random.Random(algorithm)
    data = rng.randbytes(300_000)
    ours = Checksum(algorithm)
    pos = 0
    while pos < len(data):
        step = rng.choice((1, 7, 4096, 65_536, 100_003))
        ours.update(data[pos : pos + step])
        pos += step
    theirs = BOTOCORE[algorithm]()
    theirs.update(data)
    assert ours.digest() == theirs.digest()
    assert ours.b64digest() == theirs.b64digest()


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_empty_and_copied_checksums(algorithm: str) -> None:
    """Nothing hashed gives botocore's empty digest; a copy runs on alone."""
    ours, theirs = Checksum(algorithm), BOTOCORE[algorithm]()
    assert ours.digest() == theirs.digest()
    ours.update(b"abc")
    twin = ours.copy()
    twin.update(b"def")
    theirs.update(b"abc")
    assert ours.digest() == theirs.digest()
    theirs.update(b"def")
    assert twin.digest() == theirs.digest()


def test_names_and_headers() -> None:
    """Algorithms are known by S3's names and by their header names, any case."""
    assert header_of("CRC64NVME") == "x-amz-checksum-crc64nvme"
    assert algorithm_of("X-Amz-Checksum-Crc32c") == "CRC32C"
    assert algorithm_of("sha256") == "SHA256"
    assert algorithm_of("md5") is None
    assert algorithm_of("x-amz-checksum-xxhash64") is None
    with pytest.raises(ValueError):
        Checksum("MD5")


def test_values_must_be_base64_of_the_digest_size() -> None:
    """A value that is not base64 of the algorithm's digest size is S3's
    InvalidRequest naming the header."""
    assert decode_value("CRC32", " NjowIA== ") == bytes.fromhex("363a3020")
    for wrong in ("NjowIA", "NjowIAA=", "not base64!", ""):
        with pytest.raises(S3Error) as caught:
            decode_value("CRC32", wrong)
        assert caught.value.code == "InvalidRequest"
        assert "x-amz-checksum-crc32" in caught.value.message


BODY = b"the body\n"


def digests(body: bytes = BODY) -> tuple[str, str]:
    return hashlib.sha256(body).hexdigest(), hashlib.md5(body).hexdigest()


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def checks(payload: str, **fields: str) -> BodyChecks:
    headers = Headers()
    for name, value in fields.items():
        headers.addRawHeader(name.replace("_", "-").encode(), value.encode())
    return BodyChecks.of(headers, payload)


def run(body_checks: BodyChecks, body: bytes = BODY) -> dict[str, bytes]:
    """Verify ``body`` as the S3 layer will: its check ran alongside."""
    hasher = body_checks.hasher()
    if hasher is not None:
        hasher.update(body)
    sha256, md5 = digests(body)
    return dict(body_checks.verify(sha256, md5, hasher.digest() if hasher else None))


def test_a_body_matching_everything_it_vouched_for_passes() -> None:
    """The signed sha256, Content-MD5 and a checksum header all hold: the
    checksum is returned (to be stored and echoed)."""
    crc = Checksum("CRC32C")
    crc.update(BODY)
    found = checks(
        hashlib.sha256(BODY).hexdigest(),
        content_md5=b64(hashlib.md5(BODY).digest()),
        x_amz_checksum_crc32c=crc.b64digest(),
        x_amz_sdk_checksum_algorithm="CRC32C",
    )
    assert run(found) == {"CRC32C": crc.digest()}
    assert run(checks("UNSIGNED-PAYLOAD")) == {}


def test_a_body_other_than_its_signed_sha256_is_refused() -> None:
    """A body whose sha256 is not the signed one: XAmzContentSHA256Mismatch."""
    with pytest.raises(S3Error) as caught:
        run(checks(hashlib.sha256(b"other").hexdigest()))
    assert caught.value.code == "XAmzContentSHA256Mismatch"
    assert caught.value.status == 400


def test_content_md5_is_checked_and_must_be_an_md5() -> None:
    """A wrong Content-MD5 is BadDigest; one that is no md5 is InvalidDigest
    before the body is read."""
    with pytest.raises(S3Error) as caught:
        run(checks("UNSIGNED-PAYLOAD", content_md5=b64(hashlib.md5(b"x").digest())))
    assert caught.value.code == "BadDigest"
    with pytest.raises(S3Error) as caught:
        checks("UNSIGNED-PAYLOAD", content_md5="abc")
    assert caught.value.code == "InvalidDigest"


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_a_wrong_checksum_header_is_bad_digest(algorithm: str) -> None:
    """A checksum header the body does not match is BadDigest naming it."""
    wrong = Checksum(algorithm)
    wrong.update(b"something else")
    found = checks("UNSIGNED-PAYLOAD", **{header_of(algorithm): wrong.b64digest()})
    with pytest.raises(S3Error) as caught:
        run(found)
    assert caught.value.code == "BadDigest"
    assert caught.value.message == (
        f"The {algorithm} you specified did not match the calculated checksum."
    )


def test_checksum_headers_are_read_as_s3_reads_them() -> None:
    """Two checksum headers, a malformed one, an algorithm uploadd does not
    compute, or an SDK algorithm without a value are InvalidRequest before
    the body is read; an SDK algorithm naming another than the value's is
    BadDigest, as S3 documents."""
    crc = Checksum("CRC32")
    crc.update(BODY)
    value = crc.b64digest()
    bad = [
        {"x_amz_checksum_crc32": value, "x_amz_checksum_sha1": "AAAA"},
        {"x_amz_checksum_sha256": "AAAA"},
        {"x_amz_checksum_xxhash64": "AAAAAAAAAAA="},
        {"x_amz_sdk_checksum_algorithm": "MD5"},
        {"x_amz_sdk_checksum_algorithm": "CRC32"},
    ]
    for fields in bad:
        with pytest.raises(S3Error) as caught:
            checks("UNSIGNED-PAYLOAD", **fields)
        assert caught.value.code == "InvalidRequest", fields
    with pytest.raises(S3Error) as caught:
        checks(
            "UNSIGNED-PAYLOAD",
            x_amz_checksum_crc32=value,
            x_amz_sdk_checksum_algorithm="SHA1",
        )
    assert caught.value.code == "BadDigest"
    # Headers about checksums that carry no value are no checks.
    assert (
        checks(
            "UNSIGNED-PAYLOAD",
            x_amz_checksum_type="FULL_OBJECT",
            x_amz_checksum_mode="ENABLED",
        )
        == BodyChecks()
    )
