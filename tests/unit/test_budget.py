"""The memory budget all bodies share: who stops reading, and when all read again."""

from __future__ import annotations

import attrs

from uploadd.ingest.budget import MemoryBudget


@attrs.define(eq=False)
class Body:
    name: str
    squeezed: bool = False
    calls: list[str] = attrs.field(factory=list)

    def squeeze(self) -> None:
        self.squeezed = True
        self.calls.append("squeeze")

    def relieve(self) -> None:
        self.squeezed = False
        self.calls.append("relieve")


def test_under_the_budget_nobody_stops() -> None:
    """Holdings adding up to the budget leave every body reading."""
    budget = MemoryBudget(100)
    bodies = [Body(str(n)) for n in range(4)]
    for body in bodies:
        budget.update(body, 25)
    assert budget.total == 100
    assert not any(body.squeezed for body in bodies)


def test_over_the_budget_the_largest_holder_stops() -> None:
    """Past the budget the body holding the most stops reading; a small
    body adding its first bytes does not."""
    budget = MemoryBudget(100)
    big, middle, small = Body("big"), Body("middle"), Body("small")
    budget.update(big, 60)
    budget.update(middle, 30)
    budget.update(small, 11)
    assert (big.squeezed, middle.squeezed, small.squeezed) == (True, False, False)


def test_a_body_adding_more_than_its_share_stops_too() -> None:
    """The body pushing the total over stops as well when it holds at least
    the budget divided among the holders."""
    budget = MemoryBudget(100)
    first, second = Body("first"), Body("second")
    budget.update(first, 55)
    budget.update(second, 50)
    assert first.squeezed and second.squeezed


def test_all_read_again_once_the_total_falls_to_three_quarters() -> None:
    """Stopped bodies are relieved together when the total is back at three
    quarters of the budget, not before."""
    budget = MemoryBudget(100)
    big, other = Body("big"), Body("other")
    budget.update(big, 80)
    budget.update(other, 30)
    assert big.squeezed
    budget.update(big, 50)  # total 80: still over three quarters
    assert big.squeezed
    budget.update(big, 40)  # total 70
    assert not big.squeezed and big.calls == ["squeeze", "relieve"]


def test_a_body_holding_nothing_reads_again_and_leaves_the_budget() -> None:
    """A stopped body whose bytes are all written reads again even while
    others keep the total over the budget (it holds none of it); reporting
    0 forgets it: the total returns to zero and it is not squeezed again."""
    budget = MemoryBudget(10)
    body, other = Body("body"), Body("other")
    budget.update(body, 20)
    assert body.squeezed
    budget.update(other, 30)
    budget.update(body, 0)
    assert not body.squeezed and other.squeezed
    budget.update(other, 5)
    assert budget.total == 5 and budget.holders == 1
    assert body.calls == ["squeeze", "relieve"]
    budget.update(other, 0)
    assert budget.total == 0 and budget.holders == 0
