"""The sandbox's API through HTTP: auth, selection, preview, create rules, task lifecycle.

One sandbox (``task_seconds=1``) and one session on a 2 s 1280x720 sample clip are shared by
the module; each test puts the session's selection in the state it needs. Tests that move the
clock by hours or days use their own sandbox, so they cannot expire the shared session.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import time

import httpx
import numpy as np
import pytest
from PIL import Image

from kling_elements.sandbox import running
from kling_elements.sandbox.sample import make_clip, make_reference_image

from ..support.fixtures import sandbox_fixture
from ..support.sandbox import (
    ADD_PROMPT,
    API,
    REMOVE_PROMPT,
    CallbackSink,
    advance,
    b64,
    client,
    decode_rle,
    frames_of,
    iou,
    ok,
    png_b64,
    refused,
    sign,
    upload,
    wait_task,
)

pytestmark = [
    pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning"),
    # pycocotools (the reference RLE decoder) predates numpy 2's copy keyword
    pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning"),
]

FAIL_MESSAGE = "content safety policy: the sandbox refuses prompts containing [[fail]]"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return tmp_path_factory.mktemp("sandbox-server")


@pytest.fixture(scope="module")
def clip(make_plate):
    return make_plate(1280, 720, 30, 2.0)


@pytest.fixture(scope="module")
def star(files):
    return b64(make_reference_image(files / "star.png", "star", (512, 512)))


sandbox = sandbox_fixture(scope="module", task_seconds=1.0)


@pytest.fixture(scope="module")
def api(sandbox):
    with client(sandbox) as c:
        yield c


@pytest.fixture(scope="module")
def clip_url(api, clip):
    return upload(api, clip.path)


@pytest.fixture(scope="module")
def session(api, clip_url):
    return ok(api.post(f"{API}/init-selection", json={"video_url": clip_url}))


def _select(api, session_id, frame, point):
    return ok(api.post(f"{API}/add-selection", json={
        "session_id": session_id, "frame_index": frame,
        "points": [{"x": point[0], "y": point[1]}],
    }))


def _clear(api, session_id):
    ok(api.post(f"{API}/clear-selection", json={"session_id": session_id}))


# ---------------------------------------------------------------- auth and routing


@pytest.mark.parametrize(
    ("make_header", "code"),
    [
        (lambda sb: None, 1001),
        (lambda sb: "", 1001),
        (lambda sb: "Bearer", 1002),
        (lambda sb: "Bearer not-a-token", 1002),
        (lambda sb: "Basic " + sb.api_key, 1002),
        (lambda sb: "Bearer " + sign(sb, secret="wrong-secret"), 1002),
        (lambda sb: "Bearer " + sign(sb, iss="someone-else"), 1000),
        (lambda sb: "Bearer " + sign(sb, nbf=600, exp=1800), 1003),
        (lambda sb: "Bearer " + sign(sb, now=time.time() - 3600), 1004),
    ],
    ids=["missing", "empty", "no-token", "garbage", "not-bearer", "wrong-secret", "unknown-iss",
         "nbf-future", "expired"],
)
def test_auth_refusals(sandbox, make_header, code):
    header = make_header(sandbox)
    headers = {"Authorization": header} if header is not None else {}
    response = httpx.get(f"{sandbox.base_url}{API}", headers=headers, trust_env=False)
    refused(response, 401, code)


def test_auth_accepts_api_key_and_jwt(sandbox, api):
    assert ok(api.get(API)) is not None
    with client(sandbox, sign(sandbox)) as jwt_api:
        assert isinstance(ok(jwt_api.get(API)), list)


def test_unknown_route_and_method_are_1202(api):
    refused(api.get("/v1/videos/nothing-here"), 404, 1202)
    refused(api.delete(API), 404, 1202)
    refused(api.get(f"{API}/init-selection"), 404, 1203)  # read as a task id


def test_malformed_bodies(api, session):
    refused(api.post(f"{API}/add-selection", content=b"{not json",
                     headers={"content-type": "application/json"}), 400, 1200, "JSON")
    refused(api.post(f"{API}/add-selection", json=[1, 2]), 400, 1200, "object")
    sid = session["session_id"]
    for body, word in [
        ({"session_id": sid, "frame_index": "3", "points": [{"x": 0.5, "y": 0.5}]},
         "frame_index"),
        ({"session_id": sid, "frame_index": 1.0, "points": [{"x": 0.5, "y": 0.5}]},
         "frame_index"),
        ({"session_id": sid, "frame_index": 0, "points": "0.5,0.5"}, "points"),
        ({"session_id": 5, "frame_index": 0, "points": [{"x": 0.5, "y": 0.5}]}, "session_id"),
        ({"video_url": 5}, "video_url"),
    ]:
        route = "init-selection" if "video_url" in body else "add-selection"
        refused(api.post(f"{API}/{route}", json=body), 400, 1201, word)


def test_request_log_has_route_code_and_id_but_no_secrets(sandbox, api, caplog):
    caplog.set_level(logging.DEBUG, logger="kling_elements.sandbox")
    body = api.get(API).json()
    deadline = time.monotonic() + 5
    while body["request_id"] not in caplog.text and time.monotonic() < deadline:
        time.sleep(0.01)
    line = next(r.getMessage() for r in caplog.records if body["request_id"] in r.getMessage())
    assert "list" in line and "code=0" in line
    for secret in (sandbox.api_key, sandbox.secret_key, "Bearer"):
        assert secret not in caplog.text


# ---------------------------------------------------------------- init-selection


def test_init_session_shape_and_normalized_video(api, session):
    assert session["status"] == 0
    assert (session["fps"], session["original_duration"]) == (30.0, 2000)
    assert (session["width"], session["height"], session["total_frame"]) == (1280, 720, 60)
    frames, fps = frames_of(api, session["normalized_video"])
    assert frames.shape == (60, 720, 1280, 3) and fps == 30.0


def test_init_needs_exactly_one_source(api, clip_url):
    refused(api.post(f"{API}/init-selection", json={}), 400, 1201, "neither")
    refused(api.post(f"{API}/init-selection", json={"video_url": clip_url, "video_id": "1"}),
            400, 1201, "both")
    refused(api.post(f"{API}/init-selection", json={"video_id": "123"}), 404, 1203)


@pytest.mark.parametrize("url", [
    "http://kling-sandbox-test.invalid/clip.mp4",
    "http://10.255.255.1/clip.mp4",  # unroutable: a connection attempt would hang
    "https://example.com/clip.mp4",
])
def test_init_refuses_non_loopback_urls_without_connecting(api, url):
    start = time.monotonic()
    refused(api.post(f"{API}/init-selection", json={"video_url": url}), 400, 1201,
            "not loopback")
    assert time.monotonic() - start < 2.0


def test_init_refuses_other_schemes_and_unreadable_files(api, files):
    refused(api.post(f"{API}/init-selection", json={"video_url": "ftp://127.0.0.1/a.mp4"}),
            400, 1201, "http(s)")
    garbage = files / "garbage.mp4"
    garbage.write_bytes(b"this is not a video" * 100)
    refused(api.post(f"{API}/init-selection", json={"video_url": upload(api, garbage)}),
            400, 1201, "cannot be read")


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"width": 1280, "height": 720, "fps": 25, "seconds": 2.0}, ["frame rate 25"]),
        ({"width": 640, "height": 360, "fps": 30, "seconds": 2.0}, ["width 640", "height 360"]),
        ({"width": 720, "height": 720, "fps": 24, "seconds": 6.0}, ["duration 6.000"]),
    ],
    ids=["25fps", "640px", "6s"],
)
def test_init_refuses_clips_breaking_the_rules(api, tmp_path, params, words):
    bad = make_clip(tmp_path / "bad.mp4", **params)
    refused(api.post(f"{API}/init-selection", json={"video_url": upload(api, bad.path)}),
            400, 1201, *words)


# ---------------------------------------------------------------- selection


def test_add_selection_segments_the_clicked_object(api, session, clip):
    sid = session["session_id"]
    _clear(api, sid)
    data = _select(api, sid, 10, clip.center(10))
    assert data["status"] == 0 and data["res"]["frame_index"] == 10
    (item,) = data["res"]["rle_mask_list"]
    assert item["object_id"] == 0  # numbered from 0, as in the docs' example
    assert item["rle_mask"]["size"] == [720, 1280] == item["png_mask"]["size"]
    mask = decode_rle(item["rle_mask"])
    assert iou(mask, clip.mask(10)) >= 0.9
    png = Image.open(io.BytesIO(base64.b64decode(item["png_mask"]["base64"])))
    assert png.format == "PNG" and png.mode == "L"
    pixels = np.asarray(png)
    assert set(np.unique(pixels)) <= {0, 255}
    assert np.array_equal(pixels == 255, mask)


def _server_timing(response: httpx.Response) -> dict[str, float]:
    parts = [part.strip().split(";dur=") for part in response.headers["server-timing"].split(",")]
    return {name: float(ms) for name, ms in parts}


def test_selection_answers_say_how_long_the_segmentation_took(api, session, clip):
    sid = session["session_id"]
    _clear(api, sid)
    center, corner = clip.center(3), (0.02, 0.02)
    points = [{"x": x, "y": y} for x, y in (center, corner)]
    calls = [("add-selection", points, True), ("delete-selection", points[1:], True),
             ("delete-selection", points[:1], False)]  # nothing left to segment
    for route, sent, segmented in calls:
        response = api.post(f"{API}/{route}",
                            json={"session_id": sid, "frame_index": 3, "points": sent})
        ok(response)
        timing = _server_timing(response)
        assert set(timing) == ({"seg", "segq", "app"} if segmented else {"app"})
        assert 0 < timing.get("seg", 1e-9) <= timing["app"]
        assert 0 <= timing.get("segq", 0) <= timing["app"]
    listing = api.get(API)
    ok(listing)
    assert set(_server_timing(listing)) == {"app"}
    refusal = api.post(f"{API}/add-selection",
                       json={"session_id": sid, "frame_index": -1, "points": points})
    assert "server-timing" not in refusal.headers  # only successful answers are timed


def test_delete_needs_bit_identical_points(api, session, clip):
    sid = session["session_id"]
    _clear(api, sid)
    x = clip.center(20)[0]
    # -0.0 is a valid coordinate, and is not the same float as 0.0
    ok(api.post(f"{API}/add-selection", json={
        "session_id": sid, "frame_index": 20, "points": [{"x": x, "y": -0.0}]}))
    body = {"session_id": sid, "frame_index": 20, "points": [{"x": x, "y": 0.0}]}
    refused(api.post(f"{API}/delete-selection", json=body), 400, 1201,
            "not selected on frame 20", "exactly the coordinates")
    almost = {"session_id": sid, "frame_index": 20,
              "points": [{"x": x + 1e-16 if x < 0.5 else x - 1e-16, "y": -0.0}]}
    if almost["points"][0]["x"] != x:
        refused(api.post(f"{API}/delete-selection", json=almost), 400, 1201, "not selected")
    body["points"][0]["y"] = -0.0
    data = ok(api.post(f"{API}/delete-selection", json=body))
    assert data["res"] == {"frame_index": 20, "rle_mask_list": []}
    refused(api.post(f"{API}/delete-selection", json=body), 400, 1201, "not selected")


def test_delete_keeps_the_other_points(api, session, clip):
    sid = session["session_id"]
    _clear(api, sid)
    center, corner = clip.center(5), (0.02, 0.02)
    ok(api.post(f"{API}/add-selection", json={"session_id": sid, "frame_index": 5, "points": [
        {"x": corner[0], "y": corner[1]}, {"x": center[0], "y": center[1]}]}))
    data = ok(api.post(f"{API}/delete-selection", json={
        "session_id": sid, "frame_index": 5, "points": [{"x": corner[0], "y": corner[1]}]}))
    (item,) = data["res"]["rle_mask_list"]
    assert iou(decode_rle(item["rle_mask"]), clip.mask(5)) >= 0.9


@pytest.mark.parametrize(
    ("points_json", "words"),
    [
        ('[{"x": true, "y": 0.5}]', ["x=True"]),
        ('[{"x": "0.5", "y": 0.5}]', ["x='0.5'"]),
        ('[{"x": NaN, "y": 0.5}]', ["x=nan"]),
        ('[{"x": 0.5, "y": 1.5}]', ["y=1.5", "outside"]),
        ('[{"x": 0.5}]', ["points[0]"]),
        ("[]", ["no points"]),
        ('[[0.5, 0.5]]', ["points[0]"]),
    ],
    ids=["bool", "string", "nan", "out-of-range", "missing-y", "empty", "pair"],
)
def test_add_refuses_bad_points(api, session, points_json, words):
    raw = f'{{"session_id": "{session["session_id"]}", "frame_index": 0, "points": {points_json}}}'
    refused(api.post(f"{API}/add-selection", content=raw.encode(),
                     headers={"content-type": "application/json"}), 400, 1201, *words)


def test_add_refuses_bad_frames_and_sessions(api, session):
    sid, point = session["session_id"], [{"x": 0.5, "y": 0.5}]
    for frame, word in [(60, "past the video's last frame 59"), (-1, "negative")]:
        refused(api.post(f"{API}/add-selection", json={
            "session_id": sid, "frame_index": frame, "points": point}), 400, 1201, word)
    refused(api.post(f"{API}/add-selection", json={
        "session_id": "nope", "frame_index": 0, "points": point}), 404, 1203)


@pytest.mark.slow
def test_points_and_frames_limits(api, session, clip):
    sid = session["session_id"]
    _clear(api, sid)
    eleven = [{"x": 0.05 + 0.01 * i, "y": 0.05} for i in range(11)]
    refused(api.post(f"{API}/add-selection", json={
        "session_id": sid, "frame_index": 0, "points": eleven}), 400, 1201, "limit of 10")
    ok(api.post(f"{API}/add-selection", json={
        "session_id": sid, "frame_index": 0, "points": eleven[:9]}))
    refused(api.post(f"{API}/add-selection", json={
        "session_id": sid, "frame_index": 0, "points": eleven[9:]}), 400, 1201,
        "11 points", "limit of 10 points per frame")
    ok(api.post(f"{API}/add-selection", json={
        "session_id": sid, "frame_index": 0, "points": eleven[9:10]}))  # 10 is fine
    for frame in range(1, 10):
        _select(api, sid, frame * 6, clip.center(frame * 6))
    refused(api.post(f"{API}/add-selection", json={
        "session_id": sid, "frame_index": 59, "points": [{"x": 0.5, "y": 0.5}]}),
        400, 1201, "limit of 10 frames")
    # a frame whose points are all deleted no longer counts
    data = ok(api.post(f"{API}/delete-selection", json={
        "session_id": sid, "frame_index": 0, "points": eleven[:10]}))
    assert data["res"]["rle_mask_list"] == []
    _select(api, sid, 59, clip.center(59))


def test_clear_selection_then_preview_needs_points(api, session, clip):
    sid = session["session_id"]
    _clear(api, sid)
    _select(api, sid, 3, clip.center(3))
    data = ok(api.post(f"{API}/clear-selection", json={"session_id": sid}))
    assert data["status"] == 0
    refused(api.post(f"{API}/preview-selection", json={"session_id": sid}), 400, 1201,
            "nothing is selected")


@pytest.mark.slow
def test_preview_files(api, session, clip):
    sid = session["session_id"]
    _clear(api, sid)
    _select(api, sid, 0, clip.center(0))
    res = ok(api.post(f"{API}/preview-selection", json={"session_id": sid}))["res"]
    frames, _ = frames_of(api, res["video"])
    assert frames.shape == (60, 720, 1280, 3)
    cover = api.get(res["video_cover"])
    assert cover.status_code == 200
    assert Image.open(io.BytesIO(cover.content)).format == "JPEG"
    lines = api.get(res["tracking_output"]).text.splitlines()
    assert len(lines) == 60
    records = [json.loads(line) for line in lines]
    assert [r["frame_index"] for r in records] == list(range(60))
    assert all(r["size"] == [720, 1280] for r in records)
    assert iou(decode_rle(records[45]), clip.mask(45)) >= 0.8
    again = ok(api.post(f"{API}/preview-selection", json={"session_id": sid}))["res"]
    assert again == res  # same selection version: cached


# ---------------------------------------------------------------- create


def _create_body(session_id: str, /, **fields) -> dict:
    body = {"session_id": session_id, "edit_mode": "removal", "prompt": REMOVE_PROMPT,
            "duration": "5", "mode": "std"}
    body.update(fields)
    return body


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"image_list": [{"image": "STAR"}]}, ["removal takes no images"]),
        ({"edit_mode": "swap", "prompt": "swap x from <<<image_1>>> for y from <<<video_1>>>"},
         ["swap takes exactly 1 image"]),
        ({"edit_mode": "addition", "prompt": ADD_PROMPT, "image_list": [{"image": "STAR"}] * 3},
         ["addition takes 1-2 images"]),
        ({"edit_mode": "addition", "prompt": ADD_PROMPT,
          "image_list": [{"image": "data:image/png;base64,STAR"}]}, ["data: prefix"]),
        ({"edit_mode": "addition", "prompt": ADD_PROMPT,
          "image_list": [{"image": png_b64(200, 200)}]}, ["200x200", "at least 300"]),
        ({"edit_mode": "addition", "prompt": ADD_PROMPT,
          "image_list": [{"image": png_b64(900, 300)}]}, ["aspect ratio 3.00"]),
        ({"edit_mode": "addition", "prompt": ADD_PROMPT,
          "image_list": [{"image": png_b64(400, 400, "GIF")}]}, ["GIF", "JPEG and PNG"]),
        ({"edit_mode": "addition", "prompt": ADD_PROMPT, "image_list": [{"image": "@@@"}]},
         ["neither", "base64"]),
        ({"edit_mode": "addition", "prompt": ADD_PROMPT,
          "image_list": [{"image": "https://example.com/star.png"}]}, ["not loopback"]),
        ({"edit_mode": "addition", "prompt": ADD_PROMPT,
          "image_list": [{"image": "A" * (15 * 2**20)}]}, ["10 MB"]),
        ({"edit_mode": "addition", "prompt": ADD_PROMPT, "image_list": [{"img": "STAR"}]},
         ["image_list[0]"]),
        ({"prompt": "<<<video_1>>> " + "x" * 2490}, ["2504 characters", "2500"]),
        ({"prompt": None}, ["prompt is required"]),
        ({"negative_prompt": "y" * 2501}, ["negative_prompt has 2501"]),
        ({"mode": "turbo"}, ["mode 'turbo'"]),
        ({"duration": "10"}, ["duration '10' needs a 7-10 s input", "2.00 s"]),
        ({"duration": "7"}, ["duration '7'"]),
        ({"duration": 5}, ["duration must be a string"]),
        ({"model_name": "kling-v9"}, ["model_name 'kling-v9'"]),
        ({"edit_mode": "blur"}, ["edit_mode 'blur'"]),
        ({"callback_url": "http://example.invalid/cb"}, ["callback_url", "not loopback"]),
        ({"watermark_info": "yes"}, ["watermark_info"]),
        ({"external_task_id": 7}, ["external_task_id must be a string"]),
        ({"session_id": None}, ["session_id is required"]),
    ],
    ids=["removal-image", "swap-none", "addition-3", "data-prefix", "tiny", "aspect", "gif",
         "not-base64", "remote-image", "over-10mb", "no-image-key", "prompt-long",
         "prompt-missing", "negative-long", "mode", "duration-mismatch", "duration-bad",
         "duration-int", "model", "edit-mode", "callback-remote", "watermark", "external-type",
         "no-session"],
)
def test_create_refusals(api, session, clip, star, fields, words):
    sid = session["session_id"]
    _clear(api, sid)
    _select(api, sid, 0, clip.center(0))
    body = _create_body(sid, **fields)
    for item in body.get("image_list", []):
        if "image" in item:
            item["image"] = item["image"].replace("STAR", star)
    refused(api.post(API, json=body), 400, 1201, *words)


def test_create_refuses_unknown_session(api):
    refused(api.post(API, json=_create_body("no-such-session")), 404, 1203)


def test_swap_and_removal_need_a_selection(api, session, star):
    sid = session["session_id"]
    _clear(api, sid)
    refused(api.post(API, json=_create_body(sid)), 400, 1201, "removal needs a marked selection")
    swap = _create_body(sid, edit_mode="swap", image_list=[{"image": star}],
                        prompt="swap the star from <<<image_1>>> for the ball from <<<video_1>>>")
    refused(api.post(API, json=swap), 400, 1201, "swap needs a marked selection")


def test_create_answer_and_external_id_reuse(api, session, star):
    body = _create_body(session["session_id"], edit_mode="addition",
                        prompt=ADD_PROMPT + " [[fail]]", image_list=[{"image": star}],
                        external_task_id="reuse-1")
    data = ok(api.post(API, json=body))
    assert data["task_status"] == "submitted"
    assert data["task_info"] == {"external_task_id": "reuse-1"}
    assert data["created_at"] == data["updated_at"] and data["created_at"] > 1e12
    refused(api.post(API, json=body), 400, 1201, "reuse-1", "already used")
    body.pop("external_task_id")
    plain = ok(api.post(API, json=body))
    assert plain["task_info"] == {"external_task_id": ""}


# ---------------------------------------------------------------- lifecycle


@pytest.mark.slow
def test_removal_lifecycle_result_and_callbacks(sandbox, api, session, clip):
    sid = session["session_id"]
    _clear(api, sid)
    _select(api, sid, 0, clip.center(0))
    _select(api, sid, 40, clip.center(40))
    sink = CallbackSink()
    try:
        created = ok(api.post(API, json=_create_body(
            sid, external_task_id="life-1", callback_url=sink.url,
            watermark_info={"enabled": True})))
        first = ok(api.get(f"{API}/{created['task_id']}"))
        assert first["task_status"] in ("submitted", "processing")
        assert first["task_result"] == {"videos": []}
        advance(api, 1.0)  # the task's minimum duration has passed on the sandbox clock
        task = wait_task(api, "life-1", ("succeed", "failed"))
        assert task["task_status"] == "succeed", task
        assert task["task_id"] == created["task_id"]
        assert task["task_status_msg"] == ""
        assert task["watermark_info"] == {"enabled": True}
        assert task["updated_at"] >= task["created_at"] + 1000
        assert "final_unit_deduction" in task
        (result,) = task["task_result"]["videos"]
        assert result["session_id"] == sid and result["duration"] == "2.0"
        assert result["url"] and result["watermark_url"] and result["id"]

        frames, _ = frames_of(api, result["url"])
        assert frames.shape == (60, 720, 1280, 3)
        for index in (0, 20, 40, 59):
            region = clip.mask(index)
            error = np.abs(frames[index][region].astype(float) - clip.background[region]).mean()
            assert error < 12, (index, error)
        marked, _ = frames_of(api, result["watermark_url"])
        assert not np.array_equal(marked, frames)

        calls = sink.wait(3)
        assert [c["task_status"] for c in calls] == ["submitted", "processing", "succeed"]
        assert all(c["task_id"] == task["task_id"] for c in calls)
        assert all(c["task_info"]["external_task_id"] == "life-1" for c in calls)
        assert calls[-1]["task_result"]["videos"] == [
            {"id": result["id"], "url": result["url"], "duration": "2.0"}]
        assert calls[-1]["updated_at"] == task["updated_at"]
    finally:
        sink.close()

    # the result starts a new session (edits chain)
    chained = ok(api.post(f"{API}/init-selection", json={"video_id": result["id"]}))
    assert chained["total_frame"] == 60 and chained["session_id"] != sid

    # tasks belong to the account: its access/secret keys see what its API key made
    with client(sandbox, sign(sandbox)) as other:
        assert ok(other.get(f"{API}/life-1"))["task_id"] == task["task_id"]
        assert ok(other.get(f"{API}/{task['task_id']}"))["task_info"] == {
            "external_task_id": "life-1"}


def test_fail_marker_fails_with_a_message(api, session, star):
    body = _create_body(session["session_id"], edit_mode="addition", image_list=[{"image": star}],
                        prompt=ADD_PROMPT + " [[fail]]", external_task_id="fail-1")
    ok(api.post(API, json=body))
    advance(api, 1.0)
    task = wait_task(api, "fail-1", ("succeed", "failed"))
    assert task["task_status"] == "failed"
    assert task["task_status_msg"] == FAIL_MESSAGE
    assert task["task_result"] == {"videos": []}


def test_list_pages_newest_first_and_bounds(sandbox, api, session, star):
    body = _create_body(session["session_id"], edit_mode="addition", image_list=[{"image": star}],
                        prompt=ADD_PROMPT + " [[fail]]")
    with client(sandbox, sign(sandbox)) as mine:
        for name in ("list-a", "list-b"):
            ok(mine.post(API, json={**body, "external_task_id": name}))
        everything = ok(mine.get(API, params={"pageNum": 1, "pageSize": 500}))
        names = [t["task_info"]["external_task_id"] for t in everything]
        assert names[:2] == ["list-b", "list-a"]
        assert [t["task_info"]["external_task_id"]
                for t in ok(mine.get(API, params={"pageNum": 2, "pageSize": 1}))] == ["list-a"]
        assert ok(mine.get(API, params={"pageNum": len(names) + 1, "pageSize": 1})) == []
        assert set(everything[0]) >= {"task_id", "task_status", "task_status_msg", "task_info",
                                      "task_result", "watermark_info", "created_at",
                                      "updated_at"}
        for params, word in [({"pageNum": 0}, "pageNum"), ({"pageNum": 1001}, "1-1000"),
                             ({"pageSize": 0}, "page_size"), ({"pageSize": 501}, "1-500"),
                             ({"pageNum": "abc"}, "pageNum 'abc'")]:
            refused(mine.get(API, params=params), 400, 1201, word)
    # one account: the API key lists the same tasks
    assert [t["task_info"]["external_task_id"]
            for t in ok(api.get(API, params={"pageSize": 500}))] == names


# ---------------------------------------------------------------- clock-driven limits


@pytest.fixture(scope="module")
def slow(clip):
    """A second sandbox whose tasks take 30 s of sandbox clock; its clock jumps by days."""
    with running(task_seconds=30.0, max_concurrent_tasks=3) as sb, client(sb) as c:
        url = upload(c, clip.path)
        session = ok(c.post(f"{API}/init-selection", json={"video_url": url}))
        yield sb, c, session


@pytest.mark.slow
def test_concurrency_limit_frees_slots_when_tasks_end(slow, star):
    _, api, session = slow
    body = _create_body(session["session_id"], edit_mode="addition", image_list=[{"image": star}],
                        prompt=ADD_PROMPT + " [[fail]]")
    for i in range(3):
        ok(api.post(API, json={**body, "external_task_id": f"slot-{i}"}))
    refused(api.post(API, json={**body, "external_task_id": "slot-3"}), 429, 1303,
            "limit is 3")
    assert ok(api.get(f"{API}/slot-0"))["task_status"] in ("submitted", "processing")
    advance(api, 30.0)
    assert ok(api.get(f"{API}/slot-0"))["task_status"] == "failed"
    ok(api.post(API, json={**body, "external_task_id": "slot-3"}))


@pytest.mark.slow
def test_clock_expires_tokens_sessions_and_results(slow, clip, star):
    sandbox, api, session = slow
    sid = session["session_id"]
    created = ok(api.post(API, json=_create_body(
        sid, edit_mode="addition", image_list=[{"image": star}], prompt=ADD_PROMPT,
        external_task_id="timeline")))
    advance(api, 30.0)
    task = wait_task(api, created["task_id"], ("succeed", "failed"))
    assert task["task_status"] == "succeed", task
    video_id = task["task_result"]["videos"][0]["id"]

    token = sign(sandbox)  # valid for 30 minutes of real time
    with client(sandbox, token) as jwt_api:
        assert isinstance(ok(jwt_api.get(API)), list)
        advance(api, 1801)
        refused(jwt_api.get(API), 401, 1004)

    advance(api, 24 * 3600)
    refused(api.post(f"{API}/add-selection", json={
        "session_id": sid, "frame_index": 0, "points": [{"x": 0.5, "y": 0.5}]}),
        404, 1203, "expired")
    refused(api.post(API, json=_create_body(sid)), 404, 1203, "expired")

    advance(api, 30 * 24 * 3600)
    refused(api.post(f"{API}/init-selection", json={"video_id": video_id}), 404, 1203,
            "expired")
    # the task itself is still queryable
    assert ok(api.get(f"{API}/timeline"))["task_status"] == "succeed"
