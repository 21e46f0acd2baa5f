"""Web Push's cryptography: RFC 8291 payload encryption and RFC 8292 VAPID."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from noded.secret import NoSecret
from tests.webpush import Browser, b64, check_vapid, unb64
from uploadd.workers import ece
from uploadd.workers.vapid import (
    KEY_FILE,
    BadVapidKey,
    Vapid,
    load_private_key,
    private_key_text,
)

# RFC 8291 Appendix A.
PLAINTEXT = b"When I grow up, I want to be a watermelon"
AS_PRIVATE = "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw"
UA_PUBLIC = (
    "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkN"
    "toIAiw4"
)
UA_PRIVATE = "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94"
SALT = "DGv6ra1nlYgDCS1FRnbzlw"
AUTH = "BTBZMqHH6r4Tts7J_aSIgg"
BODY = (
    "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vC"
    "YLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXL"
    "WyouBWLVWGNWQexSgSxsj_Qulcy4a-fN"
)


def key(text: str) -> ec.EllipticCurvePrivateKey:
    return ec.derive_private_key(int.from_bytes(unb64(text), "big"), ec.SECP256R1())


def test_encryption_reproduces_rfc_8291_appendix_a() -> None:
    """With the RFC's sender key and salt, the body is the RFC's, byte for
    byte, and the RFC's browser (http_ece) reads the plaintext back."""
    p256dh, auth = ece.browser_keys(UA_PUBLIC, AUTH)
    body = ece.encrypt(PLAINTEXT, p256dh, auth, key(AS_PRIVATE), unb64(SALT))
    assert b64(body) == BODY
    browser = Browser(key(UA_PRIVATE), unb64(AUTH))
    assert browser.read(body) == PLAINTEXT


def test_each_message_is_new_and_only_its_browser_reads_it() -> None:
    """A fresh sender key and salt per message: the same payload encrypts
    differently each time; its browser reads it, another browser cannot."""
    browser, other = Browser(), Browser()
    p256dh, auth = ece.browser_keys(**browser.keys)
    first, second = (ece.encrypt(b'{"n": 1}', p256dh, auth) for _ in range(2))
    assert first != second and first[:16] != second[:16]
    assert browser.read(first) == browser.read(second) == b'{"n": 1}'
    with pytest.raises(Exception):  # noqa: B017 - http_ece raises its own
        other.read(first)


def test_the_largest_payload_fits_a_push_service_limit() -> None:
    """MAX_PAYLOAD bytes make a 4096-byte body, the size every push service
    takes; one byte more is refused before anything is sent."""
    browser = Browser()
    p256dh, auth = ece.browser_keys(**browser.keys)
    body = ece.encrypt(b"x" * ece.MAX_PAYLOAD, p256dh, auth)
    assert len(body) == 4096
    assert browser.read(body) == b"x" * ece.MAX_PAYLOAD
    with pytest.raises(ValueError, match="3993 bytes at most"):
        ece.encrypt(b"x" * (ece.MAX_PAYLOAD + 1), p256dh, auth)


@pytest.mark.parametrize(
    ("p256dh", "auth", "wrong"),
    [
        ("not base64!", AUTH, "p256dh"),
        (b64(b"\x04" + b"\x01" * 64), AUTH, "p256dh"),  # not on the curve
        (b64(unb64(UA_PUBLIC)[:33]), AUTH, "p256dh"),  # a compressed point
        (UA_PUBLIC, b64(b"short"), "auth"),
        (UA_PUBLIC, "*" * 22, "auth"),
    ],
)
def test_subscription_keys_are_checked(p256dh: str, auth: str, wrong: str) -> None:
    """Keys that are not a P-256 point and a 16-byte secret are refused,
    naming which."""
    with pytest.raises(ece.BadKeys, match=f"keys.{wrong}"):
        ece.browser_keys(p256dh, auth)


def test_vapid_signs_for_the_push_service_origin() -> None:
    """``vapid t=<JWT>, k=<key>``: ES256 over aud (the endpoint's origin),
    exp (12 hours on) and sub, verifiable with the public key served."""
    vapid = Vapid(ec.generate_private_key(ec.SECP256R1()), "mailto:ops@example.com")
    endpoint = "https://push.example.net:8443/wpush/v2/abc?x=1"
    header = vapid.authorization(endpoint, 1000.0)
    claims = check_vapid(header, endpoint, vapid.public_key, 1000.0)
    assert claims == {
        "aud": "https://push.example.net:8443",
        "exp": 1000 + 12 * 3600,
        "sub": "mailto:ops@example.com",
    }
    other = Vapid(ec.generate_private_key(ec.SECP256R1()), "mailto:ops@example.com")
    forged = header.replace(vapid.public_key, other.public_key)
    with pytest.raises(Exception):  # noqa: B017 - InvalidSignature
        check_vapid(forged, endpoint, other.public_key, 1000.0)


def test_the_vapid_key_is_generated_once_private_or_configured(
    tmp_path: Path,
) -> None:
    """Unconfigured, a key is generated into the data dir (0600) and the
    same one read afterwards; a configured key wins; a broken one is an
    error that does not show it; a worker that may not create one is told."""
    data = tmp_path / "data"
    with pytest.raises(NoSecret):
        load_private_key("", data, create=False)
    made = load_private_key("", data)
    path = data / KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == private_key_text(made)
    again = load_private_key("", data, create=False)
    assert private_key_text(again) == private_key_text(made)
    assert private_key_text(load_private_key(AS_PRIVATE, data)) == AS_PRIVATE
    broken = "A" * 40 + "!!!"
    with pytest.raises(BadVapidKey, match=r"\[push\] vapid_private_key") as caught:
        load_private_key(broken, data)
    assert broken not in str(caught.value)
    path.write_text("garbage")
    with pytest.raises(BadVapidKey, match=KEY_FILE):
        load_private_key("", data)
