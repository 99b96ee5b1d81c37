"""The sandbox's task callbacks as a receiver sees them: both formats, Standard Webhooks
signatures (checked with the ``standardwebhooks`` package), retries of a failing receiver,
and the ``callback`` fault rules (lose, lose the acknowledgement, repeat, delay, reorder);
then the project's own receiver and ``Client.wait`` riding through all of it."""

from __future__ import annotations

import base64
import json
import time
from collections import Counter

import httpx
import pytest
import standardwebhooks

import kling_elements as ke
from kling_elements.callbacks import CallbackInbox, CallbackServer, parse
from kling_elements.sandbox.sample import make_reference_image

from ..support.fixtures import sandbox_fixture
from ..support.sandbox import ADD_PROMPT, API, CallbackSink, b64, client, ok, refused, upload

pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")

SECRET = "whsec_" + base64.b64encode(b"sandbox-webhook-test-secret-00001").decode()
RETRIES = (0.3, 0.6, 1.0)


sandbox = sandbox_fixture(scope="module", task_seconds=1.0, max_concurrent_tasks=50,
                          webhook_secret=SECRET, callback_format="both",
                          callback_retry_s=RETRIES)


@pytest.fixture(scope="module")
def api(sandbox):
    with client(sandbox) as c:
        yield c


@pytest.fixture(autouse=True)
def no_leftover_rules(api):
    yield
    ok(api.delete("/sandbox/faults"))


@pytest.fixture(scope="module")
def create_body(api, tmp_path_factory, make_plate):
    """An addition the sandbox refuses without rendering (the [[fail]] marker): three
    status changes (submitted, processing, failed) a second apart, at no CPU cost."""
    folder = tmp_path_factory.mktemp("webhooks-clip")
    clip = make_plate(1280, 720, 30, 2.0)
    session = ok(api.post(f"{API}/init-selection", json={"video_url": upload(api, clip.path)}))
    star = b64(make_reference_image(folder / "star.png"))
    return {"session_id": session["session_id"], "edit_mode": "addition",
            "prompt": ADD_PROMPT + " [[fail]]", "image_list": [{"image": star}]}


@pytest.fixture
def sink():
    sink = CallbackSink()
    yield sink
    sink.close()


def _faults(api, *rules):
    return ok(api.post("/sandbox/faults", json={"rules": list(rules)}))["rules"]


def _run(api, create_body, sink, name: str) -> dict:
    task = ok(api.post(API, json={**create_body, "external_task_id": name,
                                  "callback_url": sink.url}))
    ok(api.post("/sandbox/clock", json={"advance_s": 1.0}))
    return task


def _statuses(sink) -> list[tuple[str, str]]:
    """(format, status) of each delivery, in arrival order."""
    out = []
    for body in sink.received:
        callback = parse(body)
        out.append((callback.format, callback.task.status))
    return out


def test_every_change_comes_signed_in_both_formats(api, create_body, sink):
    task = _run(api, create_body, sink, "signed-1")
    sink.wait(6)
    reference = standardwebhooks.Webhook(SECRET)
    ids = []
    for headers, raw in sink.deliveries:
        assert reference.verify(raw, headers) == json.loads(raw)
        ids.append(headers["webhook-id"])
        assert abs(int(headers["webhook-timestamp"]) - time.time()) < 60  # the real time
    assert len(set(ids)) == 6
    assert _statuses(sink) == [(f, s) for s in ("submitted", "processing", "failed")
                               for f in ("legacy", "new")]
    legacy, new = (parse(body) for body in sink.received[-2:])
    assert legacy.task == new.task and legacy.task.task_id == task["task_id"]
    assert legacy.task.external_task_id == "signed-1"
    assert legacy.task.status_msg == new.task.status_msg != ""
    assert sink.received[-1]["status"] == "failed" and "billing" in sink.received[-1]
    assert legacy.unit_deduction == new.unit_deduction != ""


def test_a_failing_receiver_gets_the_same_message_again(api, create_body):
    sink = CallbackSink(answers=(500, 503))  # the first two POSTs fail
    try:
        _run(api, create_body, sink, "retried-1")
        sink.wait(6)
        ids = [headers["webhook-id"] for headers, _ in sink.deliveries]
        assert len(set(ids)) == 6  # every message arrived once, the first after 2 retries
    finally:
        sink.close()


def test_lost_deliveries_and_lost_acknowledgements(api, create_body, sink):
    _faults(api, {"route": "callback", "status": "processing", "times": 2,
                  "drop": "before_commit"},
            {"route": "callback", "status": "failed", "drop": "after_commit"})
    _run(api, create_body, sink, "lost-1")
    sink.wait(5)
    time.sleep(1.5)  # the retry of the message whose acknowledgement was lost came
    counted = Counter(_statuses(sink))
    assert counted == {("legacy", "submitted"): 1, ("new", "submitted"): 1,
                       ("legacy", "failed"): 2, ("new", "failed"): 1}
    ids = [h["webhook-id"] for h, raw in sink.deliveries if parse(raw).format == "legacy"
           and parse(raw).task.status == "failed"]
    assert len(ids) == 2 and ids[0] == ids[1]  # a retry keeps its webhook-id


def test_repeats_delays_and_reorders(api, create_body, sink):
    _faults(api, {"route": "callback", "status": "submitted", "repeat": 2},
            {"route": "callback", "status": "processing", "times": 2, "reorder": True})
    _run(api, create_body, sink, "shuffled-1")
    sink.wait(8)
    order = _statuses(sink)
    assert order.count(("legacy", "submitted")) == 3
    assert order.index(("legacy", "failed")) < order.index(("legacy", "processing"))
    assert order.index(("new", "failed")) < order.index(("new", "processing"))


def test_a_delayed_delivery_waits_on_the_sandbox_clock(api, create_body, sink):
    _faults(api, {"route": "callback", "status": "failed", "times": 2, "delay_s": 120})
    _run(api, create_body, sink, "delayed-1")
    sink.wait(4)
    time.sleep(0.5)
    assert [s for _, s in _statuses(sink)].count("failed") == 0
    ok(api.post("/sandbox/clock", json={"advance_s": 120}))
    sink.wait(6)
    assert _statuses(sink)[-2:] == [("legacy", "failed"), ("new", "failed")]


@pytest.mark.parametrize(("rule", "words"), [
    ({"route": "callback", "error": {"code": 5000}}, ["error does not apply"]),
    ({"route": "callback", "truncate": 0.5}, ["truncate does not apply"]),
    ({"route": "get", "repeat": 1}, ["repeat only applies to the callback route"]),
    ({"route": "get", "status": "failed", "drop": "before_commit"}, ["status only applies"]),
    ({"route": "callback", "status": "done", "repeat": 1}, ["status 'done'"]),
    ({"route": "callback", "repeat": 0}, ["repeat must be an integer 1-10"]),
    ({"route": "callback", "reorder": "yes"}, ["reorder must be true"]),
])
def test_bad_callback_rules_are_refused(api, rule, words):
    response = api.post("/sandbox/faults", json={"rules": [rule]})
    refused(response, 400, 1201, *words)
    assert ok(api.get("/sandbox/faults"))["rules"] == []


@pytest.mark.slow
def test_the_receiver_and_wait_ride_through_repeats_reorders_and_losses(
        sandbox, api, create_body, tmp_path):
    _faults(api, {"route": "callback", "status": "submitted", "repeat": 3},
            {"route": "callback", "status": "processing", "times": 2, "reorder": True},
            {"route": "callback", "status": "failed", "drop": "after_commit"},
            {"route": "callback", "status": "failed", "drop": "before_commit"})
    inbox = CallbackInbox([SECRET], record_dir=tmp_path / "calls")
    polls: list[str] = []
    transport = httpx.HTTPTransport()

    class Counting(httpx.BaseTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            if request.method == "GET":
                polls.append(request.url.path)
            return transport.handle_request(request)

    with CallbackServer(inbox) as server, ke.Client(
            api_key=sandbox.api_key, base_url=sandbox.base_url, transport=Counting()) as kc:
        task = ok(api.post(API, json={**create_body, "external_task_id": "ride-1",
                                      "callback_url": server.url}))
        ok(api.post("/sandbox/clock", json={"advance_s": 1.0}))
        started = time.monotonic()
        with pytest.raises(ke.TaskFailedError, match="content safety"):
            kc.wait(task["task_id"], timeout=3600, inbox=inbox)
        assert time.monotonic() - started < 10
        assert polls == [f"{API}/{task['task_id']}"]  # one query confirmed the final delivery
        # every message sent: submitted 4x + 1, processing 2 (too late), failed 1 + 1 retry
        deadline = time.monotonic() + 10
        while sum(inbox.counts.values()) < 10 and time.monotonic() < deadline:
            time.sleep(0.05)
    assert inbox.latest("ride-1").status == "failed"
    assert inbox.counts == {"applied": 2, "duplicate": 6, "out-of-order": 1, "refused": 0}
    recorded = sorted(p.name.rsplit("-", 1)[1] for p in (tmp_path / "calls").iterdir())
    assert recorded == ["failed.json", "processing.json", "submitted.json"]
