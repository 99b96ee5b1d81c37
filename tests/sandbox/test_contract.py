"""The sandbox against the points of Kling's contract the docs make easy to get wrong
(docs/kling-api.md): the default duration and result lengths, one account behind every
key, rejections with ``data.status``, and ids and envelopes shaped like Kling's."""

from __future__ import annotations

import re

import pytest

from kling_elements.sandbox.jobs import RESULT_EXTRA_FRAMES
from kling_elements.sandbox.sample import make_clip, make_reference_image

from ..support.fixtures import sandbox_fixture
from ..support.sandbox import (
    ADD_PROMPT,
    API,
    advance,
    b64,
    client,
    frames_of,
    ok,
    refused,
    sign,
    upload,
    wait_task,
)

pytestmark = [pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning"),
              pytest.mark.slow]
EIGHTEEN_DIGITS = re.compile(r"[1-9]\d{17}")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return tmp_path_factory.mktemp("sandbox-contract")


@pytest.fixture(scope="module")
def star(files):
    return b64(make_reference_image(files / "star.png", "star", (400, 400)))


sandbox = sandbox_fixture(scope="module", task_seconds=30.0, max_concurrent_tasks=2)


@pytest.fixture(scope="module")
def api(sandbox):
    with client(sandbox) as c:
        yield c


@pytest.fixture(scope="module")
def jwt_api(sandbox):
    """The same account through its access/secret key pair."""
    with client(sandbox, sign(sandbox)) as c:
        yield c


@pytest.fixture(autouse=True)
def no_leftover_rules(api):
    yield
    ok(api.delete("/sandbox/faults"))


def _session(api, path) -> dict:
    return ok(api.post(f"{API}/init-selection", json={"video_url": upload(api, path)}))


@pytest.fixture(scope="module")
def seven_s(api, files) -> dict:
    """A session on a 7 s clip (a "10" input), small so that its renders stay quick."""
    return _session(api, make_clip(files / "seven.mp4", width=720, height=720, fps=24,
                                   seconds=7.0).path)


def _addition(session_id: str, star: str, **fields) -> dict:
    return {"session_id": session_id, "edit_mode": "addition", "prompt": ADD_PROMPT,
            "image_list": [{"image": star}], **fields}


def _finish(api, task_id: str) -> dict:
    advance(api, 30.0)
    task = wait_task(api, task_id, ("succeed", "failed"), timeout=120)
    assert task["task_status"] == "succeed", task
    return task


# ---------------------------------------------------------------- duration


def test_a_create_without_duration_is_a_5_s_task_that_cuts_a_longer_input(api, seven_s, star):
    """Kling's default is "5": a 7-10 s input then gets 5 s (and a few frames), not 10 s."""
    made = ok(api.post(API, json=_addition(seven_s["session_id"], star,
                                           external_task_id="no-duration")))
    task = _finish(api, made["task_id"])
    (video,) = task["task_result"]["videos"]
    frames, fps = frames_of(api, video["url"])
    assert fps == 24.0 and seven_s["total_frame"] == 168
    assert len(frames) == 5 * 24 + RESULT_EXTRA_FRAMES
    assert video["duration"] == f"{(5 * 24 + RESULT_EXTRA_FRAMES) / 24:.1f}"
    assert task["final_unit_deduction"] == "1"  # priced as a 5 s std task


def test_duration_10_keeps_a_7_s_input_whole(api, seven_s, star):
    made = ok(api.post(API, json=_addition(seven_s["session_id"], star, duration="10",
                                           external_task_id="ten")))
    (video,) = _finish(api, made["task_id"])["task_result"]["videos"]
    assert len(frames_of(api, video["url"])[0]) == 168 and video["duration"] == "7.0"


def test_a_5_s_result_runs_a_few_frames_over_and_is_edited_again_as_5(api, files, star):
    """Kling-like result lengths, and the margin that lets a result start a new session."""
    five = _session(api, make_clip(files / "five.mp4", width=720, height=720, fps=24,
                                   seconds=5.0).path)
    made = ok(api.post(API, json=_addition(five["session_id"], star, duration="5")))
    (video,) = _finish(api, made["task_id"])["task_result"]["videos"]
    assert video["duration"] == "5.1"  # 123 frames at 24 fps: over 5 s, as Kling's are
    again = ok(api.post(f"{API}/init-selection", json={"video_id": video["id"]}))
    assert again["total_frame"] == 5 * 24 + RESULT_EXTRA_FRAMES
    refused(api.post(API, json=_addition(again["session_id"], star, duration="10")),
            400, 1201, "duration '10' needs a 7-10 s input")
    chained = ok(api.post(API, json=_addition(again["session_id"], star, duration="5")))
    (second,) = _finish(api, chained["task_id"])["task_result"]["videos"]
    assert second["duration"] == "5.1"  # stays a "5" result, it does not grow


def test_a_user_clip_a_few_frames_over_5_s_is_still_refused(api, files):
    """The margin is for Kling's own results (video_id) only: a clip must be 2-5 s."""
    clip = make_clip(files / "over.mp4", width=720, height=720, fps=24, seconds=5.125)
    refused(api.post(f"{API}/init-selection", json={"video_url": upload(api, clip.path)}),
            400, 1201, "5.125 s", "2-5 s")


# ---------------------------------------------------------------- one account, every key


def test_tasks_limit_and_external_ids_are_the_accounts_not_the_keys(api, jwt_api, seven_s,
                                                                    star):
    """Kling's concurrency is per account, shared by all keys; only creation takes a slot."""
    body = _addition(seven_s["session_id"], star, prompt=ADD_PROMPT + " [[fail]]")
    advance(api, 60.0)  # tasks of the other tests have ended: both slots are free
    by_key = ok(api.post(API, json={**body, "external_task_id": "acct-1"}))
    ok(jwt_api.post(API, json={**body, "external_task_id": "acct-2"}))
    for caller in (api, jwt_api):  # both slots of the account are taken, whoever asks
        refused(caller.post(API, json={**body, "external_task_id": "acct-3"}), 429, 1303,
                "limit is 2")
        refused(caller.post(API, json={**body, "external_task_id": "acct-1"}), 400, 1201,
                "acct-1", "already used")
        # queries and selection calls take no slot
        assert ok(caller.get(f"{API}/acct-1"))["task_id"] == by_key["task_id"]
        listed = [t["task_info"]["external_task_id"] for t in ok(caller.get(API))]
        assert listed[:2] == ["acct-2", "acct-1"]
    advance(api, 30.0)
    ok(jwt_api.post(API, json={**body, "external_task_id": "acct-3"}))


# ---------------------------------------------------------------- rejections


def test_a_reject_rule_answers_code_0_with_a_status_and_changes_nothing(sandbox, api,
                                                                         make_plate):
    clip = make_plate(1280, 720, 30, 2.0)
    url = upload(api, clip.path)
    ok(api.post("/sandbox/faults", json={"rules": [
        {"route": "init-selection", "reject": {"status": 3, "message": "video rejected"}},
        {"route": "add-selection", "times": 2, "reject": {"status": 7}},
    ]}))
    sessions = len(sandbox.state.sessions)
    response = api.post(f"{API}/init-selection", json={"video_url": url})
    body = response.json()
    assert (response.status_code, body["code"], body["message"]) == (200, 0, "video rejected")
    assert body["data"] == {"status": 3}
    assert len(sandbox.state.sessions) == sessions  # no session was opened

    session = ok(api.post(f"{API}/init-selection", json={"video_url": url}))
    point = {"session_id": session["session_id"], "frame_index": 0,
             "points": [{"x": 0.5, "y": 0.5}]}
    assert ok(api.post(f"{API}/add-selection", json=point)) == {"status": 7}
    assert ok(api.post(f"{API}/add-selection", json=point)) == {"status": 7}
    # the rejected adds stored nothing: there is no such point to delete
    refused(api.post(f"{API}/delete-selection", json=point), 400, 1201, "not selected")


@pytest.mark.parametrize(
    ("rule", "words"),
    [
        ({"route": "create", "reject": {"status": 1}}, ["reject only applies to"]),
        ({"route": "init-selection", "reject": {"status": 0}}, ["non-zero"]),
        ({"route": "add-selection", "reject": {"status": "1"}}, ["non-zero integer"]),
        ({"route": "add-selection", "reject": 1}, ["reject must be an object"]),
        ({"route": "add-selection", "reject": {"message": 5}}, ["reject.message"]),
    ],
)
def test_reject_rules_are_validated(api, rule, words):
    refused(api.post("/sandbox/faults", json={"rules": [rule]}), 400, 1201, *words)


# ---------------------------------------------------------------- ids and envelopes


@pytest.mark.parametrize("prompt", [
    "Delete the ball", "Add the star from <<<image_2>>> to <<<video_1>>>",
    "Add the star from <<<image_1>>> to <<<video_2>>>",
], ids=["no-video_1", "image_2-of-1", "video_2"])
def test_prompt_placeholders_are_not_refused_by_the_sandbox(api, seven_s, star, prompt):
    """Kling documents the placeholders as the way to refer to inputs, not a refusal of
    other ones: the sandbox takes the prompt (the client refuses the last two itself)."""
    advance(api, 60.0)  # the tasks of other tests have ended: a slot is free
    # [[fail]]: no render; being created is the point
    made = ok(api.post(API, json=_addition(seven_s["session_id"], star,
                                           prompt=prompt + " [[fail]]", duration="10")))
    assert made["task_status"] == "submitted"


def test_ids_object_ids_and_error_envelopes_look_like_klings(api, seven_s, star):
    assert EIGHTEEN_DIGITS.fullmatch(seven_s["session_id"])
    advance(api, 60.0)
    made = ok(api.post(API, json=_addition(seven_s["session_id"], star,
                                           prompt=ADD_PROMPT + " [[fail]]")))
    assert EIGHTEEN_DIGITS.fullmatch(made["task_id"])
    ok(api.post("/sandbox/faults", json={"rules": [
        {"route": "get", "error": {"http": 429, "code": 1303}}]}))
    response = api.get(f"{API}/{made['task_id']}")
    assert response.status_code == 429
    assert set(response.json()) == {"code", "message", "request_id"}  # the docs' 1303 example
