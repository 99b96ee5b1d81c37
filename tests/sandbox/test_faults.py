"""Fault injection, file serving (ranges, ETag, truncation) and the sandbox-only endpoints."""

from __future__ import annotations

import logging
import os
import threading
import time

import httpx
import pytest

from kling_elements.sandbox.sample import make_reference_image

from ..support.fixtures import sandbox_fixture
from ..support.sandbox import ADD_PROMPT, API, b64, client, ok, refused, upload

pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")

CONNECTION_LOST = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)


sandbox = sandbox_fixture(scope="module", task_seconds=1.0, max_concurrent_tasks=50)


@pytest.fixture(scope="module")
def api(sandbox):
    with client(sandbox) as c:
        yield c


@pytest.fixture(autouse=True)
def no_leftover_rules(api):
    yield
    ok(api.delete("/sandbox/faults"))


@pytest.fixture(scope="module")
def blob(tmp_path_factory):
    path = tmp_path_factory.mktemp("faults") / "blob.bin"
    path.write_bytes(os.urandom(3 * 1024 * 1024 + 123))
    return path


@pytest.fixture(scope="module")
def blob_url(api, blob):
    return upload(api, blob)


@pytest.fixture(scope="module")
def create_body(api, tmp_path_factory, make_plate):
    """An addition request (no render: the [[fail]] marker) on a fresh session."""
    folder = tmp_path_factory.mktemp("faults-clip")
    clip = make_plate(1280, 720, 30, 2.0)
    session = ok(api.post(f"{API}/init-selection", json={"video_url": upload(api, clip.path)}))
    star = b64(make_reference_image(folder / "star.png"))
    return {"session_id": session["session_id"], "edit_mode": "addition",
            "prompt": ADD_PROMPT + " [[fail]]", "image_list": [{"image": star}]}


def _faults(api, *rules):
    return ok(api.post("/sandbox/faults", json={"rules": list(rules)}))["rules"]


def _created(api) -> dict:
    return ok(api.get("/sandbox/stats"))["created"]


# ---------------------------------------------------------------- rules


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"rules": [{"route": "nowhere", "error": {"code": 5000}}]}, ["route 'nowhere'"]),
        ({"rules": [{"route": "get"}]}, ["exactly one effect"]),
        ({"rules": [{"route": "get", "delay_s": 1, "drop": "before_commit"}]}, ["exactly one"]),
        ({"rules": [{"route": "get", "truncate": 0.5}]}, ["only applies to the files"]),
        ({"rules": [{"route": "files", "truncate": 1.5}]}, ["fraction"]),
        ({"rules": [{"route": "get", "drop": "sometimes"}]}, ["drop must be"]),
        ({"rules": [{"route": "get", "times": 0, "delay_s": 1}]}, ["times 0"]),
        ({"rules": [{"route": "get", "error": {"code": 4242}}]}, ["error.http"]),
        ({"rules": [{"route": "get", "error": 1303}]}, ["error must be an object"]),
        ({"rules": [{"route": "get", "delay_s": 1, "colour": "red"}]}, ["unknown field"]),
        ({"rule": []}, ["rules"]),
    ],
)
def test_fault_rules_are_validated(api, body, words):
    refused(api.post("/sandbox/faults", json=body), 400, 1201, *words)
    assert ok(api.get("/sandbox/faults"))["rules"] == []


def test_sandbox_endpoints_need_auth(sandbox):
    for method, path in [("GET", "/sandbox/faults"), ("POST", "/sandbox/clock"),
                         ("GET", "/sandbox/stats"), ("POST", "/sandbox/uploads")]:
        response = httpx.request(method, sandbox.base_url + path, trust_env=False)
        refused(response, 401, 1001)


def test_error_rules_are_consumed_in_order(api):
    listed = _faults(
        api,
        {"route": "get", "times": 2, "error": {"http": 503, "code": 5001}},
        {"route": "get", "error": {"http": 429, "code": 1302, "message": "slow down"}},
        {"route": "list", "error": {"http": 500, "code": 5000}},
    )
    assert [r["times"] for r in listed] == [2, 1, 1]
    refused(api.get(f"{API}/some-task"), 503, 5001)
    assert ok(api.get("/sandbox/faults"))["rules"][0]["times"] == 1
    refused(api.get(f"{API}/some-task"), 503, 5001)
    refused(api.get(f"{API}/some-task"), 429, 1302, "slow down")
    refused(api.get(f"{API}/some-task"), 404, 1203)  # rules used up: normal answer
    assert [r["route"] for r in ok(api.get("/sandbox/faults"))["rules"]] == ["list"]
    ok(api.delete("/sandbox/faults"))
    assert isinstance(ok(api.get(API)), list)


@pytest.mark.slow
def test_delay_does_not_block_the_server(api):
    """While one answer is held back, the server answers others: a request sent once the
    delayed one has reached the server (its rule is taken) is answered first."""
    delay = 3.0
    _faults(api, {"route": "list", "delay_s": delay})
    outcome = {}

    def slow_list():
        start = time.monotonic()
        outcome["data"] = ok(api.get(API))
        outcome["answered"] = time.monotonic()
        outcome["took"] = outcome["answered"] - start

    thread = threading.Thread(target=slow_list)
    thread.start()
    while ok(api.get("/sandbox/faults"))["rules"]:  # until the delayed request took its rule
        assert thread.is_alive(), outcome
    ok(api.get("/sandbox/clock"))
    clock_answered = time.monotonic()
    thread.join(10)
    assert clock_answered < outcome["answered"]
    assert outcome["took"] >= delay and isinstance(outcome["data"], list)


def test_drop_before_commit_creates_nothing(api, create_body):
    _faults(api, {"route": "create", "drop": "before_commit"})
    body = {**create_body, "external_task_id": "drop-before"}
    with pytest.raises(CONNECTION_LOST):
        api.post(API, json=body)
    assert "drop-before" not in _created(api)
    refused(api.get(f"{API}/drop-before"), 404, 1203)
    ok(api.post(API, json=body))  # the rule is used up: the retry goes through
    assert _created(api)["drop-before"] == 1


def test_drop_after_commit_creates_exactly_one_task(api, create_body):
    _faults(api, {"route": "create", "drop": "after_commit"})
    body = {**create_body, "external_task_id": "drop-after"}
    with pytest.raises(CONNECTION_LOST):
        api.post(API, json=body)
    assert _created(api)["drop-after"] == 1
    task = ok(api.get(f"{API}/drop-after"))
    assert task["task_info"]["external_task_id"] == "drop-after"
    refused(api.post(API, json=body), 400, 1201, "already used")
    assert _created(api)["drop-after"] == 1


def test_drop_on_reads_and_selection(api, create_body):
    _faults(api, {"route": "get", "drop": "before_commit"},
            {"route": "clear-selection", "drop": "after_commit"})
    with pytest.raises(CONNECTION_LOST):
        api.get(f"{API}/anything")
    with pytest.raises(CONNECTION_LOST):
        api.post(f"{API}/clear-selection", json={"session_id": create_body["session_id"]})
    refused(api.get(f"{API}/anything"), 404, 1203)


def test_undeliverable_callbacks_are_retried_then_logged_and_dropped(api, create_body, caplog):
    caplog.set_level(logging.WARNING, logger="kling_elements.sandbox")
    body = {**create_body, "external_task_id": "lost-callbacks",
            "callback_url": "http://127.0.0.1:9/nobody-listens"}
    ok(api.post(API, json=body))
    deadline = time.monotonic() + 20
    while caplog.text.count("not delivered after 4 attempt(s)") < 3:  # 1 send + 3 retries
        assert time.monotonic() < deadline, caplog.text
        ok(api.post("/sandbox/clock", json={"advance_s": 15.0}))  # past each retry's wait
        time.sleep(0.05)
    assert ok(api.get(f"{API}/lost-callbacks"))["task_status"] == "failed"


# ---------------------------------------------------------------- files


def test_files_are_public_with_length_and_etag(sandbox, blob, blob_url):
    whole = httpx.get(blob_url, trust_env=False)  # no Authorization: like a CDN URL
    assert whole.status_code == 200 and whole.content == blob.read_bytes()
    assert whole.headers["content-length"] == str(blob.stat().st_size)
    assert whole.headers["accept-ranges"] == "bytes" and whole.headers["etag"]
    head = httpx.head(blob_url, trust_env=False)
    assert head.status_code == 200 and head.headers["etag"] == whole.headers["etag"]
    assert head.headers["content-length"] == whole.headers["content-length"]
    missing = httpx.get(f"{sandbox.base_url}/sandbox/files/nothing.mp4", trust_env=False)
    refused(missing, 404, 1203)


def test_upload_keeps_the_extension_and_needs_a_file(api, blob_url):
    assert blob_url.endswith(".bin")
    refused(api.post("/sandbox/uploads", files={"other": ("a.mp4", b"xx")}), 400, 1201, "'file'")
    refused(api.post("/sandbox/uploads", data={"file": "not a file"}), 400, 1201, "'file'")


@pytest.mark.parametrize(
    ("header", "status", "start", "end"),
    [
        ("bytes=0-99", 206, 0, 99),
        ("bytes=1000-", 206, 1000, None),
        ("bytes=-500", 206, -500, None),
        ("bytes=100-99999999999", 206, 100, None),
        ("bytes=5-1", 200, 0, None),  # invalid: ignored
        ("bytes=0-1,5-9", 200, 0, None),  # several ranges: the whole file
        ("items=0-5", 200, 0, None),
    ],
)
def test_range_requests(blob, blob_url, header, status, start, end):
    data = blob.read_bytes()
    response = httpx.get(blob_url, headers={"Range": header}, trust_env=False)
    assert response.status_code == status
    expected = data[start:] if end is None else data[start:end + 1]
    assert response.content == expected
    assert response.headers["content-length"] == str(len(expected))
    if status == 206:
        first = start % len(data)
        assert response.headers["content-range"] == (
            f"bytes {first}-{first + len(expected) - 1}/{len(data)}")


def test_unsatisfiable_range_and_if_range(blob, blob_url):
    size = blob.stat().st_size
    response = httpx.get(blob_url, headers={"Range": f"bytes={size}-"}, trust_env=False)
    assert response.status_code == 416
    assert response.headers["content-range"] == f"bytes */{size}"
    etag = httpx.head(blob_url, trust_env=False).headers["etag"]
    same = httpx.get(blob_url, headers={"Range": "bytes=10-19", "If-Range": etag},
                     trust_env=False)
    assert same.status_code == 206 and same.content == blob.read_bytes()[10:20]
    changed = httpx.get(blob_url, headers={"Range": "bytes=10-19", "If-Range": '"other"'},
                        trust_env=False)
    assert changed.status_code == 200 and changed.content == blob.read_bytes()


def test_truncated_download_resumes_with_range(api, blob, blob_url):
    _faults(api, {"route": "files", "truncate": 0.5})
    received = bytearray()
    with pytest.raises(CONNECTION_LOST), httpx.stream("GET", blob_url, trust_env=False) as r:
        assert r.status_code == 200
        assert r.headers["content-length"] == str(blob.stat().st_size)  # the full length
        etag = r.headers["etag"]
        for chunk in r.iter_bytes():
            received += chunk
    assert 0 < len(received) < blob.stat().st_size
    rest = httpx.get(blob_url, headers={"Range": f"bytes={len(received)}-", "If-Range": etag},
                     trust_env=False)
    assert rest.status_code == 206
    assert bytes(received) + rest.content == blob.read_bytes()


def test_error_and_drop_on_files(api, blob_url):
    _faults(api, {"route": "files", "error": {"http": 503, "code": 5001}},
            {"route": "files", "drop": "before_commit"})
    refused(httpx.get(blob_url, trust_env=False), 503, 5001)
    with pytest.raises(CONNECTION_LOST):
        httpx.get(blob_url, trust_env=False)
    assert httpx.get(blob_url, trust_env=False).status_code == 200


# ---------------------------------------------------------------- clock


def test_clock_only_moves_forwards(api):
    before = ok(api.get("/sandbox/clock"))
    after = ok(api.post("/sandbox/clock", json={"advance_s": 0.5}))
    assert after["offset_s"] == pytest.approx(before["offset_s"] + 0.5)
    assert after["now"] >= before["now"] + 0.5
    for value in (-1, "5", None, True):
        refused(api.post("/sandbox/clock", json={"advance_s": value}), 400, 1201, "advance_s")


def test_stats_count_every_request_by_method_and_path(api, sandbox):
    before = ok(api.get("/sandbox/stats"))["requests"]
    api.get("/no/such/route")
    api.post(f"{API}/add-selection", json={"session_id": "nope", "frame_index": 0,
                                          "points": [{"x": 0.5, "y": 0.5}]})
    after = ok(api.get("/sandbox/stats"))["requests"]
    assert after.get("GET /no/such/route", 0) == before.get("GET /no/such/route", 0) + 1
    key = f"POST {API}/add-selection"
    assert after.get(key, 0) == before.get(key, 0) + 1
    assert after["GET /sandbox/stats"] == before["GET /sandbox/stats"] + 1
    assert sandbox.state.requests[key] == after[key]
