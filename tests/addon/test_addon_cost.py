"""What the add-on shows of cost: the session's running total (restores included), each
task's deduction, and the account's balance fetched on the worker."""

from __future__ import annotations

from decimal import Decimal

import pytest

from .conftest import bpy, drain
from .test_addon_edit import generate_removal, settle

D = Decimal


def _marked(strip, clip):
    from blender_addon.bridge.props import load_selection
    from blender_addon.ops import select as ops_select

    assert bpy.ops.kling.start_session() == {"FINISHED"}
    drain()
    ops_select.request_add(bpy.context, strip, 0, [clip.center(0)])
    drain()
    state = load_selection(strip)
    assert state is not None, bpy.context.window_manager.kling.error
    return state


@pytest.fixture
def own_sandbox(tmp_path, connected):
    """A sandbox of this test's own: its clock jumps 24 h, and its account counts only this
    test's deductions."""
    from kling_elements.sandbox import running

    with running(task_seconds=0.3, data_dir=tmp_path / "sandbox") as sb:
        connected.custom_url = sb.base_url
        connected.auth_mode, connected.api_key = "api_key", sb.api_key
        yield sb
        connected.auth_mode = "keys"


def test_session_task_and_account_costs_are_shown(movie_strip, clip, own_sandbox):
    import httpx

    from blender_addon.bridge.props import load_selection
    from blender_addon.ops import select as ops_select
    from blender_addon.pure import cost_text
    from kling_elements.cost import SELECTION_UNITS, TASK_UNITS

    init, add = SELECTION_UNITS["init-selection"], SELECTION_UNITS["add-selection"]
    state = _marked(movie_strip, clip)
    assert state.spent.units == init + add
    assert cost_text.session_cost_text(state) == f"Spent: {init + add} units"

    # The session expires; the next click restores it (init + the marked frame again).
    with httpx.Client(base_url=own_sandbox.base_url,
                      headers={"Authorization": f"Bearer {own_sandbox.api_key}"}) as http:
        assert http.post("/sandbox/clock", json={"advance_s": 24 * 3600 + 60}).status_code == 200
    ops_select.request_add(bpy.context, movie_strip, 20, [clip.center(20)])
    drain()
    state = load_selection(movie_strip)
    assert state.restores == 1 and state.restore_spent.units == init + add
    assert state.spent.units == 2 * (init + add) + add
    assert "(1 restore: 0.3 units)" in cost_text.session_cost_text(state)

    generate_removal(movie_strip)
    settle()
    record = movie_strip.kling.tasks[-1]
    assert record.status == "succeed", record.message
    assert record.cost == f"{TASK_UNITS[('std', '5')]} unit"

    wm = bpy.context.window_manager
    assert bpy.ops.kling.refresh_account_costs() == {"FINISHED"}
    settle()  # the query runs on the background worker
    assert wm.kling.error == ""
    left = D(own_sandbox.config.pack_units) - state.spent.units - TASK_UNITS[("std", "5")]
    assert wm.kling.account_left == f"Account: {left} units left (may lag up to 12 h)"


def test_the_balance_is_fetched_only_with_online_access(connected, movie_strip):
    system = bpy.context.preferences.system
    before = system.use_online_access
    connected.region = "global"
    try:
        system.use_online_access = False
        assert not bpy.ops.kling.refresh_account_costs.poll()
        system.use_online_access = True
        assert bpy.ops.kling.refresh_account_costs.poll()
    finally:
        connected.region = "custom"
        system.use_online_access = before
