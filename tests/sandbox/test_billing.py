"""The sandbox's charges and account through HTTP: every answer says what it deducted, the
account's remaining quantity is the pack minus exactly those deductions, the account query
keeps Kling's pace (1/s) and lag, and a task the pack cannot pay for is refused (1102)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from kling_elements.cost import SELECTION_UNITS, TASK_UNITS
from kling_elements.sandbox import running

from ..support.fixtures import sandbox_fixture
from ..support.sandbox import API, REMOVE_PROMPT, advance, client, ok, refused, upload, wait_task

pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
D = Decimal
PACK = 20.0
YEAR_MS = 365 * 86400 * 1000


@pytest.fixture(scope="module")
def clip(make_plate):
    return make_plate(720, 720, 24, 2.0)


sandbox = sandbox_fixture(scope="function", task_seconds=0.2, pack_units=PACK,
                          max_concurrent_tasks=50)


@pytest.fixture
def api(sandbox):
    with client(sandbox) as c:
        yield c


def units(data: dict) -> Decimal:
    """The unit deduction of an answer, checked to have Kling's documented shape."""
    assert isinstance(data["final_unit_deduction"], str)
    assert data["final_balance_deduction"] == {"quota": "0", "list_price": "0"}
    return D(data["final_unit_deduction"])


def account(api, **params) -> dict:
    now = ok(api.get("/sandbox/clock"))["now_ms"]
    query = {"start_time": now - YEAR_MS, "end_time": now, **params}
    return ok(api.get("/account/costs", params=query))


def the_pack(api) -> dict:
    (pack,) = account(api)["resource_pack_subscribe_infos"]
    advance(api, 1.0)  # the next query may come a second later
    return pack


def edit(api, clip, **create) -> tuple[list[Decimal], str]:
    """Init, add on two frames, delete one, clear, add, preview, create: each answer's units
    and the task id."""
    url = upload(api, clip.path)
    init = ok(api.post(f"{API}/init-selection", json={"video_url": url}))
    sid = init["session_id"]
    seen = [units(init)]
    for frame in (0, 10):
        x, y = clip.center(frame)
        seen.append(units(ok(api.post(f"{API}/add-selection", json={
            "session_id": sid, "frame_index": frame, "points": [{"x": x, "y": y}]}))))
    x, y = clip.center(10)
    seen.append(units(ok(api.post(f"{API}/delete-selection", json={
        "session_id": sid, "frame_index": 10, "points": [{"x": x, "y": y}]}))))
    seen.append(units(ok(api.post(f"{API}/clear-selection", json={"session_id": sid}))))
    x, y = clip.center(0)
    seen.append(units(ok(api.post(f"{API}/add-selection", json={
        "session_id": sid, "frame_index": 0, "points": [{"x": x, "y": y}]}))))
    seen.append(units(ok(api.post(f"{API}/preview-selection", json={"session_id": sid}))))
    body = {"session_id": sid, "edit_mode": "removal", "prompt": REMOVE_PROMPT,
            "duration": "5", "mode": "std", **create}
    return seen, ok(api.post(API, json=body))["task_id"]


@pytest.mark.slow
def test_every_answer_reports_its_deduction_and_the_account_adds_them_up(api, clip):
    assert D(repr(the_pack(api)["remaining_quantity"])) == D(repr(PACK))
    seen, task_id = edit(api, clip, mode="pro")
    expected = [SELECTION_UNITS[e] for e in (
        "init-selection", "add-selection", "add-selection", "delete-selection",
        "clear-selection", "add-selection", "preview-selection")]
    assert seen == expected
    task = ok(api.get(f"{API}/{task_id}"))
    assert units(task) == TASK_UNITS[("pro", "5")]
    pack = the_pack(api)
    spent = sum(seen, D(0)) + units(task)
    assert D(repr(pack["remaining_quantity"])) == D(repr(PACK)) - spent
    assert (pack["total_quantity"], pack["status"], pack["resource_pack_type"]) == (
        PACK, "online", "decreasing_total")


@pytest.mark.slow
def test_a_failed_task_is_refunded(api, clip):
    seen, task_id = edit(api, clip, prompt=REMOVE_PROMPT + " [[fail]]")
    advance(api, 1.0)
    task = wait_task(api, task_id, ("failed",))
    assert units(task) == 0
    pack = the_pack(api)
    assert D(repr(pack["remaining_quantity"])) == D(repr(PACK)) - sum(seen, D(0))


@pytest.mark.slow
def test_a_task_the_pack_cannot_pay_for_is_refused_with_1102(api, clip):
    url = upload(api, clip.path)
    sid = ok(api.post(f"{API}/init-selection", json={"video_url": url}))["session_id"]
    x, y = clip.center(0)
    ok(api.post(f"{API}/add-selection", json={"session_id": sid, "frame_index": 0,
                                              "points": [{"x": x, "y": y}]}))
    body = {"session_id": sid, "edit_mode": "removal", "prompt": REMOVE_PROMPT, "mode": "pro"}
    for _ in range(5):  # 5 x 3.5 units fit in the 19.7 left after the selections
        ok(api.post(API, json={**body, "duration": "5"}))
    refused(api.post(API, json={**body, "duration": "5"}), 429, 1102, "units left",
            "buy or renew")
    pack = the_pack(api)
    assert pack["remaining_quantity"] < float(TASK_UNITS[("pro", "5")])


def test_account_queries_keep_to_one_per_second(api):
    account(api)
    refused(api.get("/account/costs", params={"start_time": 0, "end_time": 1}), 429, 1302,
            "1 per second")
    advance(api, 1.0)
    assert account(api)["code"] == 0


@pytest.mark.parametrize("params", [{}, {"start_time": "1"}, {"start_time": "x", "end_time": "2"},
                                    {"start_time": "5", "end_time": "2"}])
def test_account_query_needs_both_times_in_order(api, params):
    refused(api.get("/account/costs", params=params), 400, 1201, "time")


def test_account_query_filters_by_pack_name_and_time(api):
    data = account(api, resource_pack_name="Sandbox video pack")
    assert data == {**data, "code": 0, "msg": ""}
    assert len(data["resource_pack_subscribe_infos"]) == 1
    advance(api, 1.0)
    assert account(api, resource_pack_name="Image pack")["resource_pack_subscribe_infos"] == []
    advance(api, 1.0)
    assert ok(api.get("/account/costs", params={"start_time": 0, "end_time": 1000})
              )["resource_pack_subscribe_infos"] == []


@pytest.mark.slow
def test_the_remaining_quantity_lags_when_asked_to(clip):
    with running(task_seconds=0.2, pack_units=PACK, account_lag_s=3600) as sandbox, \
            client(sandbox) as api:
        url = upload(api, clip.path)
        init = ok(api.post(f"{API}/init-selection", json={"video_url": url}))
        assert the_pack(api)["remaining_quantity"] == PACK  # not counted yet
        advance(api, 3600)
        left = D(repr(the_pack(api)["remaining_quantity"]))
        assert left == D(repr(PACK)) - units(init)
