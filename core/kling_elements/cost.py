"""What Kling's answers say they deducted, and what we expect the next call to cost.

Every selection answer (init, add, delete, clear, preview) and every task carries
``final_unit_deduction`` (units taken from the account's resource packs) and, in the newer
docs, ``final_balance_deduction: {quota, list_price}`` (a cash deduction at the discounted
and at the list price; the currency is not stated). The docs type them as strings; numbers
are accepted too. :class:`Cost` holds them as :class:`decimal.Decimal`, so totals are exact
(``0.1 + 0.2`` units is ``0.3``, not ``0.30000000000000004``).

A field the answer does not carry is ``None`` ("not reported"), never 0: a total over
steps adds what was reported and stays ``None`` only if nothing was. A field that cannot be
read as a finite number is also ``None``; an answer is never refused for its cost, which
is an extra to the edit the caller asked for.

``TASK_UNITS`` and ``SELECTION_UNITS`` are **our estimate** of Kling's prices, not Kling's
word: the sandbox charges exactly these, and the batch budget uses them for a call of a
kind it has not yet seen answered (see :class:`PriceBook`).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

__all__ = [
    "SELECTION_UNITS",
    "TASK_UNITS",
    "Cost",
    "PriceBook",
    "json_number",
    "parse_amount",
    "task_kind",
]

# Units per edit task by (mode, duration): modelled on the 1 : 3.5 ratio of Standard to
# Professional that Kling publishes for its video models, 10 s costing twice 5 s.
TASK_UNITS: dict[tuple[str, str], Decimal] = {
    ("std", "5"): Decimal("1"),
    ("std", "10"): Decimal("2"),
    ("pro", "5"): Decimal("3.5"),
    ("pro", "10"): Decimal("7"),
}
# Units per selection call. Kling documents that these answers report a deduction but not
# its size; we assume small charges for the calls that compute something (segmenting a
# video, tracking it) and none for the ones that only edit the session's bookkeeping.
SELECTION_UNITS: dict[str, Decimal] = {
    "init-selection": Decimal("0.2"),
    "add-selection": Decimal("0.1"),
    "delete-selection": Decimal("0"),
    "clear-selection": Decimal("0"),
    "preview-selection": Decimal("0.2"),
}
KLING_DEFAULT_DURATION = "5"


def parse_amount(value: object) -> Decimal | None:
    """``value`` (a decimal string or a JSON number) as an exact Decimal; ``None`` if absent
    or not a finite number.

    Floats go through their shortest ``repr``, so ``0.1`` becomes ``Decimal("0.1")`` and not
    the binary approximation.
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        value = repr(value)
    if isinstance(value, int):
        return Decimal(value)
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        amount = Decimal(value.strip())
    except InvalidOperation:
        return None
    return amount if amount.is_finite() else None


def json_number(amount: Decimal | None) -> int | float | None:
    """A Decimal as a JSON number (an int when whole); exact for any amount of up to 15
    significant digits, as ``float``'s shortest repr prints it back unchanged."""
    if amount is None:
        return None
    return int(amount) if amount == amount.to_integral_value() else float(amount)


def _plus(a: Decimal | None, b: Decimal | None) -> Decimal | None:
    if a is None:
        return b
    return a if b is None else a + b


def _text(amount: Decimal) -> str:
    return format(amount.normalize(), "f")


@dataclass(frozen=True)
class Cost:
    """A deduction: ``units`` from resource packs, ``quota`` / ``list_price`` from the cash
    balance (discounted / list price). ``None``: not reported. ``Cost()`` is "nothing
    reported", the neutral element of ``+``."""

    units: Decimal | None = None
    quota: Decimal | None = None
    list_price: Decimal | None = None

    @property
    def known(self) -> bool:
        """Whether any part was reported."""
        return any(v is not None for v in (self.units, self.quota, self.list_price))

    def __add__(self, other: Cost) -> Cost:
        if not isinstance(other, Cost):
            return NotImplemented
        return Cost(_plus(self.units, other.units), _plus(self.quota, other.quota),
                    _plus(self.list_price, other.list_price))

    def __sub__(self, other: Cost) -> Cost:
        """What a running total grew by since ``other`` (an earlier value of it)."""
        if not isinstance(other, Cost):
            return NotImplemented
        return Cost(*(None if a is None else a - (b or 0) for a, b in (
            (self.units, other.units), (self.quota, other.quota),
            (self.list_price, other.list_price))))

    @classmethod
    def from_api(cls, data: Any) -> Cost:
        """The deduction fields of an answer's ``data`` (or of a task object); never raises."""
        if not isinstance(data, dict):
            return cls()
        balance = data.get("final_balance_deduction")
        if not isinstance(balance, dict):
            # An older or odd shape: a bare number is the discounted cash deduction.
            balance = {"quota": balance}
        return cls(
            units=parse_amount(data.get("final_unit_deduction")),
            quota=parse_amount(balance.get("quota")),
            list_price=parse_amount(balance.get("list_price")),
        )

    def to_dict(self) -> dict[str, int | float | None]:
        """JSON-ready: numbers (see :func:`json_number`), ``None`` for "not reported"."""
        return {"units": json_number(self.units), "quota": json_number(self.quota),
                "list_price": json_number(self.list_price)}

    @classmethod
    def from_dict(cls, data: Any) -> Cost:
        """The inverse of :meth:`to_dict` (tolerant: anything unreadable is ``None``)."""
        if not isinstance(data, dict):
            return cls()
        return cls(parse_amount(data.get("units")), parse_amount(data.get("quota")),
                   parse_amount(data.get("list_price")))

    def __str__(self) -> str:
        """``"1.3 units"``, ``"1 unit + 0.56 balance (list 0.7)"``, ``"not reported"``."""
        parts = []
        if self.units is not None:
            parts.append(f"{_text(self.units)} unit{'' if self.units == 1 else 's'}")
        if self.quota is not None and (self.quota or self.list_price):
            cash = f"{_text(self.quota)} balance"
            if self.list_price is not None and self.list_price != self.quota:
                cash += f" (list {_text(self.list_price)})"
            parts.append(cash)
        if not parts:
            return "0 units" if self.known else "not reported"
        return " + ".join(parts)


def task_kind(mode: str | None, duration: str | int | None) -> tuple[str, str]:
    """``(mode, duration)`` as Kling bills it: ``std`` and ``"5"`` when not sent."""
    return (mode or "std", str(duration) if duration else KLING_DEFAULT_DURATION)


class PriceBook:
    """Expected units of the next call of a kind: the most seen in this run's answers for
    that kind, else our table.

    The answers are the account's real prices (discounts, a price change, a model we did
    not tabulate); the table is only a start. The maximum, not the latest, is used so a
    kind whose price varies is never under-estimated. Thread-safe.
    """

    def __init__(self) -> None:
        self._seen: dict[tuple[str, ...], Decimal] = {}
        self._lock = threading.Lock()

    def observe(self, kind: tuple[str, ...], units: Decimal | None) -> None:
        if units is None:
            return
        with self._lock:
            known = self._seen.get(kind)
            self._seen[kind] = units if known is None else max(known, units)

    def estimate(self, kind: tuple[str, ...]) -> Decimal:
        """``kind`` is ``("task", mode, duration)`` or ``(endpoint,)``."""
        with self._lock:
            seen = self._seen.get(kind)
        if seen is not None:
            return seen
        if kind[0] == "task":
            mode, duration = task_kind(*kind[1:3])
            return TASK_UNITS.get((mode, duration), max(TASK_UNITS.values()))
        return SELECTION_UNITS.get(kind[0], Decimal(0))
