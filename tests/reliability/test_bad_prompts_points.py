"""Bad prompts, task options, points and frames: each refused before anything is sent, with
the value, the limit and the fix in the message; and the one subtle case, ``-0.0``.

``-0.0`` vs ``0.0``: Kling deletes only bit-identical coordinates, and JSON keeps the sign
(``-0.0`` is sent as ``-0.0``). The decision: both mean the top/left edge, so the client
normalises ``-0.0`` to ``0.0`` before sending *and* before remembering; an add and a delete
given either spelling send the very same ``0.0``, and the state never holds a ``-0.0``.
"""

from __future__ import annotations

import json
import math
import struct
from decimal import Decimal

import numpy as np
import pytest

import kling_elements as ke
from kling_elements import rle

from .conftest import API, envelope

REMOVE = "Delete the ball from <<<video_1>>>"
ADD_TWO = ("Using the context of <<<video_1>>>, seamlessly add the star from <<<image_1>>> "
           "and the cube from <<<image_2>>>")
SIZE = 720
MASK = rle.encode(np.zeros((SIZE, SIZE), np.uint8))


def _png(tmp_path) -> str:
    from ..support.media import image_bytes

    path = tmp_path / "ref.png"
    path.write_bytes(image_bytes(400, 400))
    return str(path)


def _pad(text: str, length: int, filler: str = "x") -> str:
    return text + filler * (length - len(text))


# ---------------------------------------------------------------- prompts and task options

# id -> (create_task keyword arguments, words: value, limit, fix)
PROMPT_CASES: dict[str, tuple[dict, list[str]]] = {
    "2501-chars": ({"prompt": _pad(REMOVE, 2501)},
                   ["2501 characters", "limit of 2500", "shorten it"]),
    "2501-cjk-chars": ({"prompt": _pad("删除<<<video_1>>>中的球", 2501, "球")},
                       ["2501 characters", "limit of 2500", "shorten it"]),
    "no-duration-for-a-session-unknown-here": (
        {}, ["'sess' is unknown to this client", "would cut a 7-10 s clip"]),
    "video-2": ({"prompt": REMOVE + " and <<<video_2>>>"},
                ["<<<video_2>>>", "only <<<video_1>>> exists"]),
    "image-3-with-two-images": (
        {"edit_mode": "addition", "prompt": ADD_TWO + " and <<<image_3>>>", "images": 2},
        ["<<<image_3>>>", "2 image(s) were given", "add the image or fix the reference"]),
    "image-1-in-a-removal": ({"prompt": REMOVE + " like <<<image_1>>>"},
                             ["<<<image_1>>>", "0 image(s)", "fix the reference"]),
    "empty": ({"prompt": ""}, ["prompt is required", "describe the edit"]),
    "whitespace-only": ({"prompt": " \n\t "}, ["prompt is required", "describe the edit"]),
    "none": ({"prompt": None}, ["prompt is required"]),
    "not-a-string": ({"prompt": 42}, ["prompt is required"]),
    "negative-2501-chars": ({"negative_prompt": "x" * 2501},
                            ["negative_prompt has 2501 characters", "2500", "shorten it"]),
    "negative-image-2-of-1": (
        {"edit_mode": "swap", "images": 1, "negative_prompt": "no <<<image_2>>>",
         "prompt": "swap the star from <<<image_1>>> for the ball from <<<video_1>>>"},
        ["negative_prompt refers to <<<image_2>>>", "1 image(s)"]),
    "edit-mode-unknown": ({"edit_mode": "delete"}, ["'delete'", "addition, swap, removal"]),
    "mode-unknown": ({"mode": "fast"}, ["'fast'", "'std' or 'pro'"]),
    "duration-7": ({"duration": "7"}, ["'7'", "'5' (input 2-5 s) or '10'"]),
    "callback-not-http": ({"callback_url": "ftp://hooks.invalid/x"},
                          ["'ftp://hooks.invalid/x'", "http(s) URL"]),
    "external-id-with-slash": ({"external_task_id": "a/b"}, ["'a/b'", "without '/'"]),
    "no-session": ({"session_id": ""}, ["session_id is required", "init_selection first"]),
}


@pytest.mark.parametrize("name", list(PROMPT_CASES))
def test_bad_prompt_or_option_is_refused_before_sending(name, client, recorder, tmp_path):
    kwargs, words = PROMPT_CASES[name]
    args = {"session_id": "sess", "edit_mode": "removal", "prompt": REMOVE, **kwargs}
    args["images"] = [_png(tmp_path)] * args.pop("images", 0)
    with pytest.raises(ke.ValidationError) as exc:
        client.create_task(**args)
    for word in words:
        assert word in str(exc.value), (word, str(exc.value))
    assert recorder.requests == []


def test_a_2500_char_prompt_is_accepted(client, recorder):
    """The limit is inclusive: the boundary case goes out unchanged."""
    recorder.on("POST", API, envelope({"task_id": "1", "task_status": "submitted"}))
    prompt = _pad(REMOVE, 2500)
    client.create_task(session_id="s", edit_mode="removal", prompt=prompt, duration="5")
    assert json.loads(recorder.requests[0].read())["prompt"] == prompt


# ---------------------------------------------------------------- points and frames


def _selection_answer(request):
    frame = json.loads(request.read())["frame_index"]
    return envelope({"status": 0, "res": {"frame_index": frame, "rle_mask_list": [
        {"object_id": 1, "rle_mask": {"size": [SIZE, SIZE], "counts": MASK["counts"]}}]}})


@pytest.fixture
def session(client, recorder) -> str:
    """A session of 48 frames that the client knows (so frame and point limits apply)."""
    recorder.on("POST", f"{API}/init-selection", envelope({
        "status": 0, "session_id": "sess", "fps": 24, "original_duration": 2000,
        "width": SIZE, "height": SIZE, "total_frame": 48, "normalized_video": "http://n/v.mp4"}))
    recorder.on("POST", f"{API}/add-selection", _selection_answer)
    recorder.on("POST", f"{API}/delete-selection", _selection_answer)
    client.init_selection(video_url="http://127.0.0.1:9/clip.mp4")
    recorder.requests.clear()
    return "sess"


NAN, INF = float("nan"), float("inf")

# id -> (frame, points, words: value, limit, fix)
POINT_CASES: dict[str, tuple] = {
    "nan-x": (0, [(NAN, 0.5)], ["x=nan", "outside [0, 1]", "fractions of the frame"]),
    "nan-y": (0, [(0.5, NAN)], ["y=nan", "outside [0, 1]", "fractions of the frame"]),
    "inf": (0, [(INF, 0.5)], ["x=inf", "outside [0, 1]"]),
    "minus-inf": (0, [(0.5, -INF)], ["y=-inf", "outside [0, 1]"]),
    "just-over-1": (0, [(1.0000001, 0.5)], ["x=1.0000001", "outside [0, 1]"]),
    "just-under-0": (0, [(0.5, -1e-9)], ["y=-1e-09", "outside [0, 1]"]),
    "string-coordinate": (0, [("0.5", 0.5)], ["x='0.5'", "must be a number in [0, 1]"]),
    "string-point": (0, ["0.5,0.5"], ["'0.5,0.5'", "(x, y) pair"]),
    "string-points": (0, "0.5,0.5", ["got a string", "list of (x, y) pairs"]),
    "none-coordinate": (0, [(None, 0.5)], ["x=None", "must be a number"]),
    "bool-coordinate": (0, [(True, 0.5)], ["x=True", "must be a number"]),
    "decimal-coordinate": (0, [(Decimal("0.5"), 0.5)], ["x=Decimal('0.5')", "must be a number"]),
    "three-numbers": (0, [(0.1, 0.2, 0.3)], ["(0.1, 0.2, 0.3)", "(x, y) pair"]),
    "dict-without-y": (0, [{"x": 0.5}], ["y=None", "must be a number"]),
    "no-points": (0, [], ["no points given", "click at least one point"]),
    "11-points-in-one-call": (0, [(i / 20, 0.5) for i in range(11)],
                              ["11 points", "limit of 10", "remove some"]),
    "frame-minus-1": (-1, [(0.5, 0.5)], ["frame_index -1", "frames count from 0"]),
    "frame-past-the-end": (48, [(0.5, 0.5)], ["frame_index 48", "last frame 47",
                                              "normalized video"]),
    "frame-float": (1.0, [(0.5, 0.5)], ["frame_index 1.0", "integer frame number"]),
    "frame-bool": (True, [(0.5, 0.5)], ["frame_index True", "integer frame number"]),
    "frame-string": ("3", [(0.5, 0.5)], ["frame_index '3'", "integer frame number"]),
}


@pytest.mark.parametrize("name", list(POINT_CASES))
def test_bad_point_or_frame_is_refused_before_sending(name, client, recorder, session):
    frame, points, words = POINT_CASES[name]
    with pytest.raises(ke.ValidationError) as exc:
        client.add_selection(session, frame, points)
    for word in words:
        assert word in str(exc.value), (word, str(exc.value))
    assert recorder.requests == []
    assert client.sessions[session].points == {}


def test_the_11th_point_on_a_frame_is_refused_before_sending(client, recorder, session):
    client.add_selection(session, 3, [(i / 10, 0.5) for i in range(6)])
    sent = len(recorder.requests)
    with pytest.raises(ke.ValidationError) as exc:
        client.add_selection(session, 3, [(i / 10, 0.7) for i in range(5)])
    assert "frame 3 has 6 point(s); adding 5 would exceed 10 per frame" in str(exc.value)
    assert "delete some first" in str(exc.value)
    assert len(recorder.requests) == sent and len(client.sessions[session].points[3]) == 6


def test_the_11th_frame_is_refused_before_sending(client, recorder, session):
    for frame in range(10):
        client.add_selection(session, frame, [(0.5, 0.5)])
    sent = len(recorder.requests)
    with pytest.raises(ke.ValidationError) as exc:
        client.add_selection(session, 10, [(0.5, 0.5)])
    message = str(exc.value)
    assert "frame 10 would be the 11th marked frame" in message and "allows 10" in message
    assert "delete a frame's points" in message
    assert len(recorder.requests) == sent and client.sessions[session].frames() == list(range(10))
    client.add_selection(session, 9, [(0.25, 0.25)])  # an already marked frame is still fine


def test_deleting_a_point_that_differs_in_the_last_bit_is_refused_before_sending(
    client, recorder, session
):
    client.add_selection(session, 2, [(0.1 + 0.2, 0.5)])  # 0.30000000000000004
    sent = len(recorder.requests)
    with pytest.raises(ke.ValidationError) as exc:
        client.delete_selection(session, 2, [(0.3, 0.5)])
    assert "(0.3, 0.5) was not added on frame 2" in str(exc.value)
    assert "0.30000000000000004" in str(exc.value)  # what was added, to copy exactly
    assert len(recorder.requests) == sent


def _sent_points(request) -> list[tuple[float, float]]:
    text = request.read().decode()
    return [(p["x"], p["y"]) for p in json.loads(text)["points"]], text


def _bits(value: float) -> bytes:
    return struct.pack("<d", value)


@pytest.mark.parametrize(("added", "deleted"), [(-0.0, 0.0), (0.0, -0.0), (-0.0, -0.0)],
                         ids=["add-minus-delete-plus", "add-plus-delete-minus", "both-minus"])
def test_minus_zero_and_zero_are_one_point_sent_as_plus_zero(client, recorder, session, added,
                                                             deleted):
    client.add_selection(session, 1, [(added, 0.5), (0.5, added)])
    sent, text = _sent_points(recorder.requests[-1])
    assert "-0.0" not in text
    assert [_bits(v) for p in sent for v in p] == [_bits(v) for v in (0.0, 0.5, 0.5, 0.0)]
    remembered = client.sessions[session].points[1]
    assert all(math.copysign(1.0, v) == 1.0 for p in remembered for v in p)

    client.delete_selection(session, 1, [(deleted, 0.5), (0.5, deleted)])
    gone, text = _sent_points(recorder.requests[-1])
    assert "-0.0" not in text
    assert [_bits(v) for p in gone for v in p] == [_bits(v) for p in sent for v in p]
    assert 1 not in client.sessions[session].points
