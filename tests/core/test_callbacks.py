"""Callbacks: Standard Webhooks signatures (against the ``standardwebhooks`` package as the
reference), both body formats into one ``Task``, the inbox's verification, deduplication,
ordering and recording, and the stdlib receiver over real HTTP."""

from __future__ import annotations

import base64
import json
import threading
import time
from datetime import datetime, timezone

import httpx
import pytest
import standardwebhooks

import kling_elements as ke
from kling_elements import client as client_module
from kling_elements.callbacks import (
    CallbackInbox,
    CallbackServer,
    PayloadError,
    Refused,
    SignatureError,
    StaleError,
    parse,
    parse_listen,
    secret_key,
    sign,
    verify,
)
from kling_elements.models import Task

SECRET = "whsec_" + base64.b64encode(b"kling-callbacks-test-key-0123456789").decode()
OTHER = "whsec_" + base64.b64encode(b"a-different-key-for-rotation-0000").decode()
NOW = 1_760_000_000


def legacy(status="succeed", task_id="8000000000000001", ext="ext-1", **extra) -> dict:
    body = {
        "task_id": task_id, "task_status": status, "task_status_msg": "",
        "task_info": {"external_task_id": ext, "parent_video": {"id": "", "url": ""}},
        "created_at": 1_700_000_000_000, "updated_at": 1_700_000_300_000,
        "final_unit_deduction": "2",
        "final_balance_deduction": {"quota": "1.5", "list_price": "2.0"},
        "task_result": {"videos": [{"id": "v-1", "url": "https://cdn.example/out.mp4",
                                    "watermark_url": "https://cdn.example/wm.mp4",
                                    "duration": "5.1"}] if status == "succeed" else []},
    }
    body.update(extra)
    return body


def new(status="succeeded", task_id="8000000000000001", ext="ext-1") -> dict:
    return {
        "id": task_id, "status": status, "message": "", "external_id": ext,
        "create_time": 1_700_000_000_000, "update_time": 1_700_000_300_000,
        "outputs": [{"type": "video", "id": "v-1", "url": "https://cdn.example/out.mp4",
                     "watermark_url": "https://cdn.example/wm.mp4", "duration": "5.1"}]
        if status == "succeeded" else [],
        "billing": [{"final_unit_deduction": "2",
                     "final_balance_deduction": {"quota": "1.5", "list_price": "2.0"}}],
    }


def signed(body: dict | bytes, msg_id: str = "msg_1", timestamp: int = NOW,
           secret: str = SECRET) -> tuple[dict[str, str], bytes]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return {"webhook-id": msg_id, "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(secret, msg_id, timestamp, raw)}, raw


# -- signatures ---------------------------------------------------------------------------


def test_signature_matches_the_standardwebhooks_package_both_ways():
    reference = standardwebhooks.Webhook(SECRET)
    body = json.dumps(legacy()).encode()
    stamp = datetime.fromtimestamp(NOW, tz=timezone.utc)
    assert sign(SECRET, "msg_2", NOW, body) == reference.sign("msg_2", stamp, body.decode())
    headers, raw = signed(body, "msg_2")
    assert verify([SECRET], headers, raw, now=NOW) == ("msg_2", NOW)
    # the package verifies what we sign (it reads the wall clock: sign at "now")
    now = int(time.time())
    ours, raw = signed(body, "msg_3", now)
    assert reference.verify(raw, ours) == legacy()


def test_any_valid_entry_of_a_rotation_is_enough_and_others_are_skipped():
    headers, raw = signed(legacy())
    good = headers["webhook-signature"]
    old = sign(OTHER, "msg_1", NOW, raw)
    headers["webhook-signature"] = f"v1,bm90LWEtc2ln {old} v2,{good[3:]} v1,@@notbase64 {good}"
    assert verify([SECRET], headers, raw, now=NOW)[0] == "msg_1"
    assert verify([OTHER], headers, raw, now=NOW)[0] == "msg_1"  # receiver holds the old key
    headers["webhook-signature"] = f"v1,bm90LWEtc2ln {old}"
    with pytest.raises(SignatureError, match="no webhook-signature entry matches"):
        verify([SECRET], headers, raw, now=NOW)


@pytest.mark.parametrize("change", ["body", "id", "timestamp"])
def test_a_changed_body_id_or_timestamp_fails(change):
    headers, raw = signed(legacy())
    if change == "body":
        raw = raw.replace(b'"succeed"', b'"failed"')
    elif change == "id":
        headers["webhook-id"] = "msg_other"
    else:
        headers["webhook-timestamp"] = str(NOW + 1)
    with pytest.raises(SignatureError):
        verify([SECRET], headers, raw, now=NOW)


@pytest.mark.parametrize(("offset", "accepted"), [(-300, True), (300, True), (-301, False),
                                                  (301, False), (-86400, False)])
def test_timestamps_beyond_five_minutes_either_way_are_stale(offset, accepted):
    headers, raw = signed(legacy(), timestamp=NOW + offset)
    if accepted:
        assert verify([SECRET], headers, raw, now=NOW)[1] == NOW + offset
    else:
        with pytest.raises(StaleError, match="limit is 300 s"):
            verify([SECRET], headers, raw, now=NOW)


@pytest.mark.parametrize("headers", [
    {}, {"webhook-id": "m", "webhook-timestamp": str(NOW)},
    {"webhook-id": "m", "webhook-timestamp": "1e9", "webhook-signature": "v1,AAAA"},
    {"webhook-id": "m", "webhook-timestamp": "-5", "webhook-signature": "v1,AAAA"},
    {"webhook-id": "m", "webhook-timestamp": str(NOW), "webhook-signature": "v1"},
    # HTTP headers arrive as Latin-1: "²" and "١" are str.isdigit() but not Unix seconds
    {"webhook-id": "m", "webhook-timestamp": "17\u00b2", "webhook-signature": "v1,AAAA"},
    {"webhook-id": "m", "webhook-timestamp": "\u0661\u0662", "webhook-signature": "v1,AAAA"},
], ids=["none", "no-signature", "float-stamp", "negative-stamp", "no-comma",
        "superscript-digit", "arabic-indic-digits"])
def test_malformed_headers_raise_signature_error_only(headers):
    with pytest.raises(SignatureError):
        verify([SECRET], headers, b"{}", now=NOW)


def test_a_bad_secret_is_refused_without_echoing_it():
    with pytest.raises(ValueError, match="not base64") as exc:
        secret_key("whsec_this is not base64!")
    assert "this is not" not in str(exc.value)
    with pytest.raises(ValueError, match="empty"):
        secret_key("whsec_")
    assert secret_key(SECRET) == b"kling-callbacks-test-key-0123456789"
    assert secret_key(SECRET.removeprefix("whsec_")) == secret_key(SECRET)


# -- the two formats ----------------------------------------------------------------------


def test_both_formats_give_the_same_task_and_deductions():
    old, newer = parse(json.dumps(legacy()).encode()), parse(new())
    assert old.format == "legacy" and newer.format == "new"
    assert old.task == newer.task
    task = old.task
    assert (task.task_id, task.status, task.external_task_id) == (
        "8000000000000001", "succeed", "ext-1")
    assert task.updated_at == 1_700_000_300_000 and task.done and task.succeeded
    (video,) = task.videos
    assert (video.id, video.url, video.watermark_url, video.duration) == (
        "v-1", "https://cdn.example/out.mp4", "https://cdn.example/wm.mp4", "5.1")
    for callback in (old, newer):
        assert callback.unit_deduction == "2"
        assert callback.balance_deduction == {"quota": "1.5", "list_price": "2.0"}


def test_failed_in_both_formats_carries_the_reason():
    old = parse(legacy("failed", task_status_msg="content policy"))
    body = new("failed")
    body["message"] = "content policy"
    assert old.task == parse(body).task
    assert old.task.status == "failed" and old.task.status_msg == "content policy"


@pytest.mark.parametrize(("body", "match"), [
    (b"not json", "not JSON"), (b"[1, 2]", "not a JSON object"),
    (b'{"hello": 1}', "neither task_id"),
    (json.dumps({"task_id": "1"}).encode(), "legacy callback.*task_status"),
    (json.dumps({"id": "1", "status": 5}).encode(), "new callback.*task_status"),
    (json.dumps({"id": "1", "status": "processing", "outputs": "x"}).encode(), "outputs"),
])
def test_bodies_that_are_no_callback_name_the_problem(body, match):
    with pytest.raises(PayloadError, match=match):
        parse(body)


# -- the inbox ----------------------------------------------------------------------------


def inbox(**kwargs) -> CallbackInbox:
    kwargs.setdefault("clock", lambda: NOW)
    return CallbackInbox([SECRET], **kwargs)


def test_unsigned_stale_or_forged_deliveries_are_refused_and_change_nothing():
    box = inbox()
    with pytest.raises(Refused) as exc:
        box.accept({}, json.dumps(legacy()).encode())
    assert exc.value.status == 401 and "unsigned" in str(exc.value)
    with pytest.raises(Refused, match="limit is 300 s"):
        box.accept(*signed(legacy(), timestamp=NOW - 600))
    with pytest.raises(Refused, match="no webhook-signature"):
        box.accept(*signed(legacy(), secret=OTHER))
    with pytest.raises(Refused) as exc:
        box.accept(*signed(b"[]"))
    assert exc.value.status == 400
    assert box.latest("8000000000000001") is None and box.counts["refused"] == 4


def test_a_repeated_webhook_id_or_status_is_applied_once():
    box = inbox()
    first = box.accept(*signed(legacy("processing"), "msg_a"))
    assert first.outcome == "applied" and first.verified
    assert box.accept(*signed(legacy("processing"), "msg_a")).outcome == "duplicate"
    # the same change in the other format, under its own id
    assert box.accept(*signed(new("processing"), "msg_b")).outcome == "duplicate"
    assert box.counts == {"applied": 1, "duplicate": 2, "out-of-order": 0, "refused": 0}


def test_a_late_processing_never_moves_a_finished_task_back():
    box = inbox()
    assert box.accept(*signed(new("succeeded"), "msg_1")).outcome == "applied"
    late = box.accept(*signed(legacy("processing"), "msg_2"))
    assert late.outcome == "out-of-order"
    assert box.latest("8000000000000001").status == "succeed"
    assert box.latest("ext-1").status == "succeed"  # by external id too
    conflicting = box.accept(*signed(legacy("failed"), "msg_3"))
    assert conflicting.outcome == "out-of-order" and box.latest("ext-1").succeeded


def test_the_id_memory_is_bounded_and_a_forgotten_id_is_refused_as_stale():
    now = [NOW]
    box = inbox(clock=lambda: now[0], max_ids=3)
    for i in range(5):
        box.accept(*signed(legacy("processing", task_id=str(i)), f"msg_{i}"))
    assert len(box._ids) == 3
    # msg_0 was forgotten (over the cap); within the window its replay is a new id to us,
    # but its task and status are known, so nothing is applied twice
    assert box.accept(*signed(legacy("processing", task_id="0"), "msg_0")).outcome == "duplicate"
    now[0] = NOW + 301  # later on, every id of NOW left the window: forgotten, and stale
    box.accept(*signed(legacy("processing", task_id="9"), "msg_9", timestamp=NOW + 301))
    assert list(box._ids) == ["msg_9"]
    with pytest.raises(Refused, match="limit is 300 s"):
        box.accept(*signed(legacy("succeed", task_id="1"), "msg_1"))


def test_without_a_secret_deliveries_are_taken_unverified():
    box = CallbackInbox(clock=lambda: NOW)
    delivery = box.accept({}, json.dumps(legacy("processing")).encode())
    assert delivery.outcome == "applied" and not delivery.verified and delivery.webhook_id == ""
    assert box.accept({}, json.dumps(new("processing")).encode()).outcome == "duplicate"


def test_deliveries_are_recorded_atomically_except_duplicates(tmp_path):
    box = inbox(record_dir=tmp_path / "calls")
    box.accept(*signed(legacy("processing"), "msg_1"))
    box.accept(*signed(legacy("processing"), "msg_1"))
    box.accept(*signed(new("succeeded"), "msg_2"))
    box.accept(*signed(legacy("submitted"), "msg_3"))
    files = sorted((tmp_path / "calls").iterdir())
    assert [f.name.split("-", 2)[2] for f in files] == [
        "8000000000000001-processing.json", "8000000000000001-succeed.json",
        "8000000000000001-submitted.json"]
    records = [json.loads(f.read_text()) for f in files]
    assert [r["outcome"] for r in records] == ["applied", "applied", "out-of-order"]
    assert records[1]["format"] == "new" and records[1]["webhook_id"] == "msg_2"
    assert records[1]["body"] == new("succeeded") and records[1]["verified"] is True
    assert records[1]["task"]["videos"][0]["url"] == "https://cdn.example/out.mp4"


def test_wait_for_wakes_when_the_delivery_arrives():
    box = inbox()
    assert box.wait_for("ext-1", 0.05) is None
    threading.Timer(0.1, lambda: box.accept(*signed(legacy("processing")))).start()
    started = time.monotonic()
    got = box.wait_for("ext-1", 10)
    assert got is not None and got.status == "processing"
    assert time.monotonic() - started < 5
    assert box.wait_for("ext-1", 0.05, beyond="processing") is None
    assert box.heard("8000000000000001") and not box.heard("other")


def test_repr_hides_the_secret():
    assert "whsec" not in repr(inbox()) and SECRET[6:] not in repr(inbox())


# -- the receiver -------------------------------------------------------------------------


def test_receiver_answers_each_case_over_http(tmp_path):
    box = CallbackInbox([SECRET])  # the real clock: sign with the current time
    with CallbackServer(box) as server, httpx.Client(trust_env=False) as http:
        now = int(time.time())
        headers, raw = signed(legacy("processing"), "msg_h", now)
        answer = http.post(server.url, content=raw, headers=headers)
        assert answer.status_code == 200 and answer.json() == {"outcome": "applied"}
        assert http.post(server.url, content=raw, headers=headers).json() == {
            "outcome": "duplicate"}
        forged = http.post(server.url, content=raw.replace(b"processing", b"succeed"),
                           headers=headers)
        assert forged.status_code == 401
        too_big = http.post(server.url, content=b"x" * (1024 * 1024 + 1), headers=headers)
        # The refused body's connection is closed, and the answer says so, so a kept-alive
        # sender does not send its next request into a closed socket.
        assert too_big.status_code == 413 and too_big.headers["connection"] == "close"
        assert http.get(server.url).status_code == 405
        odd_stamp = {**headers, "webhook-id": "msg_odd", "webhook-timestamp": b"17\xb2"}
        assert http.post(server.url, content=raw, headers=odd_stamp).status_code == 401
        assert box.latest("ext-1").status == "processing"


@pytest.mark.parametrize(("text", "expected"), [
    ("127.0.0.1:8766", ("127.0.0.1", 8766)), (":0", ("127.0.0.1", 0)),
    ("[::1]:9000", ("::1", 9000)), ("0.0.0.0:80", ("0.0.0.0", 80)),
])
def test_listen_addresses(text, expected):
    assert parse_listen(text) == expected


@pytest.mark.parametrize("text", ["8766", "host:", "host:99999", "host:http"])
def test_bad_listen_addresses_name_the_value(text):
    with pytest.raises(ValueError, match=f"--listen {text!r}"):
        parse_listen(text)


# -- Client.wait with an inbox ------------------------------------------------------------


class World:
    """Fake time shared by the client (clock, sleep) and a scripted inbox; a task that ends
    at ``length_s``; Kling's GET answers from the same clock and counts the polls."""

    def __init__(self, length_s: float, deliveries: dict[str, float]) -> None:
        self.now = 0.0
        self.length_s = length_s
        self.polls: list[float] = []
        self.box = CallbackInbox(clock=lambda: NOW)  # unsigned: what matters here is timing
        self.script = sorted((at, status) for status, at in deliveries.items())

    def status(self) -> str:
        return "succeed" if self.now >= self.length_s else "processing"

    def kling(self, request: httpx.Request) -> httpx.Response:
        self.polls.append(self.now)
        data = legacy(self.status())
        return httpx.Response(200, json={"code": 0, "message": "", "request_id": "r",
                                         "data": data})

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    # the TaskInbox protocol, in fake time
    def heard(self, key: str) -> bool:
        return self.box.heard(key)

    def wait_for(self, key: str, timeout: float, *, beyond: str | None = None) -> Task | None:
        end = self.now + timeout
        while True:
            got = self.box.wait_for(key, 0, beyond=beyond)
            if got is not None or not self.script or self.script[0][0] > end:
                self.now = max(self.now, end) if got is None else self.now
                return got
            at, status = self.script.pop(0)
            self.now = max(self.now, at)
            self.box.accept({}, json.dumps(legacy(status)).encode())

    def client(self):
        return ke.Client(api_key="k", transport=httpx.MockTransport(self.kling),
                         clock=lambda: self.now, sleep=self.sleep)


def test_with_callbacks_a_task_ends_on_its_final_delivery_after_one_confirming_query():
    world = World(300.0, {"submitted": 0.1, "processing": 30.0, "succeed": 300.2})
    updates: list[str] = []
    done = world.client().wait("ext-1", timeout=3600, inbox=world,
                               on_update=lambda t: updates.append(t.status))
    assert done.succeeded and done.videos[0].url == "https://cdn.example/out.mp4"
    assert world.polls == [300.2]  # no poll before the delivery; one query confirms it
    assert updates == ["submitted", "processing", "succeed"]


def test_without_any_delivery_the_wait_falls_back_to_polling_after_the_grace():
    world = World(300.0, {})
    assert world.client().wait("ext-1", timeout=3600, inbox=world).succeeded
    assert world.polls[0] == client_module.CALLBACK_GRACE_S
    assert 300 <= world.polls[-1] <= 300 + client_module.TAIL_POLL_S
    assert len(world.polls) <= 15


def test_a_lost_final_delivery_is_caught_by_the_safety_poll():
    world = World(300.0, {"submitted": 0.1, "processing": 30.0})
    assert world.client().wait("ext-1", timeout=3600, inbox=world).succeeded
    assert world.polls == [client_module.CALLBACK_SAFETY_POLL_S]


def test_a_final_delivery_that_kling_contradicts_is_ignored_from_then_on():
    world = World(300.0, {"submitted": 0.1, "succeed": 50.0})  # forged or premature
    assert world.client().wait("ext-1", timeout=3600, inbox=world).succeeded
    assert world.polls[0] == 50.0  # the confirming query said "processing"
    assert len(world.polls) > 2 and 300 <= world.polls[-1] <= 318  # then the plain schedule


def test_the_plain_schedule_polls_a_five_minute_task_15_times_and_sees_it_within_18_s():
    world = World(300.0, {})
    world.client().wait("ext-1", timeout=3600)
    assert len(world.polls) <= 15 and world.polls[-1] - 300 <= 18
    assert world.polls[:5] == [0.0, 1.0, 4.0, 15.0, 60.0]
