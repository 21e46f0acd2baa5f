"""S3's browser uploads: the POST Object form and its signed policy.

A browser uploads with an HTML form whose fields (before the ``file`` one)
carry a base64 JSON policy, signed with the Signature Version 4 key of the
credential's date and region over the base64 text itself. The policy says
until when it holds (``expiration``) and what the form may carry
(``conditions``): exact values (``{"acl": "public-read"}`` or ``["eq",
"$acl", "public-read"]``), prefixes (``["starts-with", "$key",
"user/eric/"]``), and the file's size (``["content-length-range", 1,
10485760]``). Every field but ``policy``, ``x-amz-signature``, ``file``
and those named ``x-ignore-*`` must be allowed by a condition. Field names
are read in any case; ``${filename}`` in the key stands for the file's name.

:func:`verify_post_policy` answers a :class:`PostPolicy` saying what was
allowed (bucket, key, size range) or raises the S3Error S3 answers with.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import hmac
import json
import re
import time
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import attrs

from uploadd.api.s3.errors import S3Error
from uploadd.api.s3.signing import ALGORITHM, credential_of, parse_amz_date, sign
from uploadd.api.s3.sigv4 import SecretOf, key_of

#: Fields no condition needs to name.
EXEMPT = frozenset({"policy", "x-amz-signature", "file"})
REQUIRED = ("key", "policy", "x-amz-algorithm", "x-amz-credential", "x-amz-date")
_EXPIRATION = re.compile(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(\.\d+)?Z")


@attrs.frozen
class PostPolicy:
    """A POST upload the policy allows: by whom, into which bucket, under
    which key (``${filename}`` replaced when the file's name was given),
    and, if the policy bounds it, the sizes the file may have (inclusive)."""

    access_key_id: str
    bucket: str
    key: str
    content_length_range: tuple[int, int] | None
    expiration: float
    #: The form's fields by lower-case name.
    fields: Mapping[str, str]


def _denied(message: str) -> S3Error:
    return S3Error("AccessDenied", f"Invalid according to Policy: {message}")


def _invalid_policy(message: str) -> S3Error:
    return S3Error("InvalidPolicyDocument", f"Invalid Policy: {message}")


def _expiration(policy: Mapping[str, Any]) -> float:
    text = policy.get("expiration")
    if not isinstance(text, str):
        raise _invalid_policy("Policy missing expiration.")
    found = _EXPIRATION.fullmatch(text)
    if found is None:
        raise _invalid_policy(f"Invalid 'expiration' value: '{text}'")
    fraction = float(found.group(2) or 0)
    parsed = time.strptime(found.group(1), "%Y-%m-%dT%H:%M:%S")
    return calendar.timegm(parsed) + fraction


def _policy_document(text: str) -> dict[str, Any]:
    try:
        document = json.loads(base64.b64decode(text, validate=True))
    except (binascii.Error, ValueError):
        raise _invalid_policy("Invalid JSON.") from None
    if not isinstance(document, dict):
        raise _invalid_policy("Invalid JSON.")
    conditions = document.get("conditions")
    if not isinstance(conditions, list):
        raise _invalid_policy("Policy missing conditions.")
    return document


async def verify_post_policy(
    fields: Mapping[str, str],
    bucket: str,
    now: float,
    secret_of: SecretOf,
    region: str,
    filename: str | None = None,
) -> PostPolicy:
    """What the signed policy of a POST Object form allows, or the S3Error.

    ``fields`` are the form fields before the ``file`` part (S3 ignores
    those after it), ``bucket`` the one the form is posted to, ``now`` the
    server's time in seconds, ``filename`` the file part's name if known
    (a key condition is checked after ``${filename}`` is replaced; the
    content length is the caller's to check, against the range returned:
    ``EntityTooSmall``/``EntityTooLarge``).
    """
    named = {name.lower(): value for name, value in fields.items()}
    for required in (*REQUIRED, "x-amz-signature"):
        if required not in named:
            raise S3Error(
                "InvalidArgument",
                f"Bucket POST must contain a field named '{required}'.  If it is "
                "specified, please check the order of the fields.",
                ArgumentName=required,
                ArgumentValue="",
            )
    if named["x-amz-algorithm"] != ALGORITHM:
        raise S3Error(
            "InvalidArgument",
            f'X-Amz-Algorithm only supports "{ALGORITHM}"',
            ArgumentName="x-amz-algorithm",
            ArgumentValue=named["x-amz-algorithm"],
        )
    credential = credential_of(
        named["x-amz-credential"],
        region,
        "InvalidArgument",
        "Error parsing the X-Amz-Credential parameter; ",
    )
    amz_date = named["x-amz-date"]
    if parse_amz_date(amz_date) is None or amz_date[:8] != credential.date:
        raise S3Error(
            "InvalidArgument",
            f'X-Amz-Date "{amz_date}" is not the credential\'s date in the '
            "ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"",
            ArgumentName="x-amz-date",
            ArgumentValue=amz_date,
        )
    key = await key_of(credential, secret_of)
    policy = named["policy"]
    if not hmac.compare_digest(
        sign(key, policy).encode(), named["x-amz-signature"].encode()
    ):
        raise S3Error(
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature "
            "you provided. Check your key and signing method.",
            AWSAccessKeyId=credential.access_key_id,
            StringToSign=policy,
            SignatureProvided=named["x-amz-signature"],
        )
    document = _policy_document(policy)
    expiration = _expiration(document)
    if now > expiration:
        raise _denied("Policy expired.")
    if filename is not None:
        named["key"] = named["key"].replace("${filename}", filename)
    values = {**named, "bucket": bucket}
    allowed, length_range = _check_conditions(document["conditions"], values)
    extra = sorted(
        name
        for name in named
        if name not in allowed
        and name not in EXEMPT
        and not name.startswith("x-ignore-")
    )
    if extra:
        raise _denied(f"Extra input fields: {', '.join(extra)}")
    return PostPolicy(
        access_key_id=credential.access_key_id,
        bucket=bucket,
        key=named["key"],
        content_length_range=length_range,
        expiration=expiration,
        fields=MappingProxyType(named),
    )


def _check_conditions(
    conditions: list[Any], values: Mapping[str, str]
) -> tuple[set[str], tuple[int, int] | None]:
    """Check each condition against the form's ``values``: the names the
    conditions allow and the content length range, if one is given."""
    allowed: set[str] = set()
    length_range: tuple[int, int] | None = None
    for condition in conditions:
        if isinstance(condition, dict) and len(condition) == 1:
            ((name, expected),) = condition.items()
            condition = ["eq", f"${name}", expected]
        if not isinstance(condition, list) or len(condition) != 3:
            raise _invalid_policy(f"Invalid condition: {json.dumps(condition)}")
        operation, subject, operand = condition
        if not isinstance(operation, str):
            raise _invalid_policy(f"Invalid condition: {json.dumps(condition)}")
        operation = operation.lower()
        if operation == "content-length-range":
            if not all(isinstance(n, int) and n >= 0 for n in (subject, operand)):
                raise _invalid_policy(f"Invalid condition: {json.dumps(condition)}")
            length_range = (subject, operand)
            continue
        if not isinstance(subject, str) or not isinstance(operand, str):
            raise _invalid_policy(f"Invalid condition: {json.dumps(condition)}")
        name = subject.lstrip("$").lower()
        value = values.get(name, "")
        if operation == "eq":
            holds = value == operand
        elif operation == "starts-with":
            # A Content-Type may list several types; each must start so.
            parts = value.split(",") if name == "content-type" else [value]
            holds = all(part.strip().startswith(operand) for part in parts)
        else:
            raise _invalid_policy(f"Invalid condition: {json.dumps(condition)}")
        if not holds:
            raise _denied(f"Policy Condition failed: {json.dumps(condition)}")
        allowed.add(name)
    return allowed, length_range
