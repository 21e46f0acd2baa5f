"""The aws-chunked body coding: AWS's published chunked upload decodes with
its published signatures, botocore's checksum-trailer bodies decode, both
in slices of any size, the decoded bytes are passed on as they arrive, and
every way a body can be wrong fails with S3's code."""

from __future__ import annotations

import base64
import hashlib
import hmac
import random
from pathlib import Path

import attrs
import pytest

from noded.threads import run_inline
from tests.unit.s3_signing import AKID, client, sent
from tests.unit.test_sink import Flow, result
from uploadd.api.s3.body import ChunkedSink
from uploadd.api.s3.checksums import Checksum
from uploadd.api.s3.chunked import MAX_LINE, AwsChunked, Decoded
from uploadd.api.s3.errors import STATUS, S3Error
from uploadd.api.s3.signing import signing_key
from uploadd.api.s3.sigv4 import (
    STREAMING_PAYLOAD,
    STREAMING_PAYLOAD_TRAILER,
    STREAMING_UNSIGNED_TRAILER,
    Verified,
)
from uploadd.ingest.blob import BlobFile
from uploadd.ingest.sink import FlowLimits, UploadSink

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
SEED = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
CHUNK_1 = "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648"
CHUNK_2 = "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497"
FINAL = "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9"
#: The AWS common runtime's signature of the trailers first:1st, second:2nd
#: and third:3rd after the example's final chunk.
TRAILER_VECTOR = "df5735bd9f3295cd9386572292562fefc93ba94e80a0a1ddcbd652c4e0a75e6c"
EMPTY = hashlib.sha256(b"").hexdigest()

#: The AWS example's request, as verifying its headers leaves it.
EXAMPLE = Verified(
    access_key_id=AKID,
    region="us-east-1",
    date="20130524",
    amz_date="20130524T000000Z",
    scope="20130524/us-east-1/s3/aws4_request",
    signing_key=signing_key(SECRET, "20130524", "us-east-1"),
    seed_signature=SEED,
    payload=STREAMING_PAYLOAD,
    decoded_length=66560,
)
EXAMPLE_DATA = b"a" * 66560
EXAMPLE_BODY = (
    f"10000;chunk-signature={CHUNK_1}\r\n".encode()
    + b"a" * 65536
    + f"\r\n400;chunk-signature={CHUNK_2}\r\n".encode()
    + b"a" * 1024
    + f"\r\n0;chunk-signature={FINAL}\r\n\r\n".encode()
)


@attrs.define
class Run:
    """A decoder and what it passed on and reported."""

    decoder: AwsChunked
    out: list[bytes] = attrs.field(factory=list)
    errors: list[S3Error] = attrs.field(factory=list)

    @property
    def data(self) -> bytes:
        return b"".join(self.out)


def decoder(verified: Verified) -> Run:
    run = Run(None)  # type: ignore[arg-type]
    run.decoder = AwsChunked(verified, run.out.append, run.errors.append)
    return run


def feed(verified: Verified, body: bytes, cuts: list[int] | None = None) -> Run:
    """Decode ``body`` written in the slices ``cuts`` (offsets) makes."""
    run = decoder(verified)
    start = 0
    for cut in [*(cuts or []), len(body)]:
        run.decoder.write(body[start:cut])
        start = cut
    return run


def decoded(
    verified: Verified, body: bytes, cuts: list[int] | None = None
) -> tuple[bytes, Decoded]:
    run = feed(verified, body, cuts)
    result = run.decoder.finish()
    assert not run.errors
    return run.data, result


def failure(verified: Verified, body: bytes, code: str) -> Run:
    """Decode ``body``, which must fail with ``code`` (reported once)."""
    run = feed(verified, body)
    with pytest.raises(S3Error) as caught:
        run.decoder.finish()
    assert caught.value.code == code, caught.value
    assert caught.value.status == STATUS[code]
    assert run.errors == [caught.value]
    return run


# -- an independent signer of chunked bodies, for bodies of any shape -----------


def hmac_hex(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def signed_body(
    verified: Verified,
    data: bytes,
    size: int,
    trailer: tuple[str, str] | None = None,
) -> bytes:
    """``data`` in signed chunks of ``size``, as the AWS documentation
    describes them; with ``trailer``, a signed trailer after them."""
    key, previous, parts = verified.signing_key, verified.seed_signature, []
    pieces = [data[i : i + size] for i in range(0, len(data), size)] + [b""]
    for piece in pieces:
        previous = hmac_hex(
            key,
            "\n".join(
                (
                    "AWS4-HMAC-SHA256-PAYLOAD",
                    verified.amz_date,
                    verified.scope,
                    previous,
                    EMPTY,
                    hashlib.sha256(piece).hexdigest(),
                )
            ),
        )
        parts.append(f"{len(piece):x};chunk-signature={previous}\r\n".encode() + piece)
        if piece:
            parts.append(b"\r\n")
    if trailer is not None:
        name, value = trailer
        text = f"{name}:{value}\n"
        signature = hmac_hex(
            key,
            "\n".join(
                (
                    "AWS4-HMAC-SHA256-TRAILER",
                    verified.amz_date,
                    verified.scope,
                    previous,
                    hashlib.sha256(text.encode()).hexdigest(),
                )
            ),
        )
        parts.append(
            f"{name}:{value}\r\nx-amz-trailer-signature:{signature}\r\n".encode()
        )
    parts.append(b"\r\n")
    return b"".join(parts)


def checksum_of(algorithm: str, data: bytes) -> str:
    checksum = Checksum(algorithm)
    checksum.update(data)
    return checksum.b64digest()


def signed_trailer(data: bytes) -> Verified:
    return attrs.evolve(
        EXAMPLE,
        payload=STREAMING_PAYLOAD_TRAILER,
        decoded_length=len(data),
        trailers=("x-amz-checksum-crc32c",),
    )


# -- AWS's published example -------------------------------------------------------


def test_the_aws_chunked_example_decodes_with_its_signatures() -> None:
    """AWS's 66560 bytes of 'a' in chunks of 65536, 1024 and 0, signed with
    the published signatures, decode whole."""
    data, result = decoded(EXAMPLE, EXAMPLE_BODY)
    assert data == EXAMPLE_DATA
    assert result == Decoded(66560)


def test_the_published_signatures_chain_from_the_seed() -> None:
    """Each published chunk signature is the previous one's successor, and
    the AWS common runtime's trailer signature follows the final chunk."""
    a = hashlib.sha256
    assert EXAMPLE.chunk_signature(SEED, a(b"a" * 65536).hexdigest()) == CHUNK_1
    assert EXAMPLE.chunk_signature(CHUNK_1, a(b"a" * 1024).hexdigest()) == CHUNK_2
    assert EXAMPLE.chunk_signature(CHUNK_2, EMPTY) == FINAL
    trailers = b"first:1st\nsecond:2nd\nthird:3rd\n"
    assert EXAMPLE.trailer_signature(FINAL, a(trailers).hexdigest()) == TRAILER_VECTOR


def test_the_example_decodes_in_random_slices() -> None:
    """However the body is sliced (one byte to many KiB), it decodes the same."""
    rng = random.Random(5)
    for _ in range(20):
        cuts = sorted(rng.sample(range(1, len(EXAMPLE_BODY)), rng.randint(1, 200)))
        data, result = decoded(EXAMPLE, EXAMPLE_BODY, cuts)
        assert data == EXAMPLE_DATA and result.length == 66560


def test_data_is_passed_on_as_it_arrives() -> None:
    """Bytes of a chunk reach the inner write as soon as they come, before
    the chunk ends; nothing is held back but a header line."""
    run = decoder(EXAMPLE)
    header = f"10000;chunk-signature={CHUNK_1}\r\n".encode()
    run.decoder.write(header[:10])
    run.decoder.write(header[10:] + b"a" * 1000)
    assert run.data == b"a" * 1000
    run.decoder.write(b"a" * 5000)
    assert len(run.data) == 6000
    assert run.decoder.decoded == 6000 and not run.errors


# -- small bodies at every split point -----------------------------------------------


def small_bodies() -> list[tuple[str, Verified, bytes, bytes]]:
    """Bodies of every mode, small enough to split at every byte."""
    data = b"hello, chunks\n" * 3
    signed = attrs.evolve(EXAMPLE, decoded_length=len(data))
    crc = checksum_of("CRC32C", data)
    s3 = client("https://127.0.0.1:9000")
    boto = sent(
        s3.put_object, Bucket="b", Key="k", Body=data, ChecksumAlgorithm="CRC32C"
    )
    return [
        ("signed", signed, signed_body(signed, data, 16), data),
        (
            "signed trailer",
            signed_trailer(data),
            signed_body(signed_trailer(data), data, 16, ("x-amz-checksum-crc32c", crc)),
            data,
        ),
        ("botocore unsigned trailer", boto.verify(), boto.body, data),
        (
            "empty",
            attrs.evolve(EXAMPLE, decoded_length=0),
            signed_body(attrs.evolve(EXAMPLE, decoded_length=0), b"", 16),
            b"",
        ),
    ]


@pytest.mark.parametrize("case", range(4))
def test_small_bodies_decode_split_anywhere(case: int) -> None:
    """A body cut at any one byte, or written a byte at a time, decodes to
    its data, and a trailer's checksum comes back verified."""
    name, verified, body, data = small_bodies()[case]
    expected = decoded(verified, body)[1]
    if verified.trailers:
        assert expected.checksums == {
            "CRC32C": base64.b64decode(checksum_of("CRC32C", data))
        }
    for cut in range(len(body) + 1):
        assert decoded(verified, body, [cut]) == (data, expected), (name, cut)
    assert decoded(verified, body, list(range(1, len(body)))) == (data, expected)


# -- botocore's checksum trailers ---------------------------------------------------


@pytest.mark.parametrize(
    "algorithm", ["CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256"]
)
def test_botocore_trailer_bodies_decode_with_their_checksum(algorithm: str) -> None:
    """boto3's default upload over TLS (unsigned, a checksum trailer, 1 MiB
    chunks) of 3 MiB and a bit decodes in random slices, its checksum
    verified."""
    data = random.Random(algorithm).randbytes(3 * 1024 * 1024 + 17)
    s3 = client("https://127.0.0.1:9000")
    request = sent(
        s3.put_object, Bucket="b", Key="k", Body=data, ChecksumAlgorithm=algorithm
    )
    verified = request.verify()
    assert verified.payload == STREAMING_UNSIGNED_TRAILER
    rng = random.Random(1)
    cuts = sorted(rng.sample(range(1, len(request.body)), 300))
    out, result = decoded(verified, request.body, cuts)
    assert out == data
    assert result.length == len(data)
    assert base64.b64encode(result.checksums[algorithm]).decode() == checksum_of(
        algorithm, data
    )


def test_a_large_signed_body_decodes() -> None:
    """A signed body of 64 KiB chunks with a signed SHA256 trailer, 2 MiB
    and a bit, decodes in random slices."""
    data = random.Random(2).randbytes(2 * 1024 * 1024 + 3)
    verified = attrs.evolve(signed_trailer(data), trailers=("x-amz-checksum-sha256",))
    body = signed_body(
        verified, data, 65536, ("x-amz-checksum-sha256", checksum_of("SHA256", data))
    )
    cuts = sorted(random.Random(3).sample(range(1, len(body)), 500))
    out, result = decoded(verified, body, cuts)
    assert out == data and set(result.checksums) == {"SHA256"}


# -- what fails, and how -------------------------------------------------------------


def test_tampered_chunk_data_fails_the_chunk_signature() -> None:
    """One byte of the second chunk changed: SignatureDoesNotMatch when that
    chunk ends, and nothing after it is passed on."""
    body = bytearray(EXAMPLE_BODY)
    body[65536 + 200] = ord("b")
    run = failure(EXAMPLE, bytes(body), "SignatureDoesNotMatch")
    assert len(run.data) == 65536 + 1024


def test_tampered_signatures_fail() -> None:
    """A changed chunk signature or final signature: SignatureDoesNotMatch."""
    for signature in (CHUNK_1, CHUNK_2, FINAL):
        body = EXAMPLE_BODY.replace(signature.encode(), signature[:-1].encode() + b"0")
        failure(EXAMPLE, body, "SignatureDoesNotMatch")


def test_chunks_in_another_order_fail() -> None:
    """The chain fixes the order: chunks swapped fail their signatures."""
    data = b"x" * 20 + b"y" * 20
    verified = attrs.evolve(EXAMPLE, decoded_length=40)
    body = signed_body(verified, data, 20)
    first, second = body.split(b"\r\n")[0:2], body.split(b"\r\n")[2:4]
    swapped = b"\r\n".join(second + first) + b"\r\n" + body.split(b"\r\n", 4)[4]
    failure(verified, swapped, "SignatureDoesNotMatch")


def test_an_unsigned_chunk_in_a_signed_body_fails() -> None:
    """A chunk without chunk-signature in a signed body: SignatureDoesNotMatch."""
    failure(EXAMPLE, b"10000\r\n" + EXAMPLE_BODY[88:], "SignatureDoesNotMatch")


def test_a_body_without_its_final_chunk_is_incomplete() -> None:
    """Cut before the final 0-length chunk, or inside a chunk's data:
    IncompleteBody."""
    final = EXAMPLE_BODY.index(b"0;chunk-signature=" + FINAL.encode())
    failure(EXAMPLE, EXAMPLE_BODY[:final], "IncompleteBody")
    failure(EXAMPLE, EXAMPLE_BODY[:66000], "IncompleteBody")
    failure(EXAMPLE, b"", "IncompleteBody")


def test_a_decoded_length_other_than_declared_fails() -> None:
    """Fewer bytes than x-amz-decoded-content-length: IncompleteBody; more:
    InvalidRequest as soon as a chunk header says so."""
    failure(attrs.evolve(EXAMPLE, decoded_length=66561), EXAMPLE_BODY, "IncompleteBody")
    run = failure(
        attrs.evolve(EXAMPLE, decoded_length=66559), EXAMPLE_BODY, "InvalidRequest"
    )
    assert len(run.data) == 65536


def test_a_wrong_trailer_checksum_is_bad_digest() -> None:
    """botocore's body with another CRC32 in its trailer: BadDigest; one
    that is no CRC32 at all: InvalidRequest."""
    s3 = client("https://127.0.0.1:9000")
    request = sent(
        s3.put_object, Bucket="b", Key="k", Body=b"hello", ChecksumAlgorithm="CRC32"
    )
    verified = request.verify()
    right = checksum_of("CRC32", b"hello").encode()
    wrong = checksum_of("CRC32", b"hellO").encode()
    assert right in request.body
    run = failure(verified, request.body.replace(right, wrong), "BadDigest")
    assert (
        run.errors[0].message
        == "The CRC32 you specified did not match the calculated checksum."
    )
    failure(verified, request.body.replace(right, b"AAAA"), "InvalidRequest")


def test_trailers_must_be_the_declared_ones() -> None:
    """A declared trailer that does not come, or one that was not declared:
    InvalidRequest."""
    s3 = client("https://127.0.0.1:9000")
    request = sent(
        s3.put_object, Bucket="b", Key="k", Body=b"hello", ChecksumAlgorithm="CRC32"
    )
    verified = request.verify()
    failure(verified, b"5\r\nhello\r\n0\r\n\r\n", "InvalidRequest")
    other = attrs.evolve(verified, trailers=())
    failure(other, request.body, "InvalidRequest")


def test_signed_trailers_are_checked() -> None:
    """A signed trailer body whose trailer signature, or checksum under it,
    was changed fails SignatureDoesNotMatch; one without the signature too;
    a right signature over a wrong checksum is BadDigest."""
    data = b"z" * 100
    verified = signed_trailer(data)
    good = checksum_of("CRC32C", data)
    body = signed_body(verified, data, 64, ("x-amz-checksum-crc32c", good))
    assert decoded(verified, body)[0] == data
    signature = body.split(b"x-amz-trailer-signature:")[1][:64]
    failure(verified, body.replace(signature, b"0" * 64), "SignatureDoesNotMatch")
    bad = checksum_of("CRC32C", b"other")
    failure(
        verified, body.replace(good.encode(), bad.encode()), "SignatureDoesNotMatch"
    )
    unsigned = body.replace(b"x-amz-trailer-signature:" + signature + b"\r\n", b"")
    failure(verified, unsigned, "SignatureDoesNotMatch")
    resigned = signed_body(verified, data, 64, ("x-amz-checksum-crc32c", bad))
    failure(verified, resigned, "BadDigest")


@pytest.mark.parametrize(
    "body",
    [
        b"zz;chunk-signature=" + CHUNK_1.encode() + b"\r\n",
        b"10000;chunk-signature=" + CHUNK_1.encode() + b"\n",
        b"1" * (MAX_LINE + 1),
        EXAMPLE_BODY.replace(b"a\r\n400;", b"aX\n400;"),
        EXAMPLE_BODY + b"extra",
        EXAMPLE_BODY[:-2] + b"x-amz-checksum-crc32:AAAAAA==\r\n\r\n",
    ],
)
def test_malformed_framing_is_an_invalid_request(body: bytes) -> None:
    """A size that is not hex, a line not ended by CRLF, a line too long,
    data not followed by CRLF, bytes after the end, trailers in a body
    without them: InvalidRequest."""
    failure(EXAMPLE, body, "InvalidRequest")


def test_nothing_is_passed_on_after_a_failure() -> None:
    """Once a body has failed, further writes are dropped and finish raises
    the same error; on_error heard it once."""
    run = feed(EXAMPLE, b"zz\r\n")
    run.decoder.write(EXAMPLE_BODY)
    assert run.data == b"" and len(run.errors) == 1
    with pytest.raises(S3Error) as caught:
        run.decoder.finish()
    assert caught.value is run.errors[0]


# -- in front of the upload's sink -------------------------------------------------


def chunked_sink(path: Path, verified: Verified) -> tuple[ChunkedSink, list[S3Error]]:
    rejected: list[S3Error] = []
    upload = UploadSink(
        BlobFile(path, fsync=False),
        run_inline,
        Flow(),
        FlowLimits(high_water=1 << 20, low_water=1 << 18, max_size=None),
    )
    return ChunkedSink(upload, verified, rejected.append), rejected


def test_the_sink_stores_the_decoded_body(tmp_path: Path) -> None:
    """Through a ChunkedSink the file holds the decoded bytes, hashed as
    such, and the decoded trailer checksums are kept."""
    s3 = client("https://127.0.0.1:9000")
    data = random.Random(9).randbytes(200_000)
    request = sent(
        s3.put_object, Bucket="b", Key="k", Body=data, ChecksumAlgorithm="CRC32"
    )
    body, rejected = chunked_sink(tmp_path / "blob", request.verify())
    for start in range(0, len(request.body), 7000):
        body.write(request.body[start : start + 7000])
    digest = result(body.complete())
    assert (tmp_path / "blob").read_bytes() == data
    assert digest.sha256 == hashlib.sha256(data).hexdigest()
    assert digest.size == len(data) and body.received == len(request.body)
    assert body.decoded is not None and set(body.decoded.checksums) == {"CRC32"}
    assert rejected == []


def test_a_body_failing_midway_is_discarded_and_rejected(tmp_path: Path) -> None:
    """A chunk whose signature fails: the staging file is removed and the
    request is answered with SignatureDoesNotMatch at once."""
    body, rejected = chunked_sink(tmp_path / "blob", EXAMPLE)
    tampered = bytearray(EXAMPLE_BODY)
    tampered[100] = ord("b")
    body.write(bytes(tampered))
    assert [error.code for error in rejected] == ["SignatureDoesNotMatch"]
    assert not (tmp_path / "blob").exists()


def test_a_body_failing_at_its_end_raises_from_complete(tmp_path: Path) -> None:
    """A body that ends early: complete raises IncompleteBody for the
    handler to answer, and the staging file is removed."""
    body, rejected = chunked_sink(tmp_path / "blob", EXAMPLE)
    body.write(EXAMPLE_BODY[:-40])
    with pytest.raises(S3Error) as caught:
        body.complete()
    assert caught.value.code == "IncompleteBody"
    assert rejected == []
    assert not (tmp_path / "blob").exists()
