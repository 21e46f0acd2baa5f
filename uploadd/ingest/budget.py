"""One memory budget for every body the process receives.

Each sink holds the bytes it read from its socket and the writer threads have
not finished with. Per sink, ``[ingest] high_water`` bounds that; across the
process, ``[ingest] memory_budget`` does: once the sum of all holdings is over
the budget, the sink holding the most stops reading (and the one adding to
it, if it holds more than its share), and once the sum is back under three
quarters of the budget every sink stopped so reads again. Many slow disks or
many uploads at once therefore cost the budget, not uploads times high water.
"""

from __future__ import annotations

from typing import Protocol

import attrs


class Holder(Protocol):
    """A body that can be told to stop reading for the budget's sake."""

    def squeeze(self) -> None: ...

    def relieve(self) -> None: ...


@attrs.define(eq=False)
class MemoryBudget:
    limit: int
    total: int = 0
    _held: dict[Holder, int] = attrs.field(factory=dict)
    _squeezed: set[Holder] = attrs.field(factory=set)

    def update(self, holder: Holder, held: int) -> None:
        """``holder`` now holds ``held`` bytes (0: it is done)."""
        self.total += held - self._held.get(holder, 0)
        if held:
            self._held[holder] = held
        else:
            # Holding nothing, it is not what fills the budget: it reads again
            # (a finished body ignores that).
            self._held.pop(holder, None)
            if holder in self._squeezed:
                self._squeezed.discard(holder)
                holder.relieve()
        if self.total > self.limit:
            self._squeeze(holder)
        elif self._squeezed and self.total <= self.limit * 3 // 4:
            relieved, self._squeezed = self._squeezed, set()
            for each in relieved:
                each.relieve()

    def _squeeze(self, adding: Holder) -> None:
        free = [h for h in self._held if h not in self._squeezed]
        if not free:
            return
        largest = max(free, key=self._held.__getitem__)
        victims = {largest}
        share = self.limit // max(1, len(self._held))
        held = self._held.get(adding, 0)
        if held >= share and adding not in self._squeezed:
            victims.add(adding)
        for victim in victims:
            self._squeezed.add(victim)
            victim.squeeze()

    @property
    def holders(self) -> int:
        return len(self._held)
