"""The panels' cost lines, without Blender."""

from __future__ import annotations

from decimal import Decimal

from blender_addon.pure.cost_text import account_text, session_cost_text
from kling_elements import AccountCosts, ResourcePack, SelectionState
from kling_elements.cost import Cost

D = Decimal


def pack(remaining: str, status: str = "online") -> ResourcePack:
    return ResourcePack("p", "1", "decreasing_total", D("100"), D(remaining), status)


def test_the_session_line_adds_restores_only_when_there_were_some():
    state = SelectionState(session_id="s")
    assert session_cost_text(state) == "Spent: not reported"
    state.charge(Cost(units=D("0.2")))
    state.charge(Cost(units=D("0.1")))
    assert session_cost_text(state) == "Spent: 0.3 units"
    state.charge_restore(Cost(units=D("0.3")))
    assert session_cost_text(state) == "Spent: 0.6 units (1 restore: 0.3 units)"
    state.charge_restore(Cost(units=D("0.3")))
    assert session_cost_text(state).endswith("(2 restores: 0.6 units)")


def test_the_account_line_counts_only_the_packs_in_effect():
    costs = AccountCosts((pack("40.5"), pack("7"), pack("50", "expired")))
    assert account_text(costs) == "Account: 47.5 units left (may lag up to 12 h)"
    assert account_text(AccountCosts((pack("0", "runOut"), pack("9", "expired")))) == (
        "Account: no resource pack in effect (packs: expired, runOut)")
    assert account_text(AccountCosts(())) == "Account: no resource pack in effect (packs: none)"
