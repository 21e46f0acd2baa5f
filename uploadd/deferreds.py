"""Deferred helpers."""

from __future__ import annotations

from typing import TypeVar

from twisted.internet.defer import Deferred

T = TypeVar("T")


def shield(work: Deferred[T]) -> Deferred[T]:
    """A Deferred with ``work``'s result whose cancellation leaves ``work`` running.

    Klein cancels a handler when its client disconnects; work that must finish
    once begun (rename a file, then record it) is awaited through a shield.
    """
    outer: Deferred[T] = Deferred()

    def forward(result: object) -> object:
        if not outer.called:
            outer.callback(result)  # type: ignore[arg-type]
        return None

    def forward_error(failure: object) -> None:
        if not outer.called:
            outer.errback(failure)  # type: ignore[arg-type]

    work.addCallbacks(forward, forward_error)
    return outer
