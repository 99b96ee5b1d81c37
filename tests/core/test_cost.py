"""Deductions as Kling reports them: tolerant, exact parsing; totals; our price table."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

import kling_elements as ke
from kling_elements.cost import SELECTION_UNITS, TASK_UNITS, Cost, PriceBook, parse_amount
from kling_elements.selection import SelectionState

D = Decimal


@pytest.mark.parametrize(("wire", "expected"), [
    ("2", D("2")), ("0.56", D("0.56")), (" 3.5 ", D("3.5")), (7, D("7")), (0.1, D("0.1")),
    ("0", D("0")), (None, None), ("", None), ("n/a", None), ("NaN", None), ("Infinity", None),
    (float("nan"), None), (float("inf"), None), (True, None), ([1], None), ({"a": 1}, None),
])
def test_amounts_are_read_exactly_and_nonsense_is_not_reported(wire, expected):
    assert parse_amount(wire) == expected


def test_a_task_answer_with_both_deductions():
    data = {"task_id": "1", "task_status": "succeed", "final_unit_deduction": "3.5",
            "final_balance_deduction": {"quota": "0.56", "list_price": "0.70"}}
    task = ke.Task.from_api(data)
    assert task.cost == Cost(D("3.5"), D("0.56"), D("0.70"))
    assert str(task.cost) == "3.5 units + 0.56 balance (list 0.7)"


def test_absent_deductions_are_not_reported_rather_than_zero():
    task = ke.Task.from_api({"task_id": "1", "task_status": "submitted"})
    assert task.cost == Cost() and not task.cost.known
    assert str(task.cost) == "not reported"
    zero = ke.Task.from_api({"task_id": "1", "task_status": "failed",
                             "final_unit_deduction": "0"})
    assert zero.cost.known and zero.cost.units == 0 and str(zero.cost) == "0 units"


def test_odd_deduction_shapes_never_fail_the_answer():
    data = {"session_id": "s", "fps": 30, "original_duration": 2000, "width": 720,
            "height": 720, "total_frame": 60, "final_unit_deduction": {"oops": 1},
            "final_balance_deduction": "0.3"}
    init = ke.InitResult.from_api(data)
    assert init.cost == Cost(units=None, quota=D("0.3"))


def test_every_selection_answer_carries_its_deduction():
    res = {"frame_index": 0, "rle_mask_list": []}
    assert ke.SelectionResult.from_api(
        {"res": res, "final_unit_deduction": 0.1}).cost.units == D("0.1")
    preview = ke.PreviewResult.from_api({"res": {"video": "https://x/v.mp4"},
                                         "final_unit_deduction": "0.2"})
    assert preview.cost.units == D("0.2")


def test_totals_are_exact_where_floats_are_not():
    steps = [Cost(units=D("0.1")), Cost(units=D("0.2")), Cost()]
    total = sum(steps, Cost())
    assert total.units == D("0.3")
    assert 0.1 + 0.2 != 0.3  # what a float total would have said
    assert (Cost() + Cost()).units is None
    assert (Cost(quota=D("1")) + Cost(units=D("2"))) == Cost(D("2"), D("1"), None)


def test_json_round_trip_keeps_every_digit():
    cost = Cost(D("1234.5678"), D("0.01"), None)
    text = json.dumps(cost.to_dict())
    assert json.loads(text) == {"units": 1234.5678, "quota": 0.01, "list_price": None}
    assert Cost.from_dict(json.loads(text)) == cost
    assert Cost(D("10")).to_dict()["units"] == 10 and isinstance(
        Cost(D("10")).to_dict()["units"], int)


def test_selection_state_carries_its_running_total_through_json():
    state = SelectionState(session_id="s", video_url="https://x/clip.mp4")
    state.charge(Cost(units=D("0.2")))
    state.charge(Cost(units=D("0.1")))
    state.charge_restore(Cost(units=D("0.3")))
    again = SelectionState.from_dict(json.loads(json.dumps(state.to_dict())))
    assert again.spent.units == D("0.6")
    assert again.restore_spent.units == D("0.3") and again.restores == 1
    # A state saved before costs were tracked reads as "nothing reported".
    old = state.to_dict()
    for key in ("cost", "restore_cost", "restores"):
        old.pop(key)
    legacy = SelectionState.from_dict(old)
    assert legacy.spent == Cost() and legacy.restores == 0


def test_price_book_starts_from_our_table_then_follows_the_answers():
    book = PriceBook()
    assert book.estimate(("task", "pro", "10")) == TASK_UNITS[("pro", "10")]
    assert book.estimate(("task", "std", None)) == TASK_UNITS[("std", "5")]  # Kling's default
    assert book.estimate(("init-selection",)) == SELECTION_UNITS["init-selection"]
    book.observe(("task", "std", "5"), D("1.25"))
    book.observe(("task", "std", "5"), D("1.1"))
    book.observe(("task", "std", "5"), None)
    assert book.estimate(("task", "std", "5")) == D("1.25")  # the most seen, never less
    assert book.estimate(("task", "std", "10")) == TASK_UNITS[("std", "10")]
