"""VAPID (RFC 8292): how uploadd identifies itself to push services.

uploadd holds one P-256 key pair. Its public key is the
``applicationServerKey`` a browser subscribes with (``GET /push/key``); the
push service then takes messages for that subscription only when they carry
``Authorization: vapid t=<JWT>, k=<public key>``, the JWT signed (ES256) by
the private key, naming the push service's origin (``aud``), an expiry
(``exp``, within 24 hours) and whom to contact (``sub``: a ``mailto:`` or
``https:`` URL).

The private key is ``[push] vapid_private_key`` (base64url of its 32 bytes,
as web-push tools print one), or generated once into
``<data_dir>/vapid-private-key`` (0600), written the same way. Instances and
push workers must share it: a subscription made with one key is refused
(401 or 403) for messages signed with another.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import attrs
import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from noded.secret import token_secret
from uploadd.workers.ece import b64url, b64url_decode, public_bytes

#: The file a generated private key is kept in, in the data directory.
KEY_FILE = "vapid-private-key"

#: How long one signature is good for: RFC 8292 allows 24 hours at most.
LIFETIME = 12 * 3600.0


class BadVapidKey(ValueError):
    """The VAPID private key is not one; str() says where it came from,
    never the key."""


def new_private_key() -> bytes:
    """A new private key, written as it is kept: base64url of its 32 bytes."""
    return private_key_text(ec.generate_private_key(ec.SECP256R1())).encode()


def private_key_text(key: ec.EllipticCurvePrivateKey) -> str:
    """``key`` as base64url of its 32-byte private value."""
    return b64url(key.private_numbers().private_value.to_bytes(32, "big"))


def private_key(text: str, source: str) -> ec.EllipticCurvePrivateKey:
    """The P-256 private key written as base64url of its 32 bytes."""
    try:
        raw = b64url_decode(text)
        if len(raw) != 32:
            raise ValueError("not 32 bytes")
        return ec.derive_private_key(int.from_bytes(raw, "big"), ec.SECP256R1())
    except ValueError:
        raise BadVapidKey(
            f"the VAPID private key in {source} is not base64url of a P-256"
            " private key's 32 bytes"
        ) from None


def load_private_key(
    configured: str, data_dir: Path, create: bool = True
) -> ec.EllipticCurvePrivateKey:
    """``configured`` if set, else the key in ``<data_dir>/vapid-private-key``
    (made on first use unless ``create`` is false: then NoSecret)."""
    text = token_secret(
        configured, data_dir, name=KEY_FILE, create=create, generate=new_private_key
    )
    source = "[push] vapid_private_key" if configured else str(data_dir / KEY_FILE)
    return private_key(text.decode("ascii", "replace"), source)


def audience(endpoint: str) -> str:
    """The origin of a push service URL: what a VAPID JWT's ``aud`` names."""
    parts = urlparse(endpoint)
    return f"{parts.scheme}://{parts.netloc}"


@attrs.frozen
class Vapid:
    """The key and the contact a push service sees on every message."""

    key: ec.EllipticCurvePrivateKey
    subject: str

    @property
    def public_key(self) -> str:
        """The public key in base64url (uncompressed point): the page's
        ``applicationServerKey`` and the header's ``k``."""
        return b64url(public_bytes(self.key.public_key()))

    def authorization(self, endpoint: str, now: float) -> str:
        """The ``Authorization`` header of a message to ``endpoint``."""
        claims = {
            "aud": audience(endpoint),
            "exp": int(now + LIFETIME),
            "sub": self.subject,
        }
        token = jwt.encode(claims, self.key, algorithm="ES256")
        return f"vapid t={token}, k={self.public_key}"
