"""What the panels say about cost: pure text from the core's data, no ``bpy``.

The session's line comes from its ``SelectionState`` (stored on the strip), which adds up
every deduction Kling reported for the marks, restores included; the account's line from
``/account/costs``, whose remaining quantity Kling says may lag up to 12 h.
"""

from __future__ import annotations

from decimal import Decimal

from kling_elements import AccountCosts, SelectionState

__all__ = ["account_text", "session_cost_text"]


def _units(amount: Decimal) -> str:
    return format(amount.normalize(), "f")


def session_cost_text(state: SelectionState) -> str:
    """E.g. ``Spent: 0.9 units (1 restore: 0.3 units)``."""
    text = f"Spent: {state.spent}"
    if state.restores:
        plural = "s" if state.restores != 1 else ""
        text += f" ({state.restores} restore{plural}: {state.restore_spent})"
    return text


def account_text(costs: AccountCosts) -> str:
    """E.g. ``Account: 9998.7 units left (may lag up to 12 h)``."""
    usable = [p for p in costs.packs if p.usable]
    if not usable:
        states = ", ".join(sorted({p.status for p in costs.packs})) or "none"
        return f"Account: no resource pack in effect (packs: {states})"
    return f"Account: {_units(costs.remaining)} units left (may lag up to 12 h)"
