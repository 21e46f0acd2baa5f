"""Passwords, tokens and scopes."""

from __future__ import annotations

import pytest
from twisted.internet.task import Clock

from uploadd.auth.passwords import hash_password, verify_password
from uploadd.auth.tokens import (
    Action,
    InvalidToken,
    Principal,
    TokenIssuer,
    bearer_token,
    check_scopes,
)


def test_passwords_verify_only_themselves() -> None:
    """A scrypt hash matches its password, not another, and is salted."""
    stored = hash_password("hunter2hunter2")
    assert stored.startswith("scrypt$16384$8$1$")
    assert verify_password("hunter2hunter2", stored)
    assert not verify_password("hunter3hunter3", stored)
    assert hash_password("hunter2hunter2") != stored
    assert not verify_password("x", "md5$abc")
    assert not verify_password("x", "garbage")


def test_tokens_round_trip_and_expire() -> None:
    """A token verifies to its principal until its expiry on the given clock."""
    clock = Clock()
    issuer = TokenIssuer(b"k" * 32, clock)
    alice = Principal(7, "alice", frozenset({"read", "write"}))
    token = issuer.issue(alice, 60)
    assert issuer.verify(token) == alice
    clock.advance(61)
    with pytest.raises(InvalidToken, match="expired"):
        issuer.verify(token)


def test_forged_tokens_are_refused() -> None:
    """A token signed with another key, or mangled, is invalid."""
    clock = Clock()
    token = TokenIssuer(b"a" * 32, clock).issue(
        Principal(1, "a", frozenset({"admin"})), 60
    )
    with pytest.raises(InvalidToken):
        TokenIssuer(b"b" * 32, clock).verify(token)
    with pytest.raises(InvalidToken):
        TokenIssuer(b"a" * 32, clock).verify(token[:-2])


def test_scopes_grant_what_they_say() -> None:
    """upload-only creates and nothing else; read lists and reads; write also
    deletes and shares; admin all."""

    def grants(scope: str) -> set[Action]:
        who = Principal(1, "x", frozenset({scope}))
        return {action for action in Action if who.can(action)}

    assert grants("upload-only") == {Action.CREATE}
    assert grants("read") == {Action.LIST, Action.READ}
    assert grants("write") == {
        Action.CREATE,
        Action.LIST,
        Action.READ,
        Action.DELETE,
        Action.SHARE,
    }
    assert grants("admin") == set(Action)
    with pytest.raises(ValueError, match="unknown scope superuser"):
        check_scopes(["superuser"])


def test_bearer_and_jwt_schemes() -> None:
    """Both 'Bearer <t>' and seed 003's 'JWT <t>' carry a token; Basic does not."""
    assert bearer_token(b"Bearer abc") == "abc"
    assert bearer_token(b"JWT abc") == "abc"
    assert bearer_token(b"Basic abc") is None
    assert bearer_token(None) is None


def test_a_remembered_token_expires_when_a_fresh_decode_says() -> None:
    """A token verified once and presented again is refused exactly when
    decoding it again would be: its expiry is whole seconds (``int(exp)``),
    also for an ``exp`` with a fraction, which the decoder rounds down."""
    import jwt

    secret = b"k" * 32
    clock = Clock()
    claims = {"iss": "uploadd", "sub": "7", "scope": "read", "exp": 100.5}
    token = jwt.encode(claims, secret, algorithm="HS256")
    remembering = TokenIssuer(secret, clock)
    clock.advance(99)
    assert remembering.verify(token).user_id == 7
    clock.advance(1.2)
    with pytest.raises(InvalidToken, match="expired"):
        TokenIssuer(secret, clock).verify(token)
    with pytest.raises(InvalidToken, match="expired"):
        remembering.verify(token)
