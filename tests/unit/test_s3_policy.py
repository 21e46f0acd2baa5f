"""POST Object policies: AWS's published browser upload example verifies
with its published signature, forms boto3 presigns verify, and a form the
policy does not allow, or signed otherwise, fails with S3's code."""

from __future__ import annotations

import base64
import calendar
import json
import time
from typing import Any

import pytest

from tests.unit.s3_signing import AKID, REGION, client, resolve, secret_of
from uploadd.api.s3.errors import STATUS, S3Error
from uploadd.api.s3.policy import PostPolicy, verify_post_policy

#: AWS's example policy, base64 as the documentation prints it.
EXAMPLE_POLICY = (
    "eyAiZXhwaXJhdGlvbiI6ICIyMDE1LTEyLTMwVDEyOjAwOjAwLjAwMFoiLA0KICAiY29uZGl0aW9ucy"
    "I6IFsNCiAgICB7ImJ1Y2tldCI6ICJzaWd2NGV4YW1wbGVidWNrZXQifSwNCiAgICBbInN0YXJ0cy13"
    "aXRoIiwgIiRrZXkiLCAidXNlci91c2VyMS8iXSwNCiAgICB7ImFjbCI6ICJwdWJsaWMtcmVhZCJ9LA"
    "0KICAgIHsic3VjY2Vzc19hY3Rpb25fcmVkaXJlY3QiOiAiaHR0cDovL3NpZ3Y0ZXhhbXBsZWJ1Y2tl"
    "dC5zMy5hbWF6b25hd3MuY29tL3N1Y2Nlc3NmdWxfdXBsb2FkLmh0bWwifSwNCiAgICBbInN0YXJ0cy"
    "13aXRoIiwgIiRDb250ZW50LVR5cGUiLCAiaW1hZ2UvIl0sDQogICAgeyJ4LWFtei1tZXRhLXV1aWQi"
    "OiAiMTQzNjUxMjM2NTEyNzQifSwNCiAgICB7IngtYW16LXNlcnZlci1zaWRlLWVuY3J5cHRpb24iOi"
    "AiQUVTMjU2In0sDQogICAgWyJzdGFydHMtd2l0aCIsICIkeC1hbXotbWV0YS10YWciLCAiIl0sDQoN"
    "CiAgICB7IngtYW16LWNyZWRlbnRpYWwiOiAiQUtJQUlPU0ZPRE5ON0VYQU1QTEUvMjAxNTEyMjkvdX"
    "MtZWFzdC0xL3MzL2F3czRfcmVxdWVzdCJ9LA0KICAgIHsieC1hbXotYWxnb3JpdGhtIjogIkFXUzQt"
    "SE1BQy1TSEEyNTYifSwNCiAgICB7IngtYW16LWRhdGUiOiAiMjAxNTEyMjlUMDAwMDAwWiIgfQ0KIC"
    "BdDQp9"
)
EXAMPLE_SIGNATURE = "8afdbf4008c03f22c2cd3cdb72e4afbb1f6a588f3255ac628749a66d7f09699e"
#: The example form's fields before its file, named as its HTML names them.
EXAMPLE_FIELDS = {
    "key": "user/user1/${filename}",
    "acl": "public-read",
    "success_action_redirect": (
        "http://sigv4examplebucket.s3.amazonaws.com/successful_upload.html"
    ),
    "Content-Type": "image/jpeg",
    "x-amz-meta-uuid": "14365123651274",
    "x-amz-server-side-encryption": "AES256",
    "X-Amz-Credential": "AKIAIOSFODNN7EXAMPLE/20151229/us-east-1/s3/aws4_request",
    "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
    "X-Amz-Date": "20151229T000000Z",
    "x-amz-meta-tag": "",
    "Policy": EXAMPLE_POLICY,
    "X-Amz-Signature": EXAMPLE_SIGNATURE,
}
EXAMPLE_NOW = float(calendar.timegm((2015, 12, 29, 12, 0, 0)))


def verify(
    fields: dict[str, str],
    bucket: str = "sigv4examplebucket",
    now: float = EXAMPLE_NOW,
    filename: str | None = None,
) -> PostPolicy:
    return resolve(verify_post_policy(fields, bucket, now, secret_of, REGION, filename))


def refused(code: str, fields: dict[str, str], **kw: Any) -> S3Error:
    with pytest.raises(S3Error) as caught:
        verify(fields, **kw)
    assert caught.value.code == code, caught.value
    assert caught.value.status == STATUS[code]
    return caught.value


def test_the_aws_browser_upload_example_verifies() -> None:
    """AWS's example form verifies with its published signature and says
    what it allows: the bucket, the key with the file's name, no size bound."""
    allowed = verify(EXAMPLE_FIELDS, filename="photo.jpg")
    assert allowed.access_key_id == AKID
    assert allowed.bucket == "sigv4examplebucket"
    assert allowed.key == "user/user1/photo.jpg"
    assert allowed.content_length_range is None
    assert allowed.fields["content-type"] == "image/jpeg"
    assert verify(EXAMPLE_FIELDS).key == "user/user1/${filename}"


def test_the_example_fails_each_condition_it_sets() -> None:
    """Another bucket, a key outside the prefix, another ACL, a type not an
    image, or after its expiration: AccessDenied naming why."""
    refused("AccessDenied", EXAMPLE_FIELDS, bucket="otherbucket")
    for name, value in (
        ("key", "user/user2/x"),
        ("acl", "private"),
        ("Content-Type", "text/html"),
        ("x-amz-meta-uuid", "1"),
    ):
        error = refused("AccessDenied", {**EXAMPLE_FIELDS, name: value})
        assert "Policy Condition failed" in error.message
    later = float(calendar.timegm((2015, 12, 30, 12, 0, 1)))
    error = refused("AccessDenied", EXAMPLE_FIELDS, now=later)
    assert error.message == "Invalid according to Policy: Policy expired."


def test_fields_the_policy_does_not_name_are_refused() -> None:
    """A field no condition allows: AccessDenied "Extra input fields"; a
    field named x-ignore-* is let through."""
    error = refused("AccessDenied", {**EXAMPLE_FIELDS, "x-amz-meta-other": "1"})
    assert error.message.endswith("Extra input fields: x-amz-meta-other")
    assert verify({**EXAMPLE_FIELDS, "x-ignore-me": "1"})


def test_a_tampered_form_does_not_match() -> None:
    """Another policy or another signature: SignatureDoesNotMatch; an
    unknown key id: InvalidAccessKeyId; a missing field: InvalidArgument."""
    forged = base64.b64encode(
        json.dumps({"expiration": "2030-01-01T00:00:00Z", "conditions": []}).encode()
    ).decode()
    refused("SignatureDoesNotMatch", {**EXAMPLE_FIELDS, "Policy": forged})
    refused("SignatureDoesNotMatch", {**EXAMPLE_FIELDS, "X-Amz-Signature": "0" * 64})
    credential = EXAMPLE_FIELDS["X-Amz-Credential"].replace(AKID, "AKIANOTKNOWN")
    refused("InvalidAccessKeyId", {**EXAMPLE_FIELDS, "X-Amz-Credential": credential})
    for name in ("key", "Policy", "X-Amz-Signature", "X-Amz-Credential"):
        fields = dict(EXAMPLE_FIELDS)
        del fields[name]
        error = refused("InvalidArgument", fields)
        assert error.details["ArgumentName"] == name.lower()


def presigned_post(**kw: Any) -> dict[str, str]:
    post = client().generate_presigned_post(Bucket="bucket", **kw)
    fields: dict[str, str] = post["fields"]
    return fields


def test_a_form_boto3_presigns_verifies_with_its_size_range() -> None:
    """boto3's presigned POST with a key prefix and a size range verifies,
    and returns the range for the caller to enforce."""
    fields = presigned_post(
        Key="uploads/${filename}",
        Fields={"Content-Type": "image/png"},
        Conditions=[
            ["starts-with", "$key", "uploads/"],
            {"Content-Type": "image/png"},
            ["content-length-range", 1, 1048576],
        ],
        ExpiresIn=600,
    )
    allowed = verify(fields, bucket="bucket", now=time.time(), filename="a b.png")
    assert allowed.key == "uploads/a b.png"
    assert allowed.content_length_range == (1, 1048576)
    refused("AccessDenied", fields, bucket="bucket", now=time.time() + 601)
    refused(
        "AccessDenied",
        {**fields, "Content-Type": "text/html"},
        bucket="bucket",
        now=time.time(),
    )


def test_malformed_policies_are_invalid_policy_documents() -> None:
    """A policy that is no JSON object, or has no expiration, is
    InvalidPolicyDocument (its signature holding)."""
    from tests.unit.s3_signing import SECRET
    from uploadd.api.s3.signing import sign, signing_key

    key = signing_key(SECRET, "20151229", REGION)
    for document in (
        b"[]",
        b"{not json",
        b'{"conditions": []}',
        b'{"expiration": "2030-01-01T00:00:00Z"}',
    ):
        policy = base64.b64encode(document).decode()
        fields = {
            **EXAMPLE_FIELDS,
            "Policy": policy,
            "X-Amz-Signature": sign(key, policy),
        }
        refused("InvalidPolicyDocument", fields)
