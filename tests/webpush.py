"""The other ends of Web Push, for the tests: a browser's subscription keys
(and reading what was sent to it) and a push service's check of VAPID.

Neither uses uploadd's own code: the browser decrypts with http_ece (the
reference implementation of RFC 8188/8291) and the VAPID signature is
checked with the ``cryptography`` primitives directly, so a mistake shared
by uploadd's sending and checking sides cannot hide.
"""

from __future__ import annotations

import base64
import json
import os
from typing import Any
from urllib.parse import urlparse

import attrs
import http_ece
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@attrs.define
class Browser:
    """A subscription's key pair and auth secret, made as a browser makes
    them (ECDH P-256, 16 random bytes)."""

    key: ec.EllipticCurvePrivateKey = attrs.field(
        factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    auth: bytes = attrs.field(factory=lambda: os.urandom(16))

    @property
    def keys(self) -> dict[str, str]:
        """``PushSubscription.toJSON().keys``."""
        point = self.key.public_key().public_bytes(
            Encoding.X962, PublicFormat.UncompressedPoint
        )
        return {"p256dh": b64(point), "auth": b64(self.auth)}

    def subscription(self, endpoint: str) -> dict[str, Any]:
        """``PushSubscription.toJSON()``, as the page posts it."""
        return {"endpoint": endpoint, "expirationTime": None, "keys": self.keys}

    def read(self, body: bytes) -> bytes:
        """The payload of an aes128gcm message to this browser."""
        plain: bytes = http_ece.decrypt(
            body, private_key=self.key, auth_secret=self.auth, version="aes128gcm"
        )
        return plain


def check_vapid(
    authorization: str, endpoint: str, public_key: str, now: float
) -> dict[str, Any]:
    """What a push service checks (RFC 8292): ``vapid t=<JWT>, k=<key>`` with
    ``k`` the subscription's applicationServerKey and the JWT signed by it
    (ES256), for this push service's origin, expiring within 24 hours. The
    claims; AssertionError if any check fails."""
    scheme, _, rest = authorization.partition(" ")
    assert scheme == "vapid", authorization
    params = dict(p.strip().split("=", 1) for p in rest.split(","))
    assert params["k"] == public_key
    header, claims, signature = params["t"].split(".")
    assert json.loads(unb64(header)) == {"alg": "ES256", "typ": "JWT"}
    raw = unb64(signature)
    assert len(raw) == 64
    key = ec.EllipticCurvePublicKey.from_encoded_point(
        ec.SECP256R1(), unb64(params["k"])
    )
    key.verify(
        encode_dss_signature(
            int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
        ),
        f"{header}.{claims}".encode(),
        ec.ECDSA(hashes.SHA256()),
    )  # raises InvalidSignature
    found: dict[str, Any] = json.loads(unb64(claims))
    parts = urlparse(endpoint)
    assert found["aud"] == f"{parts.scheme}://{parts.netloc}"
    assert now < found["exp"] <= now + 24 * 3600
    assert found["sub"].startswith(("mailto:", "https:"))
    return found
