"""Sign-in is rate-limited per username and per client address."""

from __future__ import annotations

from pathlib import Path

import pytest_twisted
from twisted.internet.task import Clock

from tests.support import PASSWORD, harness
from uploadd.auth.throttle import (
    Attempt,
    Refusal,
    SignInLimits,
    SignInThrottle,
    address_key,
)


@pytest_twisted.ensureDeferred()
async def test_wrong_passwords_for_a_username_get_429_until_the_window_passes(
    tmp_path: Path,
) -> None:
    """With 3 failures allowed per username in 60 s, 30 wrong passwords in a
    row (on both sign-in routes) give three 401s and then 429s with a
    Retry-After; the right password is refused too until the oldest failure
    has left the window, and then works."""
    h = harness(
        tmp_path,
        settings={
            ("auth", "signin_failures_per_user"): "3",
            ("auth", "signin_window"): "60s",
        },
    )
    h.user("alice")
    codes = []
    for attempt in range(30):
        route = "/auth/token" if attempt % 2 else "/api-token-auth/"
        reply = await h.call(
            "POST", route, data={"username": "alice", "password": "wrong"}
        )
        codes.append(reply.code)
        h.clock.advance(0.05)
    assert codes == [401] * 3 + [429] * 27
    refused = await h.call(
        "POST", "/auth/token", data={"username": "alice", "password": PASSWORD}
    )
    assert refused.code == 429
    assert refused.header("content-type") == "application/problem+json"
    assert refused.header("retry-after") == "59"
    assert refused.json()["retry_after"] == 59
    assert "alice" in refused.json()["detail"]
    h.clock.advance(59)
    right = await h.call(
        "POST", "/auth/token", data={"username": "alice", "password": PASSWORD}
    )
    assert right.code == 200


@pytest_twisted.ensureDeferred()
async def test_right_passwords_do_not_count(tmp_path: Path) -> None:
    """A user who signs in often is never throttled."""
    h = harness(tmp_path, settings={("auth", "signin_failures_per_user"): "2"})
    h.user("alice")
    for _ in range(5):
        reply = await h.call(
            "POST", "/auth/token", data={"username": "alice", "password": PASSWORD}
        )
        assert reply.code == 200


def test_failures_from_one_address_are_limited_across_usernames() -> None:
    """Guessing many usernames from one address hits the address limit;
    another address is unaffected; an IPv6 client is counted per /64 and
    an IPv4-mapped one as its IPv4 address."""
    clock = Clock()
    throttle = SignInThrottle(clock, SignInLimits(per_user=100, per_address=3))
    for name in ("a", "b", "c"):
        assert isinstance(throttle.admit(name, "192.0.2.7"), Attempt)
    refused = throttle.admit("d", "::ffff:192.0.2.7")
    assert isinstance(refused, Refusal) and "address" in refused.detail
    assert isinstance(throttle.admit("d", "192.0.2.8"), Attempt)
    assert address_key("2001:db8:1:2:3:4:5:6") == "2001:db8:1:2::/64"
    for name in ("a", "b", "c"):
        throttle.admit(name, f"2001:db8::{name}")
    assert isinstance(throttle.admit("e", "2001:db8::ffff"), Refusal)
    assert isinstance(throttle.admit("e", "2001:db8:0:1::1"), Attempt)


def test_attempts_in_flight_count_before_their_password_is_checked() -> None:
    """Parallel guesses cannot all slip in while their hashes are computed:
    every admitted attempt counts until it is forgiven."""
    throttle = SignInThrottle(Clock(), SignInLimits(per_user=3, per_address=100))
    admitted = [throttle.admit("alice", "192.0.2.1") for _ in range(3)]
    assert all(isinstance(a, Attempt) for a in admitted)
    assert isinstance(throttle.admit("alice", "192.0.2.1"), Refusal)
    first = admitted[0]
    assert isinstance(first, Attempt)
    throttle.forgive(first)
    assert isinstance(throttle.admit("alice", "192.0.2.1"), Attempt)


def test_old_failures_are_forgotten() -> None:
    """Keys whose failures all left the window are dropped, so guesses at
    many names do not grow the table for ever."""
    clock = Clock()
    throttle = SignInThrottle(clock, SignInLimits(window=60))
    for number in range(100):
        throttle.admit(f"user{number}", "192.0.2.1")
    clock.advance(61)
    throttle.admit("alice", "192.0.2.2")
    assert len(throttle._failures) == 2
