"""What the sandbox charges, and the account those charges come from.

Prices are the core's estimate (``cost.SELECTION_UNITS`` and ``cost.TASK_UNITS``), so a
client's expectation and the sandbox's answers agree by construction, and tests can check
sums exactly. Every successful selection answer (init, add, delete, clear, preview) carries
``final_unit_deduction`` (a decimal string, as Kling documents it) and
``final_balance_deduction: {quota, list_price}`` (``"0"``: the sandbox account pays from
resource packs, never from a cash balance). A task costs its units from the moment it is
created; one that ends ``failed`` reports ``"0"`` (refunded), so a refused prompt costs
nothing.

The account has one resource pack of ``pack_units`` units. ``GET /account/costs`` reports
``remaining = total - every deduction`` (selection charges plus the units of every task
not failed), counting only deductions older than ``account_lag_s`` (Kling warns its figure
may lag up to 12 h; the default lag is 0). Creating a task the pack cannot pay for is
refused with 1102. The account is one for all keys, and it answers at most one query per
second (1302 otherwise), as Kling asks.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING

from ..cost import SELECTION_UNITS, TASK_UNITS, task_kind
from .config import ApiError, SandboxConfig

if TYPE_CHECKING:
    from .state import Task

__all__ = ["ACCOUNT_QPS_INTERVAL_S", "PACK_NAME", "Billing", "deduction_fields", "task_units",
           "units_for"]

ACCOUNT_QPS_INTERVAL_S = 1.0
PACK_NAME = "Sandbox video pack"
PACK_ID = "sandbox-pack-1"
PACK_LIFETIME_S = 365 * 86400.0
ZERO = Decimal(0)


def deduction_fields(units: Decimal) -> dict:
    """The deduction fields of an answer, as Kling writes them (strings)."""
    return {"final_unit_deduction": format(units, "f"),
            "final_balance_deduction": {"quota": "0", "list_price": "0"}}


def units_for(mode: str, duration: str | None) -> Decimal:
    """What a task of ``mode`` and ``duration`` costs (the priciest for an unknown pair)."""
    return TASK_UNITS.get(task_kind(mode, duration), max(TASK_UNITS.values()))


def task_units(task: Task) -> Decimal:
    return units_for(task.mode, task.duration)


def _ms(seconds: float) -> int:
    return int(seconds * 1000)


class Billing:
    """The account's ledger of selection charges and its one resource pack. Thread-safe."""

    def __init__(self, config: SandboxConfig, opened_at: float) -> None:
        self.pack_units = Decimal(repr(float(config.pack_units)))
        self.lag_s = float(config.account_lag_s)
        self.opened_at = opened_at
        self._charges: list[tuple[float, Decimal]] = []
        self._last_query = -float("inf")
        self._lock = threading.Lock()

    def charge(self, endpoint: str, now: float) -> dict:
        """Record one selection call's charge; the fields its answer carries."""
        units = SELECTION_UNITS[endpoint]
        with self._lock:
            self._charges.append((now, units))
        return deduction_fields(units)

    def spent(self, tasks: list[Task], status: Callable[[Task], str], until: float) -> Decimal:
        """Every deduction made at or before ``until``: selection charges and the units of the
        tasks created by then that have not (visibly) failed."""
        with self._lock:
            selections = sum((u for t, u in self._charges if t <= until), ZERO)
        paid = sum((task_units(t) for t in tasks
                    if t.created_at <= until and status(t) != "failed"), ZERO)
        return selections + paid

    def check_affordable(self, needed: Decimal, tasks: list[Task],
                         status: Callable[[Task], str], now: float) -> None:
        """1102 when the pack cannot pay ``needed`` units (the real balance, without lag)."""
        left = self.pack_units - self.spent(tasks, status, now)
        if needed > left:
            raise ApiError(1102, f"the resource pack has {format(left, 'f')} units left and "
                                 f"this task needs {format(needed, 'f')}: buy or renew a pack")

    def account(self, query: dict[str, str], tasks: list[Task], status: Callable[[Task], str],
                now: float) -> dict:
        """The ``data`` of ``GET /account/costs`` (1201 bad times, 1302 faster than 1/s)."""
        times = {}
        for name in ("start_time", "end_time"):
            raw = (query.get(name) or "").strip()
            if not raw.isdigit():
                raise ApiError(1201, f"{name} {raw!r} is required: Unix time in milliseconds")
            times[name] = int(raw)
        if times["start_time"] > times["end_time"]:
            raise ApiError(1201, "start_time must not be after end_time")
        with self._lock:
            if now - self._last_query < ACCOUNT_QPS_INTERVAL_S:
                raise ApiError(1302, "account queries are limited to 1 per second: slow down")
            self._last_query = now
        remaining = max(self.pack_units - self.spent(tasks, status, now - self.lag_s), ZERO)
        invalid = self.opened_at + PACK_LIFETIME_S
        pack = {
            "resource_pack_name": PACK_NAME, "resource_pack_id": PACK_ID,
            "resource_pack_type": "decreasing_total",
            "total_quantity": float(self.pack_units), "remaining_quantity": float(remaining),
            "purchase_time": _ms(self.opened_at), "effective_time": _ms(self.opened_at),
            "invalid_time": _ms(invalid),
            "status": "runOut" if remaining <= 0 else ("online" if now < invalid else "expired"),
        }
        overlaps = (pack["effective_time"] <= times["end_time"]
                    and pack["invalid_time"] >= times["start_time"])
        wanted = query.get("resource_pack_name")
        listed = [pack] if overlaps and (not wanted or wanted == PACK_NAME) else []
        return {"code": 0, "msg": "", "resource_pack_subscribe_infos": listed}
