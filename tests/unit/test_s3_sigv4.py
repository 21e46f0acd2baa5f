"""Signature Version 4 as S3 verifies it: requests boto3 signs (odd keys,
queries, unsigned and streaming payloads, presigned URLs) verify, the AWS
documentation's published examples verify with their published
signatures, and every way a request can be wrong fails with S3's code."""

from __future__ import annotations

import calendar
import time
from typing import Any

import pytest
from twisted.web.http_headers import Headers

from tests.unit.s3_signing import AKID, REGION, SECRET, Sent, client, resolve, sent
from uploadd.api.s3.errors import STATUS, S3Error
from uploadd.api.s3.signing import canonical_query, canonical_uri, decode_query
from uploadd.api.s3.sigv4 import (
    STREAMING_PAYLOAD,
    STREAMING_UNSIGNED_TRAILER,
    UNSIGNED_PAYLOAD,
    Verified,
    has_credentials,
    verify_request,
)

EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#: The time of every example in the AWS documentation.
EXAMPLE_TIME = float(calendar.timegm((2013, 5, 24, 0, 0, 0)))
EXAMPLE_HOST = "examplebucket.s3.amazonaws.com"


def refused(request: Sent, code: str, now: float | None = None, **kw: Any) -> S3Error:
    """The S3Error verifying ``request`` fails with, which must be ``code``."""
    with pytest.raises(S3Error) as caught:
        request.verify(now, **kw)
    assert caught.value.code == code, caught.value
    assert caught.value.status == STATUS[code]
    return caught.value


def headers(**fields: str) -> Headers:
    found = Headers()
    for name, value in fields.items():
        found.addRawHeader(name.replace("_", "-").encode(), value.encode())
    return found


def example(
    method: str,
    target: bytes,
    signature: str,
    host: str = EXAMPLE_HOST,
    **fields: str,
) -> Sent:
    """A request of the AWS examples, signed with ``signature``."""
    found = headers(host=host, x_amz_date="20130524T000000Z", **fields)
    signed = ";".join(sorted(n.decode().lower() for n, _ in found.getAllRawHeaders()))
    found.addRawHeader(
        b"authorization",
        f"AWS4-HMAC-SHA256 Credential={AKID}/20130524/us-east-1/s3/aws4_request,"
        f"SignedHeaders={signed},Signature={signature}".encode(),
    )
    return Sent(method, target, found, b"")


# -- AWS's published examples ---------------------------------------------------


def test_the_aws_get_object_example_verifies() -> None:
    """GET Object with a Range header: AWS's published signature holds."""
    request = example(
        "GET",
        b"/test.txt",
        "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
        range="bytes=0-9",
        x_amz_content_sha256=EMPTY,
    )
    verified = request.verify(EXAMPLE_TIME)
    assert verified.access_key_id == AKID
    assert verified.scope == "20130524/us-east-1/s3/aws4_request"
    assert verified.payload == EMPTY == verified.payload_sha256
    assert not verified.streaming
    # One byte of a signed header changed: the signature no longer holds.
    refused(
        request.with_header("range", "bytes=0-8"), "SignatureDoesNotMatch", EXAMPLE_TIME
    )


def test_the_aws_put_object_example_verifies() -> None:
    """PUT Object of ``test$file.text`` (``$`` raw on the wire, encoded in
    the canonical URI) with a Date header and a storage class."""
    request = example(
        "PUT",
        b"/test$file.text",
        "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd",
        date="Fri, 24 May 2013 00:00:00 GMT",
        x_amz_storage_class="REDUCED_REDUNDANCY",
        x_amz_content_sha256=(
            "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072"
        ),
    )
    assert request.verify(EXAMPLE_TIME).payload.startswith("44ce7dd6")
    # The same path sent encoded is the same canonical URI.
    assert request.with_target(b"/test%24file.text").verify(EXAMPLE_TIME)


@pytest.mark.parametrize(
    ("target", "signature"),
    [
        (
            b"/?lifecycle",
            "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543",
        ),
        (
            b"/?max-keys=2&prefix=J",
            "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7",
        ),
        (
            b"/?prefix=J&max-keys=2",
            "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7",
        ),
    ],
)
def test_the_aws_bucket_examples_verify(target: bytes, signature: str) -> None:
    """GET Bucket lifecycle (a query name without a value) and GET Bucket
    (the query sorted whatever order it came in)."""
    request = example("GET", target, signature, x_amz_content_sha256=EMPTY)
    assert request.verify(EXAMPLE_TIME).payload == EMPTY


PRESIGNED_EXAMPLE = (
    b"/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256"
    b"&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"
    b"&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
    b"&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
)


def test_the_aws_presigned_example_verifies_until_it_expires() -> None:
    """The published presigned GET holds for its 86400 seconds, then is
    AccessDenied "Request has expired"."""
    request = Sent("GET", PRESIGNED_EXAMPLE, headers(host=EXAMPLE_HOST), b"")
    verified = request.verify(EXAMPLE_TIME + 86400)
    assert verified.presigned and verified.payload == UNSIGNED_PAYLOAD
    error = refused(request, "AccessDenied", EXAMPLE_TIME + 86401)
    assert error.message == "Request has expired"
    assert error.details["X-Amz-Expires"] == "86400"


AWS_CHUNKED_FIELDS = {
    "x_amz_storage_class": "REDUCED_REDUNDANCY",
    "x_amz_content_sha256": STREAMING_PAYLOAD,
    "content_encoding": "aws-chunked",
    "x_amz_decoded_content_length": "66560",
    "content_length": "66824",
}
SEED_SIGNATURE = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"


def aws_chunked_example() -> Sent:
    """The headers of AWS's chunked upload example."""
    return example(
        "PUT",
        b"/examplebucket/chunkObject.txt",
        SEED_SIGNATURE,
        host="s3.amazonaws.com",
        **AWS_CHUNKED_FIELDS,
    )


def test_the_aws_chunked_upload_headers_verify() -> None:
    """AWS's chunked upload example: its seed signature holds, and the
    body is a signed aws-chunked one of 66560 decoded bytes."""
    verified = aws_chunked_example().verify(EXAMPLE_TIME)
    assert verified.seed_signature == SEED_SIGNATURE
    assert verified.streaming and verified.payload == STREAMING_PAYLOAD
    assert verified.decoded_length == 66560
    assert verified.payload_sha256 is None


def test_a_signed_stream_needs_its_decoded_length() -> None:
    """A signed streaming body without x-amz-decoded-content-length is
    MissingContentLength; a malformed one InvalidArgument."""
    request = aws_chunked_example()
    refused(
        request.without_header("x-amz-decoded-content-length"),
        "MissingContentLength",
        EXAMPLE_TIME,
    )
    refused(
        request.with_header("x-amz-decoded-content-length", "-1"),
        "InvalidArgument",
        EXAMPLE_TIME,
    )


# -- requests boto3 signs ----------------------------------------------------------

KEYS = [
    "plain.txt",
    "with space/and+plus",
    "per%cent and ~tilde",
    "unicodé/ключ/日本.txt",
    "double//slash",
    "/leading-slash",
    "trailing/",
    "quote'paren(star)*bang!",
    "question?hash#amp&eq=semi;colon:at@",
    "dots/../and/./more",
]


@pytest.mark.parametrize("key", KEYS)
def test_boto3_requests_on_odd_keys_verify(key: str) -> None:
    """GET, PUT, HEAD and DELETE of keys that stress the URI encoding verify
    as boto3 signed them, and name the signer and the signed payload."""
    s3 = client()
    for request in (
        sent(s3.get_object, Bucket="bucket", Key=key),
        sent(s3.head_object, Bucket="bucket", Key=key),
        sent(s3.put_object, Bucket="bucket", Key=key, Body=b"data"),
        sent(s3.delete_object, Bucket="bucket", Key=key),
    ):
        verified = request.verify()
        assert verified.access_key_id == AKID
        assert verified.region == REGION
        assert verified.payload_sha256 is not None
        assert (
            verified.seed_signature
            in request.headers.getRawHeaders(b"authorization", [b""])[0].decode()
        )


def test_a_request_for_another_key_does_not_verify() -> None:
    """The signature covers the path: the same request for another key is
    SignatureDoesNotMatch, with S3's diagnostic details."""
    request = sent(client().get_object, Bucket="bucket", Key="a b")
    error = refused(request.with_target(b"/bucket/a%20c"), "SignatureDoesNotMatch")
    assert error.details["AWSAccessKeyId"] == AKID
    assert error.details["CanonicalRequest"].startswith("GET\n/bucket/a%20c\n")
    assert error.details["StringToSign"].startswith("AWS4-HMAC-SHA256\n")


@pytest.mark.parametrize(
    ("operation", "params"),
    [
        (
            "list_objects_v2",
            {"Prefix": "a b", "ContinuationToken": "x+y/z==", "Delimiter": "/"},
        ),
        ("list_objects", {"Prefix": "ünï", "Marker": "m~n", "MaxKeys": 7}),
        ("list_multipart_uploads", {"Prefix": "p"}),
        ("create_multipart_upload", {"Key": "big file"}),
        ("upload_part", {"Key": "k", "PartNumber": 3, "UploadId": "x", "Body": b"p"}),
        ("list_parts", {"Key": "k", "UploadId": "id with spaces+plus"}),
        ("abort_multipart_upload", {"Key": "k", "UploadId": "x"}),
        (
            "delete_objects",
            {"Delete": {"Objects": [{"Key": "a"}, {"Key": "b c"}]}},
        ),
        ("copy_object", {"Key": "dst", "CopySource": "bucket/src key"}),
        ("head_bucket", {}),
        ("create_bucket", {}),
    ],
)
def test_boto3_requests_with_queries_verify(operation: str, params: Any) -> None:
    """Queries (lists with prefixes and tokens, ``?uploads``, part numbers
    and upload ids) and bodies of the S3 operations verify."""
    s3 = client()
    request = sent(getattr(s3, operation), Bucket="bucket", **params)
    assert request.verify().access_key_id == AKID


def test_an_unsigned_payload_verifies() -> None:
    """With payload signing off, boto3 signs UNSIGNED-PAYLOAD: the body is
    not fixed by the signature."""
    s3 = client(s3={"payload_signing_enabled": False})
    verified = sent(s3.put_object, Bucket="b", Key="k", Body=b"x").verify()
    assert verified.payload == UNSIGNED_PAYLOAD
    assert verified.payload_sha256 is None and not verified.streaming


def test_boto3_checksum_trailers_verify_as_an_unsigned_stream() -> None:
    """boto3 over TLS sends its default checksum as an aws-chunked trailer:
    the request verifies as STREAMING-UNSIGNED-PAYLOAD-TRAILER with the
    trailer declared and the decoded length given."""
    s3 = client("https://127.0.0.1:9000")
    request = sent(
        s3.put_object, Bucket="b", Key="k", Body=b"hello", ChecksumAlgorithm="SHA256"
    )
    verified = request.verify()
    assert verified.payload == STREAMING_UNSIGNED_TRAILER and verified.streaming
    assert verified.trailers == ("x-amz-checksum-sha256",)
    assert verified.decoded_length == 5


def test_a_request_dated_only_by_its_date_header_verifies() -> None:
    """A request without x-amz-date is dated by its Date header."""
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(
        method="GET",
        url="http://127.0.0.1:9000/bucket/key",
        headers={"Date": "placeholder"},
    )
    S3SigV4Auth(Credentials(AKID, SECRET), "s3", REGION).add_auth(request)
    prepared = request.prepare()
    found = Headers()
    for name, value in prepared.headers.items():
        found.addRawHeader(name.encode(), value.encode())
    found.addRawHeader(b"host", b"127.0.0.1:9000")
    assert not found.hasHeader(b"x-amz-date")
    assert Sent("GET", b"/bucket/key", found, b"").verify().access_key_id == AKID


# -- what fails, and how ---------------------------------------------------------


def get() -> Sent:
    return sent(client().get_object, Bucket="bucket", Key="key")


def test_a_wrong_secret_does_not_match() -> None:
    """Signed with another secret: SignatureDoesNotMatch."""
    s3 = client(secret="not-the-secret")
    refused(sent(s3.get_object, Bucket="b", Key="k"), "SignatureDoesNotMatch")


def test_an_unknown_access_key_is_refused() -> None:
    """An access key the lookup does not know: InvalidAccessKeyId."""
    s3 = client(key="AKIAUNKNOWNKEY000000")
    error = refused(sent(s3.get_object, Bucket="b", Key="k"), "InvalidAccessKeyId")
    assert error.details["AWSAccessKeyId"] == "AKIAUNKNOWNKEY000000"


def test_a_request_more_than_15_minutes_off_is_too_skewed() -> None:
    """Within 15 minutes of the server's clock a request verifies; beyond,
    either way, it is RequestTimeTooSkewed."""
    request = get()
    now = time.time()
    assert request.verify(now + 14 * 60)
    assert request.verify(now - 14 * 60)
    refused(request, "RequestTimeTooSkewed", now + 16 * 60)
    error = refused(request, "RequestTimeTooSkewed", now - 16 * 60)
    assert error.details["MaxAllowedSkewMilliseconds"] == "900000"


def test_another_region_is_a_malformed_authorization() -> None:
    """Signed for us-east-1 at an endpoint of eu-west-1:
    AuthorizationHeaderMalformed naming the expected region."""
    error = refused(get(), "AuthorizationHeaderMalformed", region="eu-west-1")
    assert error.details["Region"] == "eu-west-1"
    assert "'us-east-1' is wrong" in error.message


@pytest.mark.parametrize(
    "authorization",
    [
        "AWS4-HMAC-SHA256 Credential=AKID/2013/us-east-1/s3/aws4_request,"
        "SignedHeaders=host,Signature=00",
        "AWS4-HMAC-SHA256 Credential=AKID/20130524/us-east-1/ec2/aws4_request,"
        "SignedHeaders=host,Signature=00",
        "AWS4-HMAC-SHA256 Credential=AKID/20130524/us-east-1/s3/aws3_request,"
        "SignedHeaders=host,Signature=00",
        "AWS4-HMAC-SHA256 Credential=AKID/20130524/us-east-1/s3/aws4_request,"
        "Signature=00",
        "AWS4-HMAC-SHA256 Credential=AKID/20130524/us-east-1/s3/aws4_request,"
        "SignedHeaders=Host;X Y,Signature=00",
        "AWS4-HMAC-SHA256 garbage",
    ],
)
def test_malformed_credentials_are_malformed_authorizations(
    authorization: str,
) -> None:
    """A credential of the wrong shape, service or terminal, a missing
    component or a malformed one: AuthorizationHeaderMalformed."""
    refused(
        get().with_header("authorization", authorization),
        "AuthorizationHeaderMalformed",
    )


def test_the_credential_date_must_be_the_request_date() -> None:
    """A credential dated another day than x-amz-date is malformed."""
    request = get()
    date = request.headers.getRawHeaders(b"x-amz-date", [b""])[0].decode()
    other = "20000101" + date[8:]
    refused(
        request.with_header("x-amz-date", other),
        "AuthorizationHeaderMalformed",
        now=calendar.timegm(time.strptime(other, "%Y%m%dT%H%M%SZ")),
    )


def test_a_request_without_a_date_is_denied() -> None:
    """Neither x-amz-date nor Date, or a date that is no date: AccessDenied."""
    refused(get().without_header("x-amz-date"), "AccessDenied")
    refused(get().with_header("x-amz-date", "yesterday"), "AccessDenied")
    no_amz_date = get().without_header("x-amz-date")
    refused(no_amz_date.with_header("date", "not a date"), "AccessDenied")


def test_a_date_header_in_minus_zero_is_gmt() -> None:
    """The Date of AWS's PUT example written with "-0000" is the same GMT
    time, and the example still verifies."""
    request = example(
        "PUT",
        b"/test$file.text",
        "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd",
        date="Fri, 24 May 2013 00:00:00 GMT",
        x_amz_storage_class="REDUCED_REDUNDANCY",
        x_amz_content_sha256=(
            "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072"
        ),
    )
    assert request.verify(EXAMPLE_TIME)
    dated = request.without_header("x-amz-date").with_header(
        "date", "Fri, 24 May 2013 00:00:00 -0000"
    )
    # Now dated by Date alone: the time is right, the signature (made with
    # x-amz-date signed) no longer holds.
    refused(dated, "SignatureDoesNotMatch", EXAMPLE_TIME + 600)
    refused(dated, "RequestTimeTooSkewed", EXAMPLE_TIME + 3600)


def test_x_amz_content_sha256_is_required_and_read() -> None:
    """Without x-amz-content-sha256: InvalidRequest; with a value that is
    none of S3's: InvalidArgument."""
    refused(get().without_header("x-amz-content-sha256"), "InvalidRequest")
    error = refused(
        get().with_header("x-amz-content-sha256", "nope"), "InvalidArgument"
    )
    assert error.details["ArgumentName"] == "x-amz-content-sha256"


def test_unsigned_amz_headers_are_denied() -> None:
    """An x-amz-* header the signature does not cover: AccessDenied naming it."""
    error = refused(get().with_header("x-amz-meta-extra", "1"), "AccessDenied")
    assert error.details["HeadersNotSigned"] == "x-amz-meta-extra"


def test_other_authorization_schemes_are_refused() -> None:
    """Signature Version 2 is InvalidRequest (use AWS4-HMAC-SHA256); any
    other scheme InvalidArgument."""
    refused(
        get().with_header("authorization", "AWS AKID:c2lnbmF0dXJl"), "InvalidRequest"
    )
    refused(get().with_header("authorization", "Bearer token"), "InvalidArgument")
    version_2 = b"/b/k?AWSAccessKeyId=AKID&Signature=c2ln&Expires=1796454189"
    assert has_credentials(version_2, Headers())
    refused(
        get().without_header("authorization").with_target(version_2), "InvalidRequest"
    )


def test_an_anonymous_request_is_denied() -> None:
    """No Authorization and no presigned query: AccessDenied, and
    has_credentials says so before verifying."""
    request = get().without_header("authorization")
    assert not has_credentials(request.target, request.headers)
    assert has_credentials(get().target, get().headers)
    refused(request, "AccessDenied")


def test_two_auth_mechanisms_are_one_too_many() -> None:
    """An Authorization header and a presigned query: InvalidArgument."""
    url = client().generate_presigned_url(
        "get_object", Params={"Bucket": "b", "Key": "k"}
    )
    target = url.split("9000", 1)[1].encode()
    refused(get().with_target(target), "InvalidArgument")


# -- presigned URLs ----------------------------------------------------------------


def presigned(
    operation: str = "get_object", expires: int = 3600, **params: Any
) -> Sent:
    s3 = client()
    url = s3.generate_presigned_url(
        operation,
        Params={"Bucket": "bucket", "Key": "a b+c", **params},
        ExpiresIn=expires,
    )
    target = url.split("127.0.0.1:9000", 1)[1].encode()
    return Sent(
        operation.split("_")[0].upper(), target, headers(host="127.0.0.1:9000"), b""
    )


def test_a_presigned_url_verifies_until_it_expires() -> None:
    """A presigned GET holds for its lifetime, then is AccessDenied."""
    request = presigned(expires=60)
    now = time.time()
    verified = request.verify(now)
    assert verified.presigned and verified.payload == UNSIGNED_PAYLOAD
    assert request.verify(now + 55)
    error = refused(request, "AccessDenied", now + 120)
    assert error.message == "Request has expired"


def test_a_presigned_put_verifies() -> None:
    """A presigned PUT (a browser's upload) verifies, its body unsigned; an
    x-amz-* header the URL does not sign is AccessDenied, as for S3."""
    request = presigned("put_object")
    assert request.verify().payload == UNSIGNED_PAYLOAD
    error = refused(request.with_header("x-amz-acl", "public-read"), "AccessDenied")
    assert error.details["HeadersNotSigned"] == "x-amz-acl"


def test_a_tampered_presigned_url_does_not_match() -> None:
    """Another key, another expiry or another signature: SignatureDoesNotMatch."""
    request = presigned()
    target = request.target
    for tampered in (
        target.replace(b"a%20b%2Bc", b"a%20b%2Bd"),
        target.replace(b"X-Amz-Expires=3600", b"X-Amz-Expires=3601"),
        target[:-1] + (b"0" if target[-1:] != b"0" else b"1"),
    ):
        refused(request.with_target(tampered), "SignatureDoesNotMatch")


def test_a_presigned_url_lives_at_most_a_week() -> None:
    """X-Amz-Expires over 604800 seconds, negative or not a number:
    AuthorizationQueryParametersError."""
    target = presigned().target
    for expires in (b"604801", b"-1", b"soon"):
        tampered = target.replace(b"X-Amz-Expires=3600", b"X-Amz-Expires=" + expires)
        refused(presigned().with_target(tampered), "AuthorizationQueryParametersError")


def test_presigned_query_parameters_are_checked() -> None:
    """A missing parameter, another algorithm, another region or a date
    in the future are refused as S3 refuses them."""
    request = presigned()
    target = request.target
    missing = target.replace(b"X-Amz-SignedHeaders=host&", b"")
    refused(request.with_target(missing), "AuthorizationQueryParametersError")
    other = target.replace(b"AWS4-HMAC-SHA256", b"AWS4-ECDSA-P256-SHA256")
    refused(request.with_target(other), "AuthorizationQueryParametersError")
    error = refused(request, "AuthorizationQueryParametersError", region="eu-west-1")
    assert error.details["Region"] == "eu-west-1"
    error = refused(request, "AccessDenied", time.time() - 3600)
    assert error.message == "Request is not valid yet"


# -- the canonical forms -------------------------------------------------------------


def test_canonical_uri_encodes_each_segment_once() -> None:
    """Each path segment is decoded, then encoded once the AWS way; a
    ``%2F`` inside a segment stays one; nothing is normalised."""
    assert canonical_uri(b"/b/a b/c") == "/b/a%20b/c"
    assert canonical_uri(b"/b/a%20b/%7Ec~") == "/b/a%20b/~c~"
    assert canonical_uri(b"/b/a%2Fb") == "/b/a%2Fb"
    assert canonical_uri(b"/b//./../x/") == "/b//./../x/"
    assert canonical_uri("/b/é+".encode()) == "/b/%C3%A9%2B"
    assert canonical_uri(b"/b/%e2%82%ac") == "/b/%E2%82%AC"


def test_canonical_query_sorts_encoded_pairs() -> None:
    """Names and values encoded (``+`` read as a space), sorted by name
    then value, names without values given an empty one."""
    pairs = decode_query(b"b=2&a=z&a=y&uploads&c=a+b%2Bc&d=%7e")
    assert canonical_query(pairs) == "a=y&a=z&b=2&c=a%20b%2Bc&d=~&uploads="


def test_verification_reads_the_lookup_once_per_request() -> None:
    """The secret is looked up by the key id the request names."""
    asked: list[str] = []

    async def lookup(access_key_id: str) -> str | None:
        asked.append(access_key_id)
        return SECRET

    request = get()
    verified = resolve(
        verify_request(
            request.method, request.target, request.headers, time.time(), lookup, REGION
        )
    )
    assert isinstance(verified, Verified)
    assert asked == [AKID]
