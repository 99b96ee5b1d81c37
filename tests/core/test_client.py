"""The client against a scripted ``httpx.MockTransport``: request shaping, envelope and field
parsing, retry classification by business code, never paying twice, validating before
spending, exact points, and ``wait``."""

from __future__ import annotations

import base64
import io
import json
import math
import random
import re
import threading
import time
from collections.abc import Callable

import httpx
import jwt
import numpy as np
import pytest
from PIL import Image

import kling_elements as ke
from kling_elements.retry import backoff

AK = "AK0123456789abcdef0123456789abcd"
SK = "SK-secret-0123456789abcdef0123456789"
API = "/v1/videos/multi-elements"
SEED = 1234

Reply = Callable[[httpx.Request], httpx.Response]


# -- a scripted Kling ---------------------------------------------------------------------


def ok(data: object = None, *, status: int = 200, **extra: object) -> Reply:
    body = {"code": 0, "message": "SUCCEED", "request_id": "req-ok", "data": data, **extra}
    return lambda request: httpx.Response(status, json=body)


def err(code: int, status: int | None = None, message: str = "", headers=None) -> Reply:
    status = status or ke.errors.CODES[code].http_status
    body = {"code": code, "message": message, "request_id": f"req-{code}", "data": None}
    return lambda request: httpx.Response(status, json=body, headers=headers)


def raw(status: int, content: bytes, content_type: str = "text/html") -> Reply:
    return lambda request: httpx.Response(
        status, content=content, headers={"Content-Type": content_type}
    )


def drop(kind: type[httpx.TransportError] = httpx.RemoteProtocolError) -> Reply:
    def reply(request: httpx.Request) -> httpx.Response:
        raise kind("connection lost", request=request)

    return reply


class Kling:
    """Routes ``(method, path)`` to replies given in order (the last one repeats); keeps a
    copy of each request as it arrived."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], list[Reply]] = {}
        self.prefixes: dict[tuple[str, str], Reply] = {}
        self.requests: list[httpx.Request] = []

    def on(self, method: str, path: str, *replies: Reply) -> Kling:
        self.routes[(method, path)] = list(replies)
        return self

    def on_prefix(self, method: str, prefix: str, reply: Reply) -> Kling:
        self.prefixes[(method, prefix)] = reply
        return self

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(
            httpx.Request(request.method, request.url, headers=request.headers.copy(),
                          content=request.content)
        )
        replies = self.routes.get((request.method, request.url.path))
        if replies is None:
            for (method, prefix), reply in self.prefixes.items():
                if method == request.method and request.url.path.startswith(prefix):
                    return reply(request)
            return httpx.Response(404, json={"code": 1202, "message": "no route"})
        reply = replies.pop(0) if len(replies) > 1 else replies[0]
        return reply(request)

    def bodies(self, method: str = "POST", path: str | None = None) -> list[dict]:
        return [
            json.loads(r.content) for r in self.requests
            if r.method == method and (path is None or r.url.path == path)
        ]

    def calls(self) -> list[tuple[str, str]]:
        return [(r.method, r.url.path) for r in self.requests]


class FakeTime:
    """A fake monotonic clock that only moves when the client sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def kling() -> Kling:
    return Kling()


@pytest.fixture
def clock() -> FakeTime:
    return FakeTime()


def make_client(kling: Kling, clock: FakeTime, **kwargs) -> ke.Client:
    kwargs.setdefault("max_retries", 3)
    return ke.Client(
        AK, SK, transport=httpx.MockTransport(kling), sleep=clock.sleep, clock=clock,
        rng=random.Random(SEED), **kwargs,
    )


@pytest.fixture
def client(kling, clock) -> ke.Client:
    return make_client(kling, clock)


def expected_backoffs(n: int) -> list[float]:
    rng = random.Random(SEED)
    return [backoff(i, rng) for i in range(n)]


# -- canned answers -----------------------------------------------------------------------

INIT = {
    "status": 0, "session_id": "sess-1", "fps": 30.0, "original_duration": 4000,
    "width": 1280, "height": 720, "total_frame": 120,
    "normalized_video": "https://cdn.example/norm.mp4",
}
# A 2x2 mask [[0, 1], [1, 0]]: column-major runs 1, 2, 1 -> COCO counts "121".
MASK_ITEM = {
    "object_id": 1,
    "rle_mask": {"size": [2, 2], "counts": "121"},
    "png_mask": {"size": [2, 2], "base64": "iVBORw0KGgo="},
}


def selection(frame: int, items=(MASK_ITEM,), status: int = 0) -> dict:
    return {"status": status, "res": {"frame_index": frame, "rle_mask_list": list(items)}}


def task(task_id="task-1", status="submitted", ext="ext-1", msg="", videos=()) -> dict:
    return {
        "task_id": task_id, "task_status": status, "task_status_msg": msg,
        "task_info": {"external_task_id": ext}, "created_at": 1_700_000_000_000,
        "updated_at": 1_700_000_001_000, "task_result": {"videos": list(videos)},
    }


VIDEO = {"id": "vid-9", "session_id": "sess-1", "url": "https://cdn.example/out.mp4",
         "watermark_url": "https://cdn.example/out-wm.mp4", "duration": "5.0"}

ADD_PROMPT = "Using the context of <<<video_1>>>, seamlessly add the hat from <<<image_1>>>"


def png_bytes(w: int = 400, h: int = 400, mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, (w, h), (200, 40, 40) if mode == "RGB" else (200, 40, 40, 128)).save(
        buffer, "PNG"
    )
    return buffer.getvalue()


def started(kling: Kling, client: ke.Client) -> ke.InitResult:
    kling.on("POST", f"{API}/init-selection", ok(INIT))
    return client.init_selection(video_url="https://cdn.example/clip.mp4")


# -- request shaping ----------------------------------------------------------------------


def test_init_by_url(kling, client):
    result = started(kling, client)
    (request,) = kling.requests
    assert request.method == "POST"
    assert str(request.url) == "https://api-singapore.klingai.com" + API + "/init-selection"
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.content) == {"video_url": "https://cdn.example/clip.mp4"}
    token = request.headers["Authorization"].removeprefix("Bearer ")
    assert jwt.decode(token, SK, algorithms=["HS256"])["iss"] == AK
    assert result == ke.InitResult(
        session_id="sess-1", fps=30.0, total_frames=120, width=1280, height=720,
        normalized_video_url="https://cdn.example/norm.mp4", original_duration=4000,
    )
    assert result.duration_s == 4.0


def test_init_by_video_id(kling, client):
    kling.on("POST", f"{API}/init-selection", ok(INIT))
    client.init_selection(video_id="vid-9")
    assert kling.bodies() == [{"video_id": "vid-9"}]


def test_add_selection_request_and_masks(kling, client):
    started(kling, client)
    kling.on("POST", f"{API}/add-selection", ok(selection(12)))
    result = client.add_selection("sess-1", 12, [(0.25, 0.5), {"x": 1, "y": 0}])
    assert kling.bodies(path=f"{API}/add-selection") == [
        {"session_id": "sess-1", "frame_index": 12,
         "points": [{"x": 0.25, "y": 0.5}, {"x": 1.0, "y": 0.0}]}
    ]
    assert result.frame_index == 12
    (mask,) = result.masks
    assert (mask.object_id, mask.size, mask.counts) == (1, (2, 2), "121")
    assert mask.png_base64 == "iVBORw0KGgo="
    assert mask.to_array().tolist() == [[0, 1], [1, 0]]
    assert mask.to_array().dtype == np.uint8


def test_delete_selection_request(kling, client):
    started(kling, client)
    kling.on("POST", f"{API}/add-selection", ok(selection(3)))
    kling.on("POST", f"{API}/delete-selection", ok(selection(3, items=())))
    client.add_selection("sess-1", 3, [(0.5, 0.5), (0.1, 0.9)])
    result = client.delete_selection("sess-1", 3, [(0.1, 0.9)])
    assert kling.bodies(path=f"{API}/delete-selection") == [
        {"session_id": "sess-1", "frame_index": 3, "points": [{"x": 0.1, "y": 0.9}]}
    ]
    assert result.masks == ()
    assert client.sessions["sess-1"].points == {3: [(0.5, 0.5)]}


def test_clear_and_preview_requests(kling, client):
    kling.on("POST", f"{API}/clear-selection", ok({"status": 0}))
    kling.on("POST", f"{API}/preview-selection", ok({"status": 0, "res": {
        "video": "https://cdn.example/pv.mp4", "video_cover": "https://cdn.example/pv.jpg",
        "tracking_output": "https://cdn.example/track.bin"}}))
    assert client.clear_selection("sess-1") == ke.Cost()  # no deduction reported
    preview = client.preview_selection("sess-1")
    assert kling.calls() == [("POST", f"{API}/clear-selection"),
                             ("POST", f"{API}/preview-selection")]
    assert kling.bodies() == [{"session_id": "sess-1"}, {"session_id": "sess-1"}]
    assert preview == ke.PreviewResult(
        video_url="https://cdn.example/pv.mp4", cover_url="https://cdn.example/pv.jpg",
        tracking_output_url="https://cdn.example/track.bin",
    )


def test_create_task_full_body(kling, client, tmp_path):
    started(kling, client)
    kling.on("POST", API, ok(task(ext="my-ext-1")))
    path = tmp_path / "hat.png"
    path.write_bytes(png_bytes())
    result = client.create_task(
        session_id="sess-1", edit_mode="addition",
        prompt="Using <<<video_1>>>, add the hat from <<<image_1>>> and <<<image_2>>>",
        images=[path, "https://img.example/scarf.jpg"],
        negative_prompt="blurry", mode="pro", watermark=True,
        callback_url="https://hooks.example/kling", external_task_id="my-ext-1",
        model_name="kling-v1-6",
    )
    (body,) = kling.bodies(path=API)
    assert body == {
        "session_id": "sess-1", "edit_mode": "addition",
        "prompt": "Using <<<video_1>>>, add the hat from <<<image_1>>> and <<<image_2>>>",
        "image_list": [
            {"image": base64.b64encode(png_bytes()).decode()},
            {"image": "https://img.example/scarf.jpg"},
        ],
        "negative_prompt": "blurry", "mode": "pro", "duration": "5",
        "watermark_info": {"enabled": True}, "callback_url": "https://hooks.example/kling",
        "external_task_id": "my-ext-1", "model_name": "kling-v1-6",
    }
    assert result.task_id == "task-1" and result.status == "submitted"
    assert result.external_task_id == "my-ext-1"


@pytest.mark.parametrize(
    "image", [png_bytes(), Image.new("RGB", (400, 400)), Image.new("RGBA", (400, 400))],
    ids=["bytes", "pil-rgb", "pil-rgba"],
)
def test_create_task_images_are_raw_base64(kling, client, image):
    kling.on("POST", API, ok(task()))
    client.create_task(session_id="s", edit_mode="swap", images=[image], duration="5",
                       prompt="swap the hat from <<<image_1>>> for the cap from <<<video_1>>>")
    (body,) = kling.bodies()
    (item,) = body["image_list"]
    assert not item["image"].startswith("data:")
    decoded = Image.open(io.BytesIO(base64.b64decode(item["image"])))
    assert decoded.format in ("JPEG", "PNG") and decoded.size == (400, 400)


def test_create_task_minimal_body_always_has_an_external_id(kling, client):
    kling.on("POST", API, ok(task()))
    for _ in range(2):
        client.create_task(session_id="sess-x", edit_mode="removal", duration="10",
                           prompt="Delete the cup from <<<video_1>>>")
    first, second = kling.bodies()
    assert set(first) == {"session_id", "edit_mode", "prompt", "mode", "duration",
                          "external_task_id"}
    assert first["duration"] == "10"
    assert first["mode"] == "std"
    for body in (first, second):
        assert re.fullmatch(r"ke-[0-9a-f]{32}", body["external_task_id"])
    assert first["external_task_id"] != second["external_task_id"]


def test_duration_follows_the_session(kling, client):
    kling.on("POST", f"{API}/init-selection", ok({**INIT, "total_frame": 270}))
    client.init_selection(video_id="v")
    kling.on("POST", f"{API}/add-selection", ok(selection(0)))
    client.add_selection("sess-1", 0, [(0.5, 0.5)])
    kling.on("POST", API, ok(task()))
    client.create_task(session_id="sess-1", edit_mode="removal", prompt="Delete <<<video_1>>>")
    assert kling.bodies(path=API)[0]["duration"] == "10"


def test_a_session_unknown_to_the_client_needs_a_duration_and_nothing_is_sent(kling, client):
    """Kling applies "5" to a body without duration, cutting a 7-10 s input: never send one."""
    kling.on("POST", API, ok(task()))
    with pytest.raises(ke.ValidationError) as exc:
        client.create_task(session_id="made-elsewhere", edit_mode="removal",
                           prompt="Delete the cup from <<<video_1>>>")
    for words in ("made-elsewhere", "'5'", "'10'", "would cut a 7-10 s clip"):
        assert words in str(exc.value)
    assert kling.requests == []


@pytest.mark.parametrize(
    ("frames", "fps", "original", "duration_s", "expected"),
    [
        (300, 30.0, 1000, 10.0, "10"),  # the docs' own example: 1000 is not 10 s in ms
        (300, 30.0, 10000, 10.0, "10"),  # milliseconds
        (300, 30.0, 10, 10.0, "10"),  # seconds
        (120, 24.0, 5000, 5.0, "5"),
        (150, 30.0, None, 5.0, "5"),  # left out: not needed
    ],
)
def test_the_input_length_is_frames_over_fps_whatever_original_duration_says(
    kling, client, caplog, frames, fps, original, duration_s, expected
):
    data = {**INIT, "total_frame": frames, "fps": fps, "original_duration": original}
    kling.on("POST", f"{API}/init-selection", ok(data))
    with caplog.at_level("DEBUG", logger="kling_elements"):
        init = client.init_selection(video_id="v")
    assert init.duration_s == duration_s
    assert client.sessions["sess-1"].duration_s == duration_s
    noted = "original_duration" in caplog.text
    assert noted == (original == 1000)  # a note on disagreement only, never an error
    kling.on("POST", f"{API}/add-selection", ok(selection(0)))
    client.add_selection("sess-1", 0, [(0.5, 0.5)])
    kling.on("POST", API, ok(task()))
    client.create_task(session_id="sess-1", edit_mode="removal", prompt="Delete <<<video_1>>>")
    assert kling.bodies(path=API)[0]["duration"] == expected


@pytest.mark.parametrize("drop", [("width", "height"), ("width",), ()])
def test_an_init_answer_without_width_or_height_is_accepted(kling, client, drop):
    """The docs call width and height "currently unused": their absence is no error."""
    data = {k: v for k, v in INIT.items() if k not in drop}
    if not drop:
        data = {**data, "width": True, "height": "720"}  # present but unusable
    kling.on("POST", f"{API}/init-selection", ok(data))
    init = client.init_selection(video_id="v")
    assert (init.session_id, init.total_frames, init.duration_s) == ("sess-1", 120, 4.0)
    assert init.frame_size is None
    kling.on("POST", f"{API}/add-selection", ok(selection(0)))
    assert client.add_selection("sess-1", 0, [(0.5, 0.5)]).masks[0].to_array().shape == (2, 2)


def test_a_prompt_without_video_1_is_sent_with_a_warning(kling, client, caplog):
    """The placeholder is Kling's advice, not a documented requirement (no 1201)."""
    kling.on("POST", API, ok(task()))
    with caplog.at_level("WARNING", logger="kling_elements"):
        client.create_task(session_id="s", edit_mode="removal", prompt="Delete the cup",
                           duration="5")
    assert kling.bodies(path=API)[0]["prompt"] == "Delete the cup"
    assert "<<<video_1>>>" in caplog.text


def test_get_task_path_and_result(kling, client):
    kling.on("GET", f"{API}/my-ext-1", ok(task(status="succeed", videos=[VIDEO])))
    result = client.get_task("my-ext-1")
    assert kling.calls() == [("GET", f"{API}/my-ext-1")]
    assert kling.requests[0].content == b""
    assert result.succeeded and result.done
    assert result.videos == (ke.TaskVideo(
        id="vid-9", url="https://cdn.example/out.mp4",
        watermark_url="https://cdn.example/out-wm.mp4", duration="5.0", session_id="sess-1",
    ),)
    assert (result.created_at, result.updated_at) == (1_700_000_000_000, 1_700_000_001_000)


def test_list_tasks_query_params(kling, client):
    kling.on("GET", API, ok([task("a"), task("b", status="failed", msg="policy")]))
    tasks = client.list_tasks()
    client.list_tasks(page=7, page_size=500)
    assert [dict(r.url.params) for r in kling.requests] == [
        {"pageNum": "1", "pageSize": "30"}, {"pageNum": "7", "pageSize": "500"}
    ]
    assert [(t.task_id, t.status, t.status_msg) for t in tasks] == [
        ("a", "submitted", ""), ("b", "failed", "policy")
    ]


@pytest.mark.parametrize(
    ("base_url", "host"),
    [("https://api-beijing.klingai.com", "api-beijing.klingai.com"),
     ("https://api-beijing.klingai.com/", "api-beijing.klingai.com"),
     ("http://127.0.0.1:8123/", "127.0.0.1")],
)
def test_base_url(kling, clock, base_url, host):
    client = make_client(kling, clock, base_url=base_url)
    kling.on("GET", f"{API}/t", ok(task()))
    client.get_task("t")
    assert kling.requests[0].url.host == host
    assert kling.requests[0].url.path == f"{API}/t"
    assert client.base_url == base_url.rstrip("/")


def test_unknown_extra_fields_are_ignored(kling, client):
    extras = {"final_unit_deduction": "1.5",
              "final_balance_deduction": {"quota": 3, "list_price": 4}}
    data = {**task(status="succeed", videos=[{**VIDEO, "cover_url": "x", "fps": 30}]),
            "watermark_info": {"enabled": False}, "brand_new_field": [1, 2, 3]}
    data["task_info"]["parent_video"] = {"id": "p"}
    kling.on("GET", f"{API}/t", ok(data, **extras))
    kling.on("POST", f"{API}/init-selection", ok({**INIT, "codec": "h264", "extra": None}))
    assert client.get_task("t").videos[0].url == "https://cdn.example/out.mp4"
    assert client.init_selection(video_id="v").session_id == "sess-1"


# -- rejections and malformed answers ------------------------------------------------------


def test_init_rejection_status_raises(kling, client):
    kling.on("POST", f"{API}/init-selection", ok({**INIT, "status": 4}))
    with pytest.raises(ke.RejectedError) as exc:
        client.init_selection(video_url="https://cdn.example/clip.mp4")
    assert exc.value.status == 4 and "4" in str(exc.value)
    assert client.sessions == {}
    assert len(kling.requests) == 1


def test_add_rejection_status_raises_and_records_nothing(kling, client):
    started(kling, client)
    kling.on("POST", f"{API}/add-selection", ok(selection(5, status=2)))
    with pytest.raises(ke.RejectedError) as exc:
        client.add_selection("sess-1", 5, [(0.5, 0.5)])
    assert exc.value.status == 2
    assert client.sessions["sess-1"].frames() == []
    with pytest.raises(ke.ValidationError):
        client.delete_selection("sess-1", 5, [(0.5, 0.5)])
    assert len(kling.requests) == 2


@pytest.mark.parametrize(
    ("method", "path", "data", "call"),
    [
        ("POST", "/init-selection", {k: v for k, v in INIT.items() if k != "session_id"},
         lambda c: c.init_selection(video_id="v")),
        ("POST", "/init-selection", {**INIT, "fps": "30"},
         lambda c: c.init_selection(video_id="v")),
        ("POST", "/init-selection", {**INIT, "total_frame": 120.5},
         lambda c: c.init_selection(video_id="v")),
        ("POST", "/init-selection", None, lambda c: c.init_selection(video_id="v")),
        ("POST", "/init-selection", [INIT], lambda c: c.init_selection(video_id="v")),
        ("POST", "/add-selection", {"status": 0},
         lambda c: c.add_selection("s", 1, [(0.5, 0.5)])),
        ("POST", "/add-selection", {"status": 0, "res": {"rle_mask_list": []}},
         lambda c: c.add_selection("s", 1, [(0.5, 0.5)])),
        ("POST", "/add-selection",
         selection(1, [{**MASK_ITEM, "rle_mask": {"size": [2], "counts": "4"}}]),
         lambda c: c.add_selection("s", 1, [(0.5, 0.5)])),
        ("POST", "/add-selection",
         selection(1, [{**MASK_ITEM, "rle_mask": {"size": [2, 2], "counts": 4}}]),
         lambda c: c.add_selection("s", 1, [(0.5, 0.5)])),
        ("POST", "/add-selection", selection(1, [{**MASK_ITEM, "object_id": "1"}]),
         lambda c: c.add_selection("s", 1, [(0.5, 0.5)])),
        ("POST", "/preview-selection", {"status": 0, "res": {"video_cover": "x"}},
         lambda c: c.preview_selection("s")),
        ("GET", "/t", {k: v for k, v in task().items() if k != "task_status"},
         lambda c: c.get_task("t")),
        ("GET", "/t", {k: v for k, v in task().items() if k != "task_id"},
         lambda c: c.get_task("t")),
        ("GET", "/t", {**task(), "task_status": 3}, lambda c: c.get_task("t")),
        ("GET", "/t", {**task(), "task_result": {"videos": "none"}},
         lambda c: c.get_task("t")),
        ("GET", "/t", task(videos=[{"id": "v"}]), lambda c: c.get_task("t")),
        ("GET", "/t", {**task(), "created_at": "yesterday"}, lambda c: c.get_task("t")),
        ("GET", "", {"tasks": []}, lambda c: c.list_tasks()),
        ("GET", "", [{"task_id": "a"}], lambda c: c.list_tasks()),
    ],
)
def test_missing_or_wrong_typed_fields_raise_response_format_error(
    kling, client, method, path, data, call
):
    kling.on(method, API + path, ok(data))
    with pytest.raises(ke.ResponseFormatError):
        call(client)
    assert len(kling.requests) == 1


@pytest.mark.parametrize(
    "reply",
    [
        raw(200, b"<html>captive portal</html>"),
        raw(200, b""),
        raw(200, b"[1, 2]", "application/json"),
        raw(200, b'{"code": "0", "data": {}}', "application/json"),
        raw(200, b'{"message": "no code"}', "application/json"),
        raw(404, b"<html>Not Found</html>"),
    ],
    ids=["html", "empty", "array", "string-code", "no-code", "html-404"],
)
def test_answers_without_the_envelope_raise_response_format_error(kling, client, clock, reply):
    kling.on("GET", f"{API}/t", reply)
    with pytest.raises(ke.ResponseFormatError) as exc:
        client.get_task("t")
    assert "base URL" in str(exc.value)
    assert len(kling.requests) == 1 and clock.sleeps == []


def test_oversized_answer_is_refused(kling, client):
    kling.on("GET", f"{API}/t", raw(200, b" " * (16 * 1024 * 1024 + 1), "application/json"))
    with pytest.raises(ke.ResponseFormatError, match="byte limit"):
        client.get_task("t")


@pytest.mark.parametrize(
    "call", [lambda c: c.clear_selection("sess-1"), lambda c: c.preview_selection("sess-1")]
)
def test_rejection_status_on_clear_and_preview(kling, client, call):
    kling.on("POST", f"{API}/clear-selection", ok({"status": 7}))
    kling.on("POST", f"{API}/preview-selection", ok({"status": 7, "res": {"video": "u"}}))
    with pytest.raises(ke.RejectedError) as exc:
        call(client)
    assert exc.value.status == 7


# -- retry classification -----------------------------------------------------------------

RETRYABLE = [1302, 1303, 5000, 5001, 5002]
FATAL = {
    1000: ke.AuthError, 1001: ke.AuthError, 1002: ke.AuthError,
    1100: ke.AccountError, 1101: ke.AccountError, 1102: ke.AccountError,
    1103: ke.PermissionDeniedError, 1200: ke.InvalidRequestError,
    1201: ke.InvalidRequestError, 1202: ke.InvalidRequestError, 1203: ke.NotFoundError,
    1300: ke.PolicyError, 1301: ke.PolicyError, 1304: ke.PermissionDeniedError,
}


def expected_waits(code: int, n: int) -> list[float]:
    """The backoffs, never under the code's advised minimum (1303: 1 s, from the docs)."""
    return [max(wait, 1.0 if code == 1303 else 0.0) for wait in expected_backoffs(n)]


@pytest.mark.parametrize("code", RETRYABLE)
def test_retryable_codes_are_retried_then_raised(kling, client, clock, code):
    kling.on("GET", f"{API}/t", err(code))
    with pytest.raises((ke.RateLimitError, ke.ServerError)) as exc:
        client.get_task("t")
    assert exc.value.code == code
    assert len(kling.requests) == 4  # max_retries=3
    assert clock.sleeps == expected_waits(code, 3)


@pytest.mark.parametrize("code", RETRYABLE)
def test_retryable_codes_recover(kling, client, clock, code):
    kling.on("GET", f"{API}/t", err(code), err(code), ok(task()))
    assert client.get_task("t").task_id == "task-1"
    assert len(kling.requests) == 3
    assert clock.sleeps == expected_waits(code, 2)


def test_1303_waits_at_least_one_second_before_each_retry(kling, clock):
    """The docs advise backing off at least 1 s on 1303; the first backoffs are shorter."""
    client = make_client(kling, clock, max_retries=0)
    assert backoff(0, random.Random(SEED)) < 1.0
    kling.on("POST", API, err(1303), ok(task()))
    body = client.build_task_body(**CREATE)
    client.submit_task(body, slot_wait_s=60)
    kling.on("GET", f"{API}/t", err(1303), ok(task()))
    make_client(kling, clock, max_retries=1).get_task("t")
    kling.on("GET", f"{API}/t", err(1303, headers={"retry-after-ms": "200"}), ok(task()))
    make_client(kling, clock, max_retries=1).get_task("t")
    assert len(clock.sleeps) == 3 and min(clock.sleeps) >= 1.0


@pytest.mark.parametrize(
    "kind", [httpx.ConnectError, httpx.ReadTimeout, httpx.ConnectTimeout,
             httpx.RemoteProtocolError, httpx.ReadError]
)
def test_transport_errors_are_retried(kling, client, clock, kind):
    kling.on("GET", f"{API}/t", drop(kind))
    with pytest.raises(ke.ConnectionFailed) as exc:
        client.get_task("t")
    assert len(kling.requests) == 4
    assert clock.sleeps == expected_backoffs(3)
    assert "api-singapore.klingai.com" in str(exc.value)
    kling.on("GET", f"{API}/t", drop(kind), ok(task()))
    assert client.get_task("t").task_id == "task-1"


@pytest.mark.parametrize(("code", "kind"), sorted(FATAL.items()))
def test_fatal_codes_raise_at_once(kling, client, clock, code, kind):
    kling.on("GET", f"{API}/t", err(code, message="kling says no"))
    with pytest.raises(kind) as exc:
        client.get_task("t")
    assert type(exc.value) is kind
    assert exc.value.code == code and exc.value.request_id == f"req-{code}"
    assert "kling says no" in str(exc.value)
    assert len(kling.requests) == 1 and clock.sleeps == []


def test_429_with_1102_is_not_retried(kling, client, clock):
    kling.on("POST", API, err(1102, status=429, message="resource pack exhausted"))
    with pytest.raises(ke.AccountError) as exc:
        client.create_task(**CREATE)
    assert exc.value.http_status == 429
    assert kling.calls() == [("POST", API)] and clock.sleeps == []


def test_retry_after_is_honoured(kling, client, clock):
    kling.on("GET", f"{API}/t", err(1302, headers={"Retry-After": "2"}), ok(task()))
    client.get_task("t")
    assert clock.sleeps == [2.0]


def test_retry_after_beyond_the_cap_raises_at_once(kling, client, clock):
    kling.on("GET", f"{API}/t", err(1303, headers={"Retry-After": "600"}))
    with pytest.raises(ke.RateLimitError):
        client.get_task("t")
    assert len(kling.requests) == 1 and clock.sleeps == []


def test_html_502_is_retried_then_raises_server_error(kling, client, clock):
    kling.on("GET", f"{API}/t", raw(502, b"<html><body>502 Bad Gateway</body></html>"))
    with pytest.raises(ke.ServerError) as exc:
        client.get_task("t")
    assert exc.value.http_status == 502 and exc.value.code is None
    assert len(kling.requests) == 4 and len(clock.sleeps) == 3


def test_max_retries_zero_sends_once(kling, clock):
    client = make_client(kling, clock, max_retries=0)
    kling.on("GET", f"{API}/t", err(5001))
    with pytest.raises(ke.ServerError):
        client.get_task("t")
    assert len(kling.requests) == 1 and clock.sleeps == []


# -- never pay twice ----------------------------------------------------------------------

CREATE = {"session_id": "s", "edit_mode": "removal", "prompt": "Delete <<<video_1>>>",
          "duration": "5"}


@pytest.mark.parametrize("kind", [httpx.RemoteProtocolError, httpx.ReadTimeout])
def test_lost_create_answer_is_recovered_by_lookup(kling, client, kind):
    kling.on("POST", API, drop(kind))
    kling.on("GET", f"{API}/ext-7", ok(task("task-found", "processing", ext="ext-7")))
    result = client.create_task(**CREATE, external_task_id="ext-7")
    assert kling.calls() == [("POST", API), ("GET", f"{API}/ext-7")]
    assert result.task_id == "task-found" and result.status == "processing"


def test_lookup_not_found_reposts_with_the_same_external_id(kling, client, clock):
    kling.on("POST", API, drop(), ok(task("task-2", ext="ext-8")))
    kling.on("GET", f"{API}/ext-8", err(1203))
    result = client.create_task(**CREATE, external_task_id="ext-8")
    assert kling.calls() == [("POST", API), ("GET", f"{API}/ext-8"), ("POST", API)]
    first, second = [r.content for r in kling.requests if r.method == "POST"]
    assert first == second
    assert json.loads(first)["external_task_id"] == "ext-8"
    assert result.task_id == "task-2"
    assert len(clock.sleeps) == 1


def test_generated_external_id_is_the_one_looked_up_and_reposted(kling, client):
    kling.on("POST", API, drop(), ok(task()))
    kling.on_prefix("GET", API + "/", err(1203))
    client.create_task(**CREATE)
    first, lookup, second = kling.requests
    generated = json.loads(first.content)["external_task_id"]
    assert generated.startswith("ke-")
    assert lookup.method == "GET" and lookup.url.path == f"{API}/{generated}"
    assert second.content == first.content


def test_server_error_on_create_looks_up_before_reposting(kling, client):
    kling.on("POST", API, err(5000), ok(task("task-3")))
    kling.on("GET", f"{API}/ext-9", err(1203))
    client.create_task(**CREATE, external_task_id="ext-9")
    assert kling.calls() == [("POST", API), ("GET", f"{API}/ext-9"), ("POST", API)]


def test_server_error_on_create_that_did_create_is_not_reposted(kling, client):
    kling.on("POST", API, raw(502, b"<html>bad gateway</html>"))
    kling.on("GET", f"{API}/ext-9", ok(task("task-made", ext="ext-9")))
    assert client.create_task(**CREATE, external_task_id="ext-9").task_id == "task-made"
    assert kling.calls() == [("POST", API), ("GET", f"{API}/ext-9")]


def test_last_lost_answer_is_still_looked_up(kling, clock):
    client = make_client(kling, clock, max_retries=0)
    kling.on("POST", API, drop(httpx.ReadTimeout))
    kling.on("GET", f"{API}/ext-5", ok(task("task-late", ext="ext-5")))
    assert client.create_task(**CREATE, external_task_id="ext-5").task_id == "task-late"
    assert kling.calls() == [("POST", API), ("GET", f"{API}/ext-5")]


def test_gives_up_after_max_retries_with_identical_posts(kling, client):
    kling.on("POST", API, drop())
    kling.on("GET", f"{API}/ext-6", err(1203))
    with pytest.raises(ke.ConnectionFailed):
        client.create_task(**CREATE, external_task_id="ext-6")
    assert kling.calls() == [("POST", API), ("GET", f"{API}/ext-6")] * 4
    assert len({r.content for r in kling.requests if r.method == "POST"}) == 1


def test_no_repost_when_the_lookup_itself_fails(kling, client):
    kling.on("POST", API, drop())
    kling.on("GET", f"{API}/ext-4", drop(httpx.ConnectError))
    with pytest.raises(ke.ConnectionFailed):
        client.create_task(**CREATE, external_task_id="ext-4")
    assert [m for m, _ in kling.calls()].count("POST") == 1


@pytest.mark.parametrize("ext", ["job?1", "job#1", "50%off", "a b"])
def test_external_ids_with_url_characters_are_looked_up_as_one_segment(kling, client, ext):
    kling.on("POST", API, drop())
    kling.on("GET", f"{API}/{ext}", ok(task("task-found", ext=ext)))
    assert client.create_task(**CREATE, external_task_id=ext).task_id == "task-found"
    lookup = kling.requests[1]
    assert lookup.url.path == f"{API}/{ext}" and lookup.url.query == b""
    assert [m for m, _ in kling.calls()].count("POST") == 1


def test_rate_limited_create_is_reposted_without_lookup(kling, client, clock):
    kling.on("POST", API, err(1303), ok(task()))
    client.create_task(**CREATE, external_task_id="ext-3")
    assert kling.calls() == [("POST", API), ("POST", API)]
    first, second = [r.content for r in kling.requests]
    assert first == second
    assert clock.sleeps == expected_waits(1303, 1)


def test_refused_create_is_not_reposted(kling, client):
    kling.on("POST", API, err(1201, message="prompt invalid"))
    with pytest.raises(ke.InvalidRequestError):
        client.create_task(**CREATE)
    assert kling.calls() == [("POST", API)]


def test_refused_repost_after_a_lost_answer_finds_the_late_task(kling, client):
    """A create that timed out may still arrive: its re-post is refused (the id is taken), and
    the lookup that follows finds the task the first POST made."""
    kling.on("POST", API, drop(httpx.ReadTimeout),
             err(1201, message="external_task_id 'ext-2' is already used"))
    kling.on("GET", f"{API}/ext-2", err(1203), ok(task("task-late", ext="ext-2")))
    assert client.create_task(**CREATE, external_task_id="ext-2").task_id == "task-late"
    assert kling.calls() == [("POST", API), ("GET", f"{API}/ext-2"), ("POST", API),
                             ("GET", f"{API}/ext-2")]


def test_refused_repost_with_no_task_behind_it_raises_the_refusal(kling, client):
    kling.on("POST", API, drop(), err(1102, message="resource pack used up"))
    kling.on("GET", f"{API}/ext-1", err(1203))
    with pytest.raises(ke.AccountError, match="resource pack"):
        client.create_task(**CREATE, external_task_id="ext-1")
    assert [m for m, _ in kling.calls()].count("POST") == 2


def test_busy_task_slots_are_waited_for_up_to_slot_wait(kling, client, clock):
    """1303 clears when a running task ends: with ``slot_wait_s`` the create keeps trying at
    the longest backoff; nothing is looked up (a refusal created nothing)."""
    kling.on("POST", API, *[err(1303)] * 9, ok(task("task-9", ext="ext-9")))
    body = client.build_task_body(**CREATE, external_task_id="ext-9")
    assert client.submit_task(body, slot_wait_s=60).task_id == "task-9"
    assert [m for m, _ in kling.calls()] == ["POST"] * 10
    assert sum(clock.sleeps) <= 60 and max(clock.sleeps) <= 8.0


def test_busy_task_slots_fail_after_slot_wait_and_at_once_without_it(kling, client, clock):
    kling.on("POST", API, err(1303))
    body = client.build_task_body(**CREATE, external_task_id="ext-8")
    with pytest.raises(ke.RateLimitError):
        client.submit_task(body)
    assert len(kling.requests) == client.max_retries + 1
    kling.requests.clear()
    clock.sleeps.clear()
    with pytest.raises(ke.RateLimitError):
        client.submit_task(body, slot_wait_s=30)
    assert sum(clock.sleeps) <= 30 + 8 * 3 and len(kling.requests) > client.max_retries + 1


def _cancel_on_pause(client, cancel, at: int) -> list[float]:
    """Set ``cancel`` from ``on_retry`` before pause number ``at`` (1-based); log the waits."""
    waits: list[float] = []

    def hook(error, wait):
        waits.append(wait)
        if len(waits) == at:
            cancel.set()

    client.on_retry = hook
    return waits


def test_cancel_set_before_the_call_sends_nothing(kling, client):
    cancel = threading.Event()
    cancel.set()
    body = client.build_task_body(**CREATE, external_task_id="ext-c0")
    with pytest.raises(ke.CreateCancelled) as caught:
        client.submit_task(body, slot_wait_s=600, cancel=cancel)
    assert kling.requests == []
    assert caught.value.may_exist is False and caught.value.external_task_id == "ext-c0"


@pytest.mark.parametrize("at", [1, 4, 6])
def test_cancel_during_the_slot_wait_stops_posting(kling, client, clock, at):
    """Cancelled in a retry of the first POST (1), in the slot wait after its retries (4), or
    in a retry of a later POST (6): no POST follows the cancel, and nothing was created."""
    kling.on("POST", API, err(1303))
    cancel = threading.Event()
    _cancel_on_pause(client, cancel, at)
    body = client.build_task_body(**CREATE, external_task_id="ext-c1")
    with pytest.raises(ke.CreateCancelled, match="nothing was charged") as caught:
        client.submit_task(body, slot_wait_s=600, cancel=cancel)
    assert caught.value.may_exist is False
    assert kling.calls() == [("POST", API)] * at
    assert len(clock.sleeps) == at


def test_cancel_from_another_thread_ends_a_long_slot_wait(kling):
    """With the default sleep, a wait between attempts is the cancel event's own wait."""
    client = ke.Client(AK, SK, transport=httpx.MockTransport(kling), max_retries=2)
    kling.on("POST", API, err(1303))
    cancel = threading.Event()
    body = client.build_task_body(**CREATE, external_task_id="ext-c2")
    posted_before_cancel: list[int] = []

    def cancel_now() -> None:
        cancel.set()
        posted_before_cancel.append(len(kling.calls()))

    timer = threading.Timer(1.5, cancel_now)
    timer.start()
    started = time.monotonic()
    with pytest.raises(ke.CreateCancelled):
        client.submit_task(body, slot_wait_s=600, cancel=cancel)
    elapsed = time.monotonic() - started
    timer.join()
    assert 1.4 < elapsed < 3.0  # uncancelled, it would keep trying for 600 s
    # 1303 waits at least 1 s between POSTs: some were sent before the cancel, none after
    assert posted_before_cancel[0] >= 1
    assert kling.calls() == [("POST", API)] * posted_before_cancel[0]


def test_cancel_after_a_lost_answer_says_the_task_may_exist(kling, client):
    kling.on("POST", API, drop(httpx.ReadTimeout))
    kling.on("GET", f"{API}/ext-c3", err(1203))
    cancel = threading.Event()
    _cancel_on_pause(client, cancel, 1)
    body = client.build_task_body(**CREATE, external_task_id="ext-c3")
    with pytest.raises(ke.CreateCancelled, match="may still appear") as caught:
        client.submit_task(body, slot_wait_s=600, cancel=cancel)
    assert caught.value.may_exist is True
    assert kling.calls() == [("POST", API), ("GET", f"{API}/ext-c3")]  # no re-post


def test_a_post_in_flight_when_cancel_is_set_still_returns_its_task(kling, client):
    cancel = threading.Event()

    def created(request):
        cancel.set()
        return ok(task("task-c4", ext="ext-c4"))(request)

    kling.on("POST", API, created)
    body = client.build_task_body(**CREATE, external_task_id="ext-c4")
    assert client.submit_task(body, slot_wait_s=600, cancel=cancel).task_id == "task-c4"


# -- selection calls are never applied twice -----------------------------------------------

SESS2 = {**INIT, "session_id": "sess-2"}


def _points(body: dict) -> list[tuple[float, float]]:
    return [(p["x"], p["y"]) for p in body["points"]]


@pytest.mark.parametrize("lost", [drop(), drop(httpx.ReadTimeout), err(5000), err(5002)])
def test_lost_add_answer_moves_the_points_to_a_new_session_then_adds(kling, client, clock,
                                                                      lost):
    started(kling, client)
    kling.on("POST", f"{API}/add-selection", ok(selection(4)))
    client.add_selection("sess-1", 4, [(0.1 + 0.2, 0.5)])
    kling.requests.clear()
    kling.on("POST", f"{API}/init-selection", ok(SESS2))
    kling.on("POST", f"{API}/add-selection", lost, ok(selection(4)), ok(selection(9)))
    result = client.add_selection("sess-1", 9, [(0.25, 0.75)])
    assert result.frame_index == 9
    assert kling.calls() == [("POST", f"{API}/add-selection"), ("POST", f"{API}/init-selection"),
                             ("POST", f"{API}/add-selection"), ("POST", f"{API}/add-selection")]
    lost_add, replay, again = kling.bodies(path=f"{API}/add-selection")
    assert lost_add["session_id"] == "sess-1"
    assert kling.bodies(path=f"{API}/init-selection") == [
        {"video_url": "https://cdn.example/clip.mp4"}]
    assert (replay["session_id"], replay["frame_index"]) == ("sess-2", 4)
    assert _points(replay) == [(0.1 + 0.2, 0.5)]  # bit-identical, never the sum rounded
    assert (again["session_id"], _points(again)) == ("sess-2", [(0.25, 0.75)])
    state = client.sessions["sess-1"]
    assert state is client.sessions["sess-2"] and state.session_id == "sess-2"
    assert state.points == {4: [(0.1 + 0.2, 0.5)], 9: [(0.25, 0.75)]}
    assert len(clock.sleeps) == 1


def test_lost_delete_answer_replays_the_point_on_a_new_session_and_deletes_it_there(
        kling, client):
    started(kling, client)
    kling.on("POST", f"{API}/add-selection", ok(selection(2)))
    client.add_selection("sess-1", 2, [(0.5, 0.5), (0.1, 0.9)])
    kling.requests.clear()
    kling.on("POST", f"{API}/init-selection", ok(SESS2))
    kling.on("POST", f"{API}/delete-selection", drop(), ok(selection(2)))
    client.delete_selection("sess-1", 2, [(0.1, 0.9)])
    (replay,) = kling.bodies(path=f"{API}/add-selection")
    assert (replay["session_id"], _points(replay)) == ("sess-2", [(0.5, 0.5), (0.1, 0.9)])
    lost, again = kling.bodies(path=f"{API}/delete-selection")
    assert (lost["session_id"], again["session_id"]) == ("sess-1", "sess-2")
    assert client.sessions["sess-1"].points == {2: [(0.5, 0.5)]}


def test_lost_add_answer_without_the_session_state_is_not_replayed(kling, client, clock):
    kling.on("POST", f"{API}/add-selection", drop(httpx.ReadTimeout))
    with pytest.raises(ke.ConnectionFailed, match="may or may not have taken effect"):
        client.add_selection("elsewhere", 0, [(0.5, 0.5)])
    assert kling.calls() == [("POST", f"{API}/add-selection")] and clock.sleeps == []


def test_a_restore_interrupted_again_starts_one_more_session(kling, client):
    started(kling, client)
    kling.on("POST", f"{API}/add-selection", ok(selection(0)))
    client.add_selection("sess-1", 0, [(0.5, 0.5)])
    kling.on("POST", f"{API}/init-selection", ok(SESS2), ok({**INIT, "session_id": "sess-3"}))
    kling.on("POST", f"{API}/add-selection", err(5001), drop(), ok(selection(0)),
             ok(selection(1)))
    client.add_selection("sess-1", 1, [(0.2, 0.2)])
    sessions = [b["session_id"] for b in kling.bodies(path=f"{API}/add-selection")]
    assert sessions == ["sess-1", "sess-1", "sess-2", "sess-3", "sess-3"]
    assert client.sessions["sess-1"].session_id == "sess-3"


def test_expired_session_is_restored_on_1203_and_a_second_1203_raises(kling, client):
    started(kling, client)
    kling.on("POST", f"{API}/add-selection", ok(selection(0)))
    client.add_selection("sess-1", 0, [(0.5, 0.5)])
    kling.on("POST", f"{API}/init-selection", ok(SESS2))
    kling.on("POST", f"{API}/add-selection", err(1203, message="session expired"),
             ok(selection(0)), ok(selection(3)))
    client.add_selection("sess-1", 3, [(0.4, 0.4)])
    assert client.sessions["sess-1"].points == {0: [(0.5, 0.5)], 3: [(0.4, 0.4)]}
    kling.on("POST", f"{API}/init-selection", ok({**INIT, "session_id": "sess-3"}))
    kling.on("POST", f"{API}/preview-selection", err(1203))
    with pytest.raises(ke.NotFoundError):
        client.preview_selection("sess-1")


def test_session_expired_by_the_local_clock_is_restored_before_sending(kling, client):
    started(kling, client)
    client.sessions["sess-1"].started_at -= 24 * 3600
    kling.on("POST", f"{API}/init-selection", ok(SESS2))
    kling.on("POST", f"{API}/add-selection", ok(selection(0)))
    client.add_selection("sess-1", 0, [(0.5, 0.5)])
    assert [b["session_id"] for b in kling.bodies(path=f"{API}/add-selection")] == ["sess-2"]


def test_clearing_an_expired_session_starts_an_empty_one(kling, client):
    started(kling, client)
    kling.on("POST", f"{API}/add-selection", ok(selection(0)))
    client.add_selection("sess-1", 0, [(0.5, 0.5)])
    kling.requests.clear()
    kling.on("POST", f"{API}/clear-selection", err(1203))
    kling.on("POST", f"{API}/init-selection", ok(SESS2))
    client.clear_selection("sess-1")
    assert kling.calls() == [("POST", f"{API}/clear-selection"),
                             ("POST", f"{API}/init-selection")]
    assert client.sessions["sess-1"].points == {}


@pytest.mark.parametrize("lost", [drop(), drop(httpx.ReadTimeout), err(5001)])
def test_a_clear_that_lost_its_answer_is_not_sent_again_but_a_new_empty_session_starts(
        kling, client, lost):
    """Sent again, a timed-out clear could still arrive after the next clicks and wipe them."""
    started(kling, client)
    kling.on("POST", f"{API}/add-selection", ok(selection(0)))
    client.add_selection("sess-1", 0, [(0.5, 0.5)])
    kling.requests.clear()
    kling.on("POST", f"{API}/clear-selection", lost, ok({"status": 0}))
    kling.on("POST", f"{API}/init-selection", ok(SESS2))
    client.clear_selection("sess-1")
    assert kling.calls() == [("POST", f"{API}/clear-selection"),
                             ("POST", f"{API}/init-selection")]
    assert client.sessions["sess-1"].session_id == "sess-2"
    assert client.sessions["sess-1"].points == {}


def test_a_clear_that_lost_its_answer_without_state_says_so(kling, client):
    kling.on("POST", f"{API}/clear-selection", drop())
    with pytest.raises(ke.ConnectionFailed, match="may or may not"):
        client.clear_selection("elsewhere")
    assert len(kling.requests) == 1


def test_create_on_a_restored_session_uses_the_new_id(kling, client):
    started(kling, client)
    kling.on("POST", f"{API}/init-selection", ok(SESS2))
    client.restore("sess-1")
    body = client.build_task_body(session_id="sess-1", edit_mode="addition", prompt=ADD_PROMPT,
                                  images=["https://img.example/hat.png"])
    assert body["session_id"] == "sess-2"


def test_restore_needs_the_video(client):
    client.sessions["bare"] = ke.SelectionState(session_id="bare")
    with pytest.raises(ValueError, match="video is not known"):
        client.restore("bare")


# -- validation before sending ------------------------------------------------------------

URL = "https://img.example/hat.png"
BASE_CREATE = {"session_id": "sess-1", "edit_mode": "addition", "prompt": ADD_PROMPT,
               "images": [URL]}
SWAP = "swap the hat from <<<image_1>>> for the cap from <<<video_1>>>"


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"edit_mode": "replace"}, "'replace'"),
        ({"images": []}, "got 0"),
        ({"images": [URL] * 3}, "got 3"),
        ({"edit_mode": "swap", "prompt": SWAP, "images": [URL, URL]}, "got 2"),
        ({"edit_mode": "removal", "prompt": "Delete <<<video_1>>>"}, "got 1"),
        ({"edit_mode": "swap", "prompt": SWAP}, "marked selection"),
        ({"edit_mode": "removal", "prompt": "Delete <<<video_1>>>", "images": []},
         "marked selection"),
        ({"prompt": ADD_PROMPT + "x" * 2500}, "2500"),
        ({"prompt": ADD_PROMPT + " and <<<image_2>>>"}, "<<<image_2>>>"),
        ({"prompt": ""}, "required"),
        ({"negative_prompt": "n" * 2501}, "2501"),
        ({"negative_prompt": "not <<<image_3>>>"}, "<<<image_3>>>"),
        ({"mode": "turbo"}, "'turbo'"),
        ({"duration": "10"}, "4.00 s"),
        ({"duration": "7"}, "'7'"),
        ({"images": [png_bytes(299, 400)]}, "299x400"),
        ({"images": [png_bytes(800, 300)]}, "2.67:1"),
        ({"images": [b"definitely not an image"]}, "not a readable image"),
        ({"images": ["data:image/png;base64,iVBORw0KGgo="]}, "data: URL"),
        ({"images": ["/no/such/hat.png"]}, "does not exist"),
        ({"callback_url": "ftp://hooks.example"}, "callback_url"),
        ({"session_id": ""}, "session_id"),
        ({"external_task_id": "a/b"}, "external_task_id"),
    ],
)
def test_invalid_create_sends_nothing(kling, client, changes, fragment):
    started(kling, client)
    with pytest.raises(ke.ValidationError) as exc:
        client.create_task(**{**BASE_CREATE, **changes})
    assert fragment in str(exc.value)
    assert len(kling.requests) == 1  # just the init


@pytest.mark.parametrize(
    ("frame", "points", "fragment"),
    [
        (-1, [(0.5, 0.5)], "-1"),
        (120, [(0.5, 0.5)], "119"),
        (1.5, [(0.5, 0.5)], "1.5"),
        (True, [(0.5, 0.5)], "True"),
        (1, [], "no points"),
        (1, [(math.nan, 0.5)], "nan"),
        (1, [(0.5, 1.5)], "1.5"),
        (1, [(0.5, -0.1)], "-0.1"),
        (1, [("0.5", 0.5)], "'0.5'"),
        (1, [(0.5, 0.5)] * 11, "11 points"),
    ],
)
@pytest.mark.parametrize("endpoint", ["add_selection", "delete_selection"])
def test_invalid_selection_sends_nothing(kling, client, endpoint, frame, points, fragment):
    started(kling, client)
    with pytest.raises(ke.ValidationError) as exc:
        getattr(client, endpoint)("sess-1", frame, points)
    assert fragment in str(exc.value)
    assert len(kling.requests) == 1


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.init_selection(),
        lambda c: c.init_selection(video_url="https://x/a.mp4", video_id="v"),
        lambda c: c.init_selection(video_url="/home/me/clip.mp4"),
        lambda c: c.get_task(""),
        lambda c: c.get_task("a/b"),
        lambda c: c.list_tasks(page=0),
        lambda c: c.list_tasks(page_size=501),
    ],
)
def test_other_invalid_calls_send_nothing(kling, client, call):
    with pytest.raises(ke.ValidationError):
        call(client)
    assert kling.requests == []


# -- exact points and local limits -----------------------------------------------------------

POINTS_JSON = re.compile(rb'"points":(\[[^\]]*\])')


def test_delete_sends_bit_identical_numbers(kling, client):
    started(kling, client)
    kling.on("POST", f"{API}/add-selection", ok(selection(9)))
    kling.on("POST", f"{API}/delete-selection", ok(selection(9, items=())))
    awkward = [(0.1 + 0.2, 1 / 3), (-0.0, 0.9999999999999999), (5e-324, 2 / 3)]
    client.add_selection("sess-1", 9, awkward)
    client.delete_selection("sess-1", 9, list(reversed(awkward)))
    add, delete = (POINTS_JSON.search(r.content).group(1) for r in kling.requests[1:])
    add_numbers = re.findall(rb"[-0-9.e]+", add)
    delete_numbers = re.findall(rb"[-0-9.e]+", delete)
    assert sorted(add_numbers) == sorted(delete_numbers)
    assert b"0.30000000000000004" in add and b"0.3333333333333333" in add
    assert b"-0.0" not in add and b"-0.0" not in delete
    assert [float(n) for n in add_numbers] == [c for p in awkward for c in p]
    assert client.sessions["sess-1"].frames() == []


def test_deleting_a_point_never_added_raises_before_sending(kling, client):
    started(kling, client)
    kling.on("POST", f"{API}/add-selection", ok(selection(9)))
    client.add_selection("sess-1", 9, [(0.1 + 0.2, 0.5)])
    for frame, point in ((9, (0.3, 0.5)), (9, (0.5, 0.1 + 0.2)), (10, (0.1 + 0.2, 0.5))):
        with pytest.raises(ke.ValidationError, match="was not added"):
            client.delete_selection("sess-1", frame, [point])
    assert len(kling.requests) == 2


def test_eleventh_frame_and_point_refused_locally_and_clear_resets(kling, client):
    started(kling, client)
    kling.on("POST", f"{API}/add-selection", ok(selection(0)))
    kling.on("POST", f"{API}/clear-selection", ok({"status": 0}))
    for frame in range(10):
        client.add_selection("sess-1", frame * 10, [(0.5, 0.5)])
    assert len(kling.requests) == 11
    with pytest.raises(ke.ValidationError, match="11th marked frame"):
        client.add_selection("sess-1", 101, [(0.5, 0.5)])
    client.add_selection("sess-1", 0, [(i / 10, 0.25) for i in range(9)])
    with pytest.raises(ke.ValidationError, match="exceed 10 per frame"):
        client.add_selection("sess-1", 0, [(0.99, 0.99)])
    assert len(kling.requests) == 12
    client.clear_selection("sess-1")
    assert client.sessions["sess-1"].frames() == []
    client.add_selection("sess-1", 101, [(0.5, 0.5)] * 10)
    assert len(kling.requests) == 14


# -- wait ---------------------------------------------------------------------------------


def test_wait_reports_each_status_change_once(kling, client, clock):
    kling.on("GET", f"{API}/task-1",
             *(ok(task(status=s)) for s in ("submitted", "submitted", "processing",
                                            "processing", "processing")),
             ok(task(status="succeed", videos=[VIDEO])))
    updates: list[str] = []
    result = client.wait("task-1", on_update=lambda t: updates.append(t.status))
    assert updates == ["submitted", "processing", "succeed"]
    assert result.succeeded and result.videos[0].url == "https://cdn.example/out.mp4"
    assert len(kling.requests) == 6
    assert clock.sleeps == [1.0, 3.0, 11.0, 45.0, 85.0]  # polls at 0, 1, 4, 15, 60, 145 s


def test_wait_raises_task_failed_with_the_reason(kling, client):
    kling.on("GET", f"{API}/task-1", ok(task(status="processing")),
             ok(task(status="failed", msg="content policy: violence")))
    updates: list[str] = []
    with pytest.raises(ke.TaskFailedError) as exc:
        client.wait("task-1", on_update=lambda t: updates.append(t.status))
    assert "content policy: violence" in str(exc.value)
    assert exc.value.task.status == "failed"
    assert updates == ["processing", "failed"]


def test_wait_times_out_exactly_at_the_deadline(kling, client, clock):
    kling.on("GET", f"{API}/task-1", ok(task(status="processing")))
    with pytest.raises(TimeoutError) as exc:
        client.wait("task-1", timeout=100)
    assert isinstance(exc.value, ke.TaskTimeoutError)
    assert exc.value.task.status == "processing"
    assert "task-1" in str(exc.value) and "processing" in str(exc.value)
    assert clock.now == pytest.approx(100)
    assert sum(clock.sleeps) == pytest.approx(100)
    assert clock.sleeps == [1.0, 3.0, 11.0, 45.0, 40.0]  # the last one stops at the deadline


def test_wait_with_poll_interval_never_oversleeps(kling, client, clock):
    kling.on("GET", f"{API}/task-1", ok(task(status="submitted")))
    with pytest.raises(ke.TaskTimeoutError):
        client.wait("task-1", timeout=20, poll_interval=7)
    assert clock.sleeps == [7, 7, 6]
    assert len(kling.requests) == 4  # at 0, 7, 14 and 20 s


def test_transient_poll_errors_do_not_end_the_wait(kling, clock):
    client = make_client(kling, clock, max_retries=0)
    kling.on("GET", f"{API}/task-1", drop(httpx.ConnectError), err(5001), err(1302),
             raw(502, b"<html>bad gateway</html>"), drop(httpx.ReadTimeout),
             ok(task(status="succeed")))
    assert client.wait("task-1").succeeded
    assert len(kling.requests) == 6


def test_fatal_poll_error_ends_the_wait(kling, client, clock):
    kling.on("GET", f"{API}/task-1", err(1203))
    with pytest.raises(ke.NotFoundError):
        client.wait("task-1")
    assert len(kling.requests) == 1


# -- from_env -----------------------------------------------------------------------------


def env_client(kling, environ, **kwargs) -> ke.Client:
    return ke.Client.from_env(environ, transport=httpx.MockTransport(kling), **kwargs)


def test_from_env_api_key_wins(kling):
    kling.on("GET", f"{API}/t", ok(task()))
    env_client(kling, {"KLINGAI_API_KEY": "the-api-key", "KLINGAI_ACCESS_KEY": AK,
                       "KLINGAI_SECRET_KEY": SK}).get_task("t")
    assert kling.requests[0].headers["Authorization"] == "Bearer the-api-key"
    assert kling.requests[0].url.host == "api-singapore.klingai.com"


def test_from_env_access_and_secret_key_sign_a_jwt(kling):
    kling.on("GET", f"{API}/t", ok(task()))
    env_client(kling, {"KLINGAI_API_KEY": "", "KLINGAI_ACCESS_KEY": AK,
                       "KLINGAI_SECRET_KEY": SK}).get_task("t")
    token = kling.requests[0].headers["Authorization"].removeprefix("Bearer ")
    assert jwt.decode(token, SK, algorithms=["HS256"])["iss"] == AK


def test_from_env_blank_api_key_falls_back_to_jwt(kling):
    kling.on("GET", f"{API}/t", ok(task()))
    env_client(kling, {"KLINGAI_API_KEY": "\n", "KLINGAI_ACCESS_KEY": AK,
                       "KLINGAI_SECRET_KEY": SK}).get_task("t")
    token = kling.requests[0].headers["Authorization"].removeprefix("Bearer ")
    assert jwt.decode(token, SK, algorithms=["HS256"])["iss"] == AK


def test_from_env_base_url(kling):
    kling.on("GET", f"{API}/t", ok(task()))
    environ = {"KLINGAI_API_KEY": "k", "KLINGAI_BASE_URL": "https://api-beijing.klingai.com/"}
    client = env_client(kling, environ)
    client.get_task("t")
    assert client.base_url == "https://api-beijing.klingai.com"
    assert kling.requests[0].url.host == "api-beijing.klingai.com"
    explicit = env_client(kling, environ, base_url="https://api-singapore.klingai.com")
    assert explicit.base_url == "https://api-singapore.klingai.com"


@pytest.mark.parametrize(
    "environ", [{}, {"KLINGAI_ACCESS_KEY": AK}, {"KLINGAI_SECRET_KEY": SK},
                {"KLINGAI_API_KEY": "", "KLINGAI_BASE_URL": "https://x"}],
)
def test_from_env_without_credentials(environ):
    with pytest.raises(ValueError, match="KLINGAI_API_KEY") as exc:
        ke.Client.from_env(environ)
    assert SK not in str(exc.value)


def test_from_env_reads_the_process_environment(kling, monkeypatch):
    monkeypatch.setenv("KLINGAI_API_KEY", "process-key")
    monkeypatch.delenv("KLINGAI_BASE_URL", raising=False)
    kling.on("GET", f"{API}/t", ok(task()))
    ke.Client.from_env(transport=httpx.MockTransport(kling)).get_task("t")
    assert kling.requests[0].headers["Authorization"] == "Bearer process-key"


# -- downloads go through the file client, without credentials --------------------------------


def test_download_through_the_client_sends_no_credentials(kling, client, tmp_path):
    payload = bytes(range(256)) * 40
    kling.routes[("GET", "/out.mp4")] = [
        lambda r: httpx.Response(200, content=payload,
                                 headers={"Content-Length": str(len(payload))})
    ]
    path = client.download("https://cdn.example/out.mp4", tmp_path / "out.mp4")
    assert path.read_bytes() == payload
    assert "authorization" not in kling.requests[0].headers


# -- before_request: a caller's veto, checked before anything is sent ---------------------


class Refused(Exception):
    pass


def test_before_request_sees_every_request_and_a_refusal_sends_nothing(kling, clock, tmp_path):
    seen: list[str] = []
    allow = {"on": True}

    def gate(request: httpx.Request) -> None:
        seen.append(f"{request.method} {request.url.path}")
        if not allow["on"]:
            raise Refused(request.url.host)

    kling.on("GET", f"{API}/t", ok(task()))
    kling.routes[("GET", "/out.mp4")] = [lambda r: httpx.Response(200, content=b"x" * 10)]
    client = make_client(kling, clock, before_request=gate)
    client.get_task("t")
    client.download("https://cdn.example/out.mp4", tmp_path / "a.mp4")
    assert seen == [f"GET {API}/t", "GET /out.mp4"]
    sent = len(kling.requests)

    allow["on"] = False
    with pytest.raises(Refused):
        client.get_task("t")
    with pytest.raises(Refused):
        client.download("https://cdn.example/out.mp4", tmp_path / "b.mp4")
    with pytest.raises(Refused):
        client.http.post("/sandbox/uploads", content=b"clip")
    assert len(kling.requests) == sent  # nothing left the client
    assert clock.sleeps == []  # a refusal is not retried
    assert not (tmp_path / "b.mp4").exists()


# -- mask size orientation ------------------------------------------------------------------


def l_shape(height: int, width: int) -> np.ndarray:
    """An L off-centre (no symmetry, not square): any transposition or reshuffle shows."""
    mask = np.zeros((height, width), np.uint8)
    top, left = height // 5, width // 7
    mask[top:top + height // 2, left:left + width // 10] = 1  # the upright
    mask[top + height // 2 - height // 12:top + height // 2, left:left + width // 3] = 1
    return mask


@pytest.mark.parametrize("orientation", ["portrait", "landscape"])
@pytest.mark.parametrize("order", ["[h, w]", "[w, h]"])
def test_masks_decode_with_the_session_frame_whatever_the_order_of_size(
    kling, client, orientation, order
):
    """The docs' example gives size [w, h] beside its video, and Kling's sample decoder
    ignores size and uses the video's (height, width): the counts run down the columns of
    the real frame, so a transposed size must not be used to decode them."""
    width, height = (720, 1280) if orientation == "portrait" else (1280, 720)
    truth = l_shape(height, width)
    counts = ke.rle.encode(truth)["counts"]
    size = [height, width] if order == "[h, w]" else [width, height]
    kling.on("POST", f"{API}/init-selection", ok({**INIT, "width": width, "height": height}))
    client.init_selection(video_url="https://cdn.example/clip.mp4")
    item = {"object_id": 0, "rle_mask": {"size": size, "counts": counts}}
    kling.on("POST", f"{API}/add-selection", ok(selection(4, items=[item])))
    result = client.add_selection("sess-1", 4, [(0.2, 0.4)])
    (mask,) = result.masks
    assert mask.size == (height, width)
    assert np.array_equal(mask.to_array(), truth)
    # what is remembered (and drawn by the add-on after a reload) is the fitted size
    (kept,) = client.sessions["sess-1"].masks[4]
    assert kept["size"] == [height, width]
    restored = ke.SelectionState.from_dict(client.sessions["sess-1"].to_dict())
    assert restored.frame_size == (height, width)
    stored = ke.Mask(object_id=0, size=tuple(kept["size"]), counts=kept["counts"])
    assert np.array_equal(stored.to_array(), truth)


def test_a_transposed_size_on_a_restored_session_is_fitted_too(kling, client):
    """A session put back from its saved state (the add-on, after a reload) knows its frame."""
    width, height = 720, 1280
    truth = l_shape(height, width)
    state = ke.SelectionState(session_id="sess-1", total_frames=120, fps=30.0, duration_s=4.0,
                              video_url="https://cdn.example/clip.mp4", width=width,
                              height=height)
    client.sessions["sess-1"] = ke.SelectionState.from_dict(state.to_dict())
    item = {"object_id": 0, "rle_mask": {"size": [width, height],
                                         "counts": ke.rle.encode(truth)["counts"]}}
    kling.on("POST", f"{API}/add-selection", ok(selection(0, items=[item])))
    (mask,) = client.add_selection("sess-1", 0, [(0.2, 0.4)]).masks
    assert np.array_equal(mask.to_array(), truth)
