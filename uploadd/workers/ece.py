"""Web Push payload encryption: RFC 8291 in the aes128gcm coding (RFC 8188).

Only the browser that subscribed can read a notification; the push service
carrying it cannot. The browser gave two keys with its subscription:
``p256dh``, the public half of a P-256 key pair it keeps, and ``auth``, a
16-byte secret. Each message gets a new sender key pair and a random salt;
ECDH between the new private key and ``p256dh``, mixed with ``auth``
(HKDF-SHA-256), gives the key and nonce of one AES-128-GCM record. The body
is a header (salt, record size, the sender's public key) and that record.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import struct

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

#: The record size written in the header: one record holds the whole body.
RECORD_SIZE = 4096
#: A push service takes bodies of 4096 bytes at least (RFC 8291 section 4):
#: less the header (86), the GCM tag (16) and the delimiter (1).
MAX_PAYLOAD = RECORD_SIZE - 86 - 16 - 1


class BadKeys(ValueError):
    """A subscription's keys are not a P-256 public key and a 16-byte secret."""


def b64url_decode(text: str) -> bytes:
    """URL-safe base64, with or without its padding; ValueError if not."""
    text = text.strip()
    if not text.isascii():
        raise ValueError("not base64url")
    padded = text + "=" * (-len(text) % 4)
    return base64.b64decode(padded, altchars=b"-_", validate=True)


def b64url(data: bytes) -> str:
    """URL-safe base64 without padding, as Web Push writes keys."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def public_bytes(key: ec.EllipticCurvePublicKey) -> bytes:
    """The 65-byte uncompressed point of a P-256 public key."""
    return key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)


def browser_keys(p256dh: str, auth: str) -> tuple[bytes, bytes]:
    """A subscription's keys as bytes, checked: (the uncompressed point of a
    P-256 public key, the 16-byte secret); BadKeys saying which is wrong."""
    try:
        point = b64url_decode(p256dh)
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    except ValueError:
        raise BadKeys("keys.p256dh is not a P-256 public key in base64url") from None
    if len(point) != 65:
        raise BadKeys("keys.p256dh is not an uncompressed P-256 point (65 bytes)")
    try:
        secret = b64url_decode(auth)
    except ValueError:
        secret = b""
    if len(secret) != 16:
        raise BadKeys("keys.auth is not 16 bytes in base64url")
    return point, secret


def _hmac(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


def encrypt(
    payload: bytes,
    p256dh: bytes,
    auth: bytes,
    sender: ec.EllipticCurvePrivateKey | None = None,
    salt: bytes | None = None,
) -> bytes:
    """The aes128gcm body carrying ``payload`` to the browser whose keys are
    ``p256dh`` and ``auth`` (bytes, as :func:`browser_keys` gives them).
    ``sender`` and ``salt`` are new for every message; tests pass them to
    reproduce RFC 8291's example."""
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"a Web Push payload is {MAX_PAYLOAD} bytes at most")
    sender = sender or ec.generate_private_key(ec.SECP256R1())
    salt = salt if salt is not None else os.urandom(16)
    browser = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), p256dh)
    mine = public_bytes(sender.public_key())
    shared = sender.exchange(ec.ECDH(), browser)
    # RFC 8291 section 3.4: HKDF(auth, ecdh_secret, "WebPush: info" || 0 ||
    # ua_public || as_public, 32); then RFC 8188's key and nonce from the salt.
    ikm = _hmac(_hmac(auth, shared), b"WebPush: info\x00" + p256dh + mine + b"\x01")
    prk = _hmac(salt, ikm)
    key = _hmac(prk, b"Content-Encoding: aes128gcm\x00\x01")[:16]
    nonce = _hmac(prk, b"Content-Encoding: nonce\x00\x01")[:12]
    # One record, the last: its padding delimiter is 2, and no padding follows.
    record = AESGCM(key).encrypt(nonce, payload + b"\x02", None)
    header = salt + struct.pack("!IB", RECORD_SIZE, len(mine)) + mine
    return header + record
