"""The reactor uploadd, noded, the workers and uploadctl run on, as one type.

Only ``tap.py`` (and uploadctl's ``react``) hold the global reactor; they
check it with :func:`checked` and pass it down typed as :class:`IReactor`.
A part that needs only time takes ``IReactorTime`` (a ``Clock`` in tests);
one that also connects, listens, spawns or hands work to threads takes
``IReactor`` (``tests.support.FakeReactor`` in tests).

It is a zope Interface rather than a ``typing.Protocol``: the parts it
combines are Twisted's zope interfaces, which a Protocol cannot extend, and
mypy-zope checks a combination of them as one type.
"""

from __future__ import annotations

from typing import cast

from twisted.internet.interfaces import (
    IReactorCore,
    IReactorFromThreads,
    IReactorPluggableNameResolver,
    IReactorProcess,
    IReactorSSL,
    IReactorTCP,
    IReactorTime,
    IReactorUNIX,
)


class IReactor(
    IReactorCore,
    IReactorTime,
    IReactorTCP,
    IReactorSSL,
    IReactorUNIX,
    IReactorProcess,
    IReactorFromThreads,
    IReactorPluggableNameResolver,
):
    """Everything the programs ask of a reactor: start and stop (core),
    timers, TCP, TLS and UNIX sockets (listeners from endpoint strings,
    AMP, AMQP, SMTP, webhooks), child processes (rsync, ffmpeg), results
    from thread pools, and name resolution (webhook targets)."""


PARTS = (
    IReactorCore,
    IReactorTime,
    IReactorTCP,
    IReactorSSL,
    IReactorUNIX,
    IReactorProcess,
    IReactorFromThreads,
    IReactorPluggableNameResolver,
)


def checked(reactor: object) -> IReactor:
    """``reactor`` typed as :class:`IReactor`, once it provides every part
    (TypeError naming the missing ones otherwise). A reactor does not declare
    this combination, only its parts, so the type is asserted here, once."""
    missing = [part.__name__ for part in PARTS if not part.providedBy(reactor)]
    if missing:
        raise TypeError(f"{reactor!r} is not a full reactor: no {', '.join(missing)}")
    return cast(IReactor, reactor)
