"""Sign-in throttling: failed passwords counted per username and per client
address over a sliding window, on the injected clock.

Every attempt counts as a failure from the moment it is admitted (so
parallel guesses cannot all slip in while the hashes are computed) and is
forgiven if the password was right. Once a username, or an address, has
``limit`` failures within ``window``, further attempts are refused without
looking at the password until the oldest of them leaves the window.
IPv6 clients are counted per /64, the block one host usually holds.

Instances sharing a bus count each other's failures: a wrong password is
announced, and every other instance counts it from the moment it hears it,
so guesses spread over the instances behind a load balancer meet the same
limits as guesses at one.
"""

from __future__ import annotations

import ipaddress
import math
import uuid
from collections import deque

import attrs
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from uploadd.events import topics
from uploadd.events.bus import IEventBus
from uploadd.store.interface import Event

log = Logger()


def address_key(host: str) -> str:
    """What failures from ``host`` are counted under: the IPv4 address
    (also for an IPv4-mapped IPv6 one), an IPv6 address's /64, or the text."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


@attrs.frozen
class SignInLimits:
    per_user: int = 10
    per_address: int = 50
    window: float = 900.0


@attrs.frozen
class Attempt:
    """An admitted attempt, counted as failed until forgiven."""

    username: str
    host: str
    at: float


@attrs.frozen
class Refusal:
    """Why an attempt was refused, and how long until one may be made."""

    detail: str
    retry_after: int


@attrs.define
class SignInThrottle:
    _clock: IReactorTime
    limits: SignInLimits = attrs.field(factory=SignInLimits)
    _failures: dict[str, deque[float]] = attrs.field(factory=dict)
    _swept_at: float = 0.0
    _bus: IEventBus | None = None
    #: This throttle's name in its announcements, to know its own when heard.
    _me: str = attrs.field(factory=lambda: uuid.uuid4().hex)

    def attach(self, bus: IEventBus) -> None:
        """Announce failed sign-ins on ``bus`` and count the others'."""
        self._bus = bus
        bus.hear(topics.SIGNIN_FAILED, self.heard)

    def admit(self, username: str, host: str) -> Attempt | Refusal:
        """A refusal if ``username`` or ``host`` has failed too often lately;
        else the attempt, counted as failed until :meth:`forgive`."""
        now = self._clock.seconds()
        self._sweep(now)
        keys = (
            ("user:" + username, self.limits.per_user, f"for {username}"),
            ("addr:" + address_key(host), self.limits.per_address, "from this address"),
        )
        for key, limit, where in keys:
            recent = self._recent(key, now)
            if len(recent) >= limit:
                wait = max(1, math.ceil(recent[-limit] + self.limits.window - now))
                return Refusal(
                    f"too many failed sign-ins {where}; try again in {wait} s", wait
                )
        self._count(username, address_key(host), now)
        return Attempt(username, host, now)

    def _count(self, username: str, address: str, now: float) -> None:
        """One failure for ``username`` and from ``address`` (a key)."""
        keys = (
            ("user:" + username, self.limits.per_user, f"for {username}"),
            ("addr:" + address, self.limits.per_address, "from this address"),
        )
        for key, limit, where in keys:
            recent = self._failures.setdefault(key, deque(maxlen=limit))
            recent.append(now)
            if len(recent) == limit:
                log.warn(
                    "sign-ins {where} refused for a while: {limit} failures"
                    " within {window} s",
                    where=where,
                    limit=limit,
                    window=self.limits.window,
                )

    def failed(self, attempt: Attempt) -> None:
        """``attempt`` had a wrong password: it counts here already; tell the
        other instances."""
        if self._bus is None:
            return
        news = Event(
            topics.SIGNIN_FAILED,
            {
                "origin": self._me,
                "username": attempt.username,
                "address": address_key(attempt.host),
            },
            None,
            attempt.at,
        )
        self._bus.announce(news).addErrback(
            lambda f: log.info(
                "a failed sign-in not announced: {why}", why=f.getErrorMessage()
            )
        )

    async def heard(self, event: Event) -> None:
        """Another instance's failed sign-in counts here from now."""
        news = event.payload
        if news["origin"] != self._me:
            now = self._clock.seconds()
            self._sweep(now)
            self._count(news["username"], news["address"], now)

    def forgive(self, attempt: Attempt) -> None:
        """``attempt`` had the right password: it does not count."""
        for key in ("user:" + attempt.username, "addr:" + address_key(attempt.host)):
            recent = self._failures.get(key)
            if recent is not None and attempt.at in recent:
                recent.remove(attempt.at)

    def _recent(self, key: str, now: float) -> deque[float]:
        recent = self._failures.get(key, deque())
        while recent and recent[0] <= now - self.limits.window:
            recent.popleft()
        return recent

    def _sweep(self, now: float) -> None:
        """Forget keys with no failure in the window, once per window, so
        guesses at many names do not grow the table for ever."""
        if now - self._swept_at < self.limits.window:
            return
        self._swept_at = now
        for key in [k for k, d in self._failures.items() if not self._recent(k, now)]:
            del self._failures[key]
