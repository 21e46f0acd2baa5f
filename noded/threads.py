"""Running blocking work off the reactor thread.

A :class:`Runner` is how every part that touches the disk or a blocking
library (hashing, fsync, SQLite, scrypt) runs it: in a thread pool, its
result as a Deferred. Both daemons import it from here; tests run work
inline with :func:`run_inline`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Protocol

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.interfaces import IReactorFromThreads
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool


class Runner(Protocol):
    """Runs a blocking callable off the reactor thread, result as a Deferred."""

    def __call__(
        self, function: Callable[..., Any], /, *args: Any
    ) -> Deferred[Any]: ...


def run_inline(function: Callable[..., Any], /, *args: Any) -> Deferred[Any]:
    """A Runner that runs in the calling thread: for unit tests."""
    return maybeDeferred(function, *args)


def pool_runner(reactor: IReactorFromThreads, pool: ThreadPool) -> Runner:
    """A Runner on ``pool`` (which its owner starts and stops)."""
    return functools.partial(deferToThreadPool, reactor, pool)
