"""Blocking work off the reactor thread, as both daemons do it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from twisted.internet.defer import Deferred, maybeDeferred


class Runner(Protocol):
    """Runs a blocking callable off the reactor thread, result as a Deferred."""

    def __call__(
        self, function: Callable[..., Any], /, *args: Any
    ) -> Deferred[Any]: ...


def run_inline(function: Callable[..., Any], /, *args: Any) -> Deferred[Any]:
    """A Runner that runs in the calling thread: for unit tests."""
    return maybeDeferred(function, *args)
