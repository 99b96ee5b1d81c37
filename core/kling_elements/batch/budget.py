"""A spend limit for a batch: no new task once the units reported plus those expected would
pass it.

The budget is in units (``final_unit_deduction``, what resource packs are counted in);
cash deductions (``final_balance_deduction``) are reported but not limited. It covers the
jobs of one run (one shard) across every run of them: each job's state file keeps what its
steps were reported to cost (``ledger``), so a second run with the same budget holds the
same jobs again, and one with a larger budget continues them.

Each job is checked twice: before it starts (nothing is sent for a job that cannot fit: its
session, clicks and task are expected to cost the estimate of each call), and just before
its task is created (the task's exact mode and duration are known then). Between reported
deductions, a job's outstanding estimate is reserved, so jobs running side by side cannot
each pass the check and together overshoot. Estimates come from ``cost.PriceBook``: the
most seen in the answers for that kind of call, else our price table.
"""

from __future__ import annotations

import threading
from decimal import Decimal

from ..cost import PriceBook

__all__ = ["Budget", "BudgetHeld"]

ZERO = Decimal(0)


def _text(amount: Decimal) -> str:
    return format(amount.normalize(), "f")


class BudgetHeld(Exception):
    """A job was held back: running it would pass the budget. Nothing was sent for the step
    it was about to take."""

    def __init__(self, name: str, needed: Decimal, committed: Decimal, limit: Decimal) -> None:
        self.name, self.needed, self.committed, self.limit = name, needed, committed, limit
        super().__init__(
            f"held: budget: {_text(committed)} of {_text(limit)} units are spent or expected "
            f"and this job needs about {_text(needed)} more: run again with a larger --budget "
            "to continue it"
        )


class Budget:
    """Units reported and expected per job, against ``limit`` (``None``: no limit, only
    counting). Thread-safe."""

    def __init__(self, limit: Decimal | None, prices: PriceBook | None = None) -> None:
        if limit is not None and (not limit.is_finite() or limit < 0):
            raise ValueError(f"budget {limit} must be a number of units >= 0")
        self.limit = limit
        self.prices = prices or PriceBook()
        self._reported: dict[str, Decimal] = {}
        self._expected: dict[str, Decimal] = {}
        self._lock = threading.Lock()

    def spent(self) -> Decimal:
        """Units Kling reported deducting for these jobs (every run)."""
        with self._lock:
            return sum(self._reported.values(), ZERO)

    def committed(self) -> Decimal:
        """Spent plus what running jobs are still expected to cost."""
        with self._lock:
            return sum(self._reported.values(), ZERO) + sum(self._expected.values(), ZERO)

    def reserve(self, name: str, needed: Decimal) -> None:
        """Expect ``needed`` more units from ``name`` (replacing what it was expected to
        cost), or raise :class:`BudgetHeld` if that would pass the limit."""
        with self._lock:
            others = (sum(self._reported.values(), ZERO) + sum(self._expected.values(), ZERO)
                      - self._expected.get(name, ZERO))
            if self.limit is not None and others + needed > self.limit:
                raise BudgetHeld(name, needed, others, self.limit)
            self._expected[name] = needed

    def report(self, name: str, total_units: Decimal, *, settled: bool = False) -> None:
        """``name``'s steps were reported to cost ``total_units`` in all; what grew is taken
        off its expectation (``settled``: nothing more is expected)."""
        with self._lock:
            grown = total_units - self._reported.get(name, ZERO)
            self._reported[name] = total_units
            left = ZERO if settled else max(self._expected.get(name, ZERO) - grown, ZERO)
            self._expected[name] = left

    def settle(self, name: str) -> None:
        """Nothing more is expected from ``name`` (it ended)."""
        with self._lock:
            self._expected.pop(name, None)
