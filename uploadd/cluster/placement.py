"""Placement: which nodes get a file's copies.

Distinct nodes that are UP, active, not read-only or draining, with room for
the file above their reserve; spread across zones while unused zones remain;
among those, chosen at random weighted by room, so fuller nodes fill more
slowly. Room counts the copies already on their way to a node (``in_flight``,
reserved by the replicator the moment it places a copy), so files stored at
once cannot together overshoot a node's reserve. ``in_flight`` is this
process's own count: uploadd instances sharing nodes do not see each other's
copies on their way until the node reports the space they took.
"""

from __future__ import annotations

import random
from collections.abc import Iterable

from uploadd.cluster.registry import Node


def choose(
    nodes: Iterable[Node],
    count: int,
    size: int,
    holders: Iterable[Node] = (),
    rng: random.Random | None = None,
    exclude: Iterable[str] = (),
) -> list[Node]:
    """Up to ``count`` nodes for a file of ``size`` bytes that ``holders``
    already hold (their zones count as used); never one in ``exclude``."""
    rng = rng or random.Random()
    held = {node.id for node in holders} | set(exclude)
    zones = {node.zone for node in holders if node.zone}
    candidates = [
        node
        for node in nodes
        if node.usable and node.id not in held and node.room >= size
    ]
    chosen: list[Node] = []
    while candidates and len(chosen) < count:
        fresh = [n for n in candidates if not n.zone or n.zone not in zones]
        pool = fresh or candidates
        weights = [max(1, n.room) for n in pool]
        pick = rng.choices(pool, weights=weights, k=1)[0]
        chosen.append(pick)
        candidates.remove(pick)
        if pick.zone:
            zones.add(pick.zone)
    return chosen
