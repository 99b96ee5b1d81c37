"""The client's view of cost, against a scripted Kling: every answer's deduction on its
result and in the session's total; restores that say what they cost or are refused; the
account query, its one-per-second pace and its rate-limit retry."""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from decimal import Decimal

import pytest

import kling_elements as ke
from kling_elements.cost import Cost

from .test_client import API, INIT, FakeTime, Kling, drop, err, make_client, ok, selection

D = Decimal
SESS2 = {**INIT, "session_id": "sess-2"}


def charged(data: dict, units: str, quota: str | None = None) -> dict:
    extra = {"final_unit_deduction": units}
    if quota is not None:
        extra["final_balance_deduction"] = {"quota": quota, "list_price": quota}
    return {**data, **extra}


@pytest.fixture
def kling() -> Kling:
    return Kling()


@pytest.fixture
def clock() -> FakeTime:
    return FakeTime()


@pytest.fixture
def client(kling, clock):
    return make_client(kling, clock)


def start(kling, client, units="0.2"):
    kling.on("POST", f"{API}/init-selection", ok(charged(INIT, units)))
    return client.init_selection(video_url="https://cdn.example/clip.mp4")


def test_each_selection_step_reports_its_cost_and_the_session_adds_them_up(kling, client):
    init = start(kling, client)
    assert init.cost.units == D("0.2")
    kling.on("POST", f"{API}/add-selection", ok(charged(selection(0), "0.1")))
    added = client.add_selection("sess-1", 0, [(0.5, 0.5)])
    kling.on("POST", f"{API}/delete-selection", ok(charged(selection(0, items=()), "0")))
    client.delete_selection("sess-1", 0, [(0.5, 0.5)])
    kling.on("POST", f"{API}/clear-selection", ok(charged({"status": 0}, "0", quota="0.05")))
    cleared = client.clear_selection("sess-1")
    kling.on("POST", f"{API}/add-selection", ok(charged(selection(1), "0.1")))
    client.add_selection("sess-1", 1, [(0.2, 0.2)])
    kling.on("POST", f"{API}/preview-selection", ok(charged(
        {"status": 0, "res": {"video": "https://cdn.example/pv.mp4"}}, "0.2")))
    preview = client.preview_selection("sess-1")
    assert (added.cost.units, cleared.quota, preview.cost.units) == (D("0.1"), D("0.05"),
                                                                     D("0.2"))
    state = client.sessions["sess-1"]
    assert state.spent == Cost(D("0.6"), D("0.05"), D("0.05"))
    assert state.restores == 0 and state.to_dict()["cost"]["units"] == 0.6


def test_an_automatic_restore_says_what_it_cost(kling, client, caplog):
    reports: list[ke.RestoreReport] = []
    client.on_restore = reports.append
    start(kling, client)
    kling.on("POST", f"{API}/add-selection", ok(charged(selection(0), "0.1")))
    client.add_selection("sess-1", 0, [(0.5, 0.5)])
    client.add_selection("sess-1", 3, [(0.4, 0.4)])
    # Kling forgot the session: init and both frames' adds are sent (and charged) again.
    kling.on("POST", f"{API}/init-selection", ok(charged(SESS2, "0.2")))
    kling.on("POST", f"{API}/add-selection", err(1203), ok(charged(selection(0), "0.1")),
             ok(charged(selection(3), "0.1")), ok(charged(selection(5), "0.1")))
    with caplog.at_level(logging.INFO, logger="kling_elements"):
        client.add_selection("sess-1", 5, [(0.1, 0.1)])
    (report,) = reports
    assert (report.old_session_id, report.new_session_id, report.frames) == ("sess-1",
                                                                              "sess-2", 2)
    assert report.cost == Cost(units=D("0.4")) and "1203" in report.reason
    state = client.sessions["sess-1"]
    assert state.restores == 1 and state.restore_spent.units == D("0.4")
    assert state.spent.units == D("0.2") + D("0.1") * 2 + D("0.4") + D("0.1")
    assert "cost 0.4 units" in caplog.text


def test_a_restore_counts_the_attempts_it_abandoned(kling, client):
    start(kling, client)
    kling.on("POST", f"{API}/add-selection", ok(charged(selection(0), "0.1")))
    client.add_selection("sess-1", 0, [(0.5, 0.5)])
    kling.on("POST", f"{API}/init-selection", ok(charged(SESS2, "0.2")),
             ok(charged({**INIT, "session_id": "sess-3"}, "0.2")))
    # The add's answer is lost (restore 1: init + add charged, then its own add answer is
    # lost too, so one more init + add).
    kling.on("POST", f"{API}/add-selection", drop(), ok(charged(selection(0), "0.1")), drop(),
             ok(charged(selection(0), "0.1")), ok(charged(selection(1), "0.1")))
    client.add_selection("sess-1", 1, [(0.2, 0.2)])
    state = client.sessions["sess-1"]
    assert state.session_id == "sess-3" and state.restores == 2
    assert state.restore_spent.units == D("0.2") + D("0.2") + D("0.1") + D("0.1")


@pytest.mark.parametrize("cause", ["expired", "gone", "lost"])
def test_auto_restore_off_refuses_and_names_the_option(kling, clock, cause):
    client = make_client(kling, clock, auto_restore=False)
    start(kling, client)
    kling.on("POST", f"{API}/add-selection", ok(charged(selection(0), "0.1")))
    client.add_selection("sess-1", 0, [(0.5, 0.5)])
    kling.requests.clear()
    if cause == "expired":
        client.sessions["sess-1"].started_at -= 24 * 3600
    else:
        kling.on("POST", f"{API}/add-selection", err(1203) if cause == "gone" else drop())
    with pytest.raises(ke.RestoreDisabledError, match="auto_restore=False") as caught:
        client.add_selection("sess-1", 4, [(0.3, 0.3)])
    assert "client.restore" in str(caught.value) and "1 marked frame" in str(caught.value)
    assert ("POST", f"{API}/init-selection") not in kling.calls()
    assert len(kling.requests) == (0 if cause == "expired" else 1)
    state = client.sessions["sess-1"]
    assert state.session_id == "sess-1" and state.points == {0: [(0.5, 0.5)]}
    assert state.restores == 0
    # Asked for explicitly, the restore still runs.
    kling.on("POST", f"{API}/init-selection", ok(charged(SESS2, "0.2")))
    kling.on("POST", f"{API}/add-selection", ok(charged(selection(0), "0.1")))
    client.restore("sess-1")
    assert state.session_id == "sess-2" and state.restore_spent.units == D("0.3")


def test_auto_restore_off_leaves_an_expired_session_uncleared(kling, clock):
    client = make_client(kling, clock, auto_restore=False)
    start(kling, client)
    kling.on("POST", f"{API}/add-selection", ok(selection(0)))
    client.add_selection("sess-1", 0, [(0.5, 0.5)])
    client.sessions["sess-1"].started_at -= 24 * 3600
    kling.requests.clear()
    with pytest.raises(ke.RestoreDisabledError, match="auto_restore"):
        client.clear_selection("sess-1")
    assert kling.requests == [] and client.sessions["sess-1"].points == {0: [(0.5, 0.5)]}


def test_clearing_a_vanished_session_returns_the_restore_cost(kling, client):
    start(kling, client)
    kling.on("POST", f"{API}/clear-selection", err(1203))
    kling.on("POST", f"{API}/init-selection", ok(charged(SESS2, "0.2")))
    assert client.clear_selection("sess-1") == Cost(units=D("0.2"))
    assert client.sessions["sess-1"].restores == 1


# -- account ---------------------------------------------------------------------------------

PACKS = {"code": 0, "msg": "", "resource_pack_subscribe_infos": [
    {"resource_pack_name": "Video Generation - 10,000 entries", "resource_pack_id": "509f",
     "resource_pack_type": "decreasing_total", "total_quantity": 200.0,
     "remaining_quantity": 118.5, "purchase_time": 1726124664368,
     "effective_time": 1726124664368, "invalid_time": 1727366400000, "status": "online"},
    {"resource_pack_name": "Old pack", "resource_pack_id": "11", "resource_pack_type":
     "constant_period", "total_quantity": "50", "remaining_quantity": "40",
     "status": "expired"},
]}


def test_account_costs_request_and_typed_packs(kling, client):
    kling.on("GET", "/account/costs", ok(PACKS))
    start = datetime(2024, 9, 1, tzinfo=timezone.utc)
    end = datetime(2024, 10, 1, tzinfo=timezone.utc)
    costs = client.account_costs(start, end, resource_pack_name="Video Generation")
    (request,) = kling.requests
    assert request.url.path == "/account/costs"  # no /v1 prefix
    assert dict(request.url.params) == {"start_time": "1725148800000",
                                        "end_time": "1727740800000",
                                        "resource_pack_name": "Video Generation"}
    first, old = costs.packs
    assert (first.name, first.pack_type, first.status) == (
        "Video Generation - 10,000 entries", "decreasing_total", "online")
    assert (first.total, first.remaining, first.invalid_time) == (D("200"), D("118.5"),
                                                                  1727366400000)
    assert (old.total, old.remaining, old.usable) == (D("50"), D("40"), False)
    assert costs.remaining == D("118.5")  # only the packs in effect


def test_account_costs_default_to_the_last_year(kling, client):
    kling.on("GET", "/account/costs", ok(PACKS))
    client.account_costs()
    params = kling.requests[0].url.params
    span = int(params["end_time"]) - int(params["start_time"])
    assert span == 365 * 86400 * 1000


def test_account_queries_are_spaced_one_second_apart(kling, client, clock):
    kling.on("GET", "/account/costs", ok(PACKS))
    client.account_costs()
    clock.now += 0.3
    client.account_costs()
    client.account_costs()
    assert clock.sleeps == [pytest.approx(0.7), pytest.approx(1.0)]


def test_a_rate_limited_account_query_is_retried_after_at_least_a_second(kling, client, clock):
    kling.on("GET", "/account/costs", err(1302), err(1302), ok(PACKS))
    assert client.account_costs().remaining == D("118.5")
    assert len(kling.requests) == 3
    assert len(clock.sleeps) == 2 and all(s >= 1.0 for s in clock.sleeps)


def test_an_inner_refusal_of_the_account_query_is_an_error(kling, client):
    kling.on("GET", "/account/costs", ok({"code": 1102, "msg": "no pack"}))
    with pytest.raises(ke.AccountError, match="no pack"):
        client.account_costs()


@pytest.mark.parametrize(("start", "end", "message"), [
    (1_700_000_000_000, None, "looks like milliseconds"),
    (1_700_000_100, 1_700_000_000, "must be before end"),
    ("yesterday", None, "datetime or Unix seconds"),
])
def test_bad_account_times_are_refused_before_sending(kling, client, start, end, message):
    with pytest.raises(ke.ValidationError, match=message):
        client.account_costs(start, end)
    assert kling.requests == []


def test_tasks_report_their_deduction(kling, client):
    kling.on("GET", f"{API}/t-1", ok({"task_id": "t-1", "task_status": "succeed",
                                      "final_unit_deduction": "3.5",
                                      "final_balance_deduction": {"quota": "0",
                                                                  "list_price": "0"}}))
    assert client.get_task("t-1").cost == Cost(D("3.5"), D("0"), D("0"))

