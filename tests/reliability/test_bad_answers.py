"""Bad server answers: every malformed, inconsistent or hostile answer becomes one of the
project's exceptions with a message saying what was wrong, and leaves nothing behind (no
session or mask remembered, no file at the destination).

The fake Kling is an ``httpx.MockTransport`` (no sockets); "gigantic" bodies are generators
that count what the client pulled, proving it stops at the cap instead of reading on.
"""

from __future__ import annotations

import gzip
import json

import httpx
import numpy as np
import pytest

import kling_elements as ke
from kling_elements import rle

from .conftest import API, envelope

CAP = 16 * 1024 * 1024  # the client's limit on an envelope (client._MAX_BODY_BYTES)
SIZE = (720, 1280)
GOOD = rle.encode(np.zeros(SIZE, np.uint8))["counts"]


def raw(status: int, body: bytes, content_type: str = "text/html", **headers: str):
    return httpx.Response(status, content=body, headers={"content-type": content_type,
                                                         **headers})


class Gigantic:
    """A body of ``total`` bytes produced lazily in 1 MiB chunks, counting what was pulled."""

    def __init__(self, total: int) -> None:
        self.total, self.pulled = total, 0

    def __iter__(self):
        while self.pulled < self.total:
            self.pulled += 1 << 20
            yield b" " * (1 << 20)


def _nested(depth: int) -> bytes:
    return b'{"code": 0, "data": ' + b"[" * depth + b"]" * depth + b"}"


# ---------------------------------------------------------------- the envelope

ENVELOPE_CASES = {
    "html-page-200": (raw(200, b"<html><body>captive portal</body></html>"),
                      ke.ResponseFormatError, ["JSON envelope", "HTTP 200", "check the base URL"]),
    "html-error-page-502": (raw(502, b"<html><h1>502 Bad Gateway</h1></html>"),
                            ke.ServerError, ["without Kling's JSON envelope", "try again later"]),
    "empty-body-200": (raw(200, b""), ke.ResponseFormatError, ["JSON envelope", "base URL"]),
    "empty-body-500": (raw(500, b""), ke.ServerError, ["JSON envelope", "try again later"]),
    "json-array": (raw(200, b"[1, 2]", "application/json"), ke.ResponseFormatError,
                   ["JSON envelope"]),
    "code-as-string": (raw(200, b'{"code": "0", "data": {}}', "application/json"),
                       ke.ResponseFormatError, ["JSON envelope"]),
    "code-as-false": (raw(200, b'{"code": false, "data": {"task_id": "1"}}', "application/json"),
                      ke.ResponseFormatError, ["JSON envelope"]),
    "code-as-float": (raw(200, b'{"code": 0.0, "data": {}}', "application/json"),
                      ke.ResponseFormatError, ["JSON envelope"]),
    "not-utf8": (raw(200, b'{"code": 0, "data": "\xff\xfe"}', "application/json"),
                 ke.ResponseFormatError, ["JSON envelope"]),
    "nested-200000-deep": (raw(200, _nested(200_000), "application/json"),
                           ke.ResponseFormatError, ["JSON envelope"]),
    "undocumented-code": (httpx.Response(400, json={"code": 9999, "message": "odd thing"}),
                          ke.KlingError, ["odd thing", "code 9999"]),
}


@pytest.mark.parametrize("name", list(ENVELOPE_CASES))
def test_an_answer_without_a_usable_envelope_is_a_clear_error(name, client, recorder):
    reply, kind, words = ENVELOPE_CASES[name]
    recorder.on("GET", f"{API}/t1", reply)
    with pytest.raises(kind) as exc:
        client.get_task("t1")
    for word in words:
        assert word in str(exc.value), (word, str(exc.value))


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_a_gigantic_body_is_not_read_into_memory(client, recorder, declared):
    body = Gigantic(10 * 2**30)  # 10 GiB, never produced
    headers = {"content-length": str(body.total)} if declared else {}
    recorder.on("GET", f"{API}/t1", lambda request: httpx.Response(200, content=body,
                                                                    headers=headers))
    with pytest.raises(ke.ResponseFormatError, match="byte limit"):
        client.get_task("t1")
    assert body.pulled <= CAP + (1 << 20)
    assert len(recorder.requests) == 1, "a too-big answer is not asked for again"


def test_a_gzip_bomb_is_stopped_at_the_cap_after_decompression(client, recorder):
    bomb = gzip.compress(b" " * (64 * 2**20), compresslevel=9)  # 64 MiB in ~64 KiB
    assert len(bomb) < 200_000
    recorder.on("GET", f"{API}/t1", raw(200, bomb, "application/json",
                                        **{"content-encoding": "gzip"}))
    with pytest.raises(ke.ResponseFormatError, match="byte limit"):
        client.get_task("t1")


# ---------------------------------------------------------------- init-selection

INIT = {"status": 0, "session_id": "s1", "fps": 30, "original_duration": 2000, "width": 1280,
        "height": 720, "total_frame": 60, "normalized_video": "http://n/v.mp4"}

INIT_CASES = {
    "missing-session-id": ({"session_id": None}, ke.ResponseFormatError,
                           ["lacks data.session_id"]),
    "empty-session-id": ({"session_id": ""}, ke.ResponseFormatError, ["session_id is empty"]),
    "total-frame-as-string": ({"total_frame": "60"}, ke.ResponseFormatError,
                              ["data.total_frame is str, expected int"]),
    "fps-as-string": ({"fps": "30"}, ke.ResponseFormatError, ["data.fps is str"]),
    "fps-nan": ({"fps": float("nan")}, ke.ResponseFormatError, ["data.fps is nan", "finite"]),
    "fps-zero": ({"fps": 0}, ke.ResponseFormatError, ["data.fps is 0.0", "> 0"]),
    "data-null": (None, ke.ResponseFormatError, ["data is not a JSON object"]),
    "data-a-list": ([], ke.ResponseFormatError, ["data is not a JSON object"]),
    "rejected-video": ({"status": 3}, ke.RejectedError, ["rejected the video", "status 3"]),
}


# Documented as unused (width, height) or unitless (original_duration): odd values are
# ignored, never fatal; the length comes from total_frame / fps.
IGNORED_INIT_FIELDS = {
    "width-zero": {"width": 0}, "height-negative": {"height": -720},
    "width-as-bool": {"width": True}, "no-width-or-height": {"width": None, "height": None},
    "duration-infinite": {"original_duration": float("inf")},
    "duration-as-string": {"original_duration": "2000"},
}


@pytest.mark.parametrize("name", list(IGNORED_INIT_FIELDS))
def test_odd_values_of_unused_init_fields_open_the_session(name, client, recorder):
    data = {k: v for k, v in {**INIT, **IGNORED_INIT_FIELDS[name]}.items() if v is not None}
    recorder.on("POST", f"{API}/init-selection", raw(
        200, json.dumps({"code": 0, "message": "", "request_id": "r", "data": data}).encode(),
        "application/json"))
    init = client.init_selection(video_url="http://127.0.0.1:9/c.mp4")
    assert (init.session_id, init.duration_s) == ("s1", 2.0)
    assert client.sessions["s1"].duration_s == 2.0


@pytest.mark.parametrize("name", list(INIT_CASES))
def test_a_malformed_init_answer_opens_no_session(name, client, recorder):
    change, kind, words = INIT_CASES[name]
    data = {**INIT, **change} if isinstance(change, dict) else change
    # NaN and Infinity are what Python's json module (and so a sloppy server) writes.
    recorder.on("POST", f"{API}/init-selection", raw(
        200, json.dumps({"code": 0, "message": "", "request_id": "r", "data": data}).encode(),
        "application/json"))
    with pytest.raises(kind) as exc:
        client.init_selection(video_url="http://127.0.0.1:9/c.mp4")
    for word in words:
        assert word in str(exc.value), (word, str(exc.value))
    assert client.sessions == {}


# ---------------------------------------------------------------- add-selection

def _mask(counts: object = GOOD, size: object = list(SIZE), object_id: object = 1) -> dict:
    return {"object_id": object_id, "rle_mask": {"size": size, "counts": counts}}


def _runs(*runs: int) -> str:
    return rle.encode_counts(runs)


H, W = SIZE
SELECTION_CASES = {
    "no-res": ({}, ["lacks data.res"]),
    "mask-list-not-a-list": ({"res": {"frame_index": 0, "rle_mask_list": {}}},
                             ["rle_mask_list is dict, expected list"]),
    "counts-as-int": ([_mask(counts=5)], ["counts is int, expected str"]),
    "counts-missing": ([{"object_id": 1, "rle_mask": {"size": list(SIZE)}}],
                       ["lacks rle_mask_list[].rle_mask.counts"]),
    "size-one-number": ([_mask(size=[720])], ["size [720] is not [height, width]"]),
    "size-strings": ([_mask(size=["720", "1280"])], ["is not [height, width]"]),
    "size-zero": ([_mask(size=[0, 0], counts="")], ["size [0, 0]", "1-4096 px"]),
    "size-gigantic": ([_mask(size=[65535, 65535], counts=_runs(65535 * 65535))],
                      ["size [65535, 65535]", "1-4096 px"]),
    "rle-short-of-h-w": ([_mask(counts=_runs(H * W - 10, 5))],
                         ["not a valid COCO RLE", f"cover {H * W - 5} pixels",
                          f"has {H * W}"]),
    "rle-over-h-w": ([_mask(counts=_runs(H * W, 5))], [f"cover {H * W + 5} pixels"]),
    "rle-bad-characters": ([_mask(counts="~~~")], ["invalid character '~'"]),
    "rle-truncated": ([_mask(counts=GOOD + "o")], ["truncated"]),
    "rle-negative-run": ([_mask(counts=_runs(10, 20, 30)[:-1] + "0" + "_")],
                         ["not a valid COCO RLE"]),
    "masks-of-two-sizes": ([_mask(), _mask(size=[360, 640], object_id=2,
                                           counts=_runs(360 * 640))],
                           ["different sizes", "(360, 640)", "(720, 1280)"]),
    "object-id-as-string": ([_mask(object_id="1")], ["object_id is str, expected int"]),
    "size-not-matching-the-frame": ([_mask(size=[720, 720], counts=_runs(720 * 720))],
                                    ["720x720 px", "frame is 1280x720", "without stretching"]),
}


@pytest.fixture
def known_session(client, recorder) -> str:
    recorder.on("POST", f"{API}/init-selection", envelope(INIT))
    client.init_selection(video_url="http://127.0.0.1:9/c.mp4")
    return "s1"


@pytest.mark.parametrize("name", list(SELECTION_CASES))
def test_a_malformed_mask_answer_raises_and_no_mask_is_kept(name, client, recorder,
                                                            known_session):
    answer, words = SELECTION_CASES[name]
    data = answer if isinstance(answer, dict) else {
        "status": 0, "res": {"frame_index": 0, "rle_mask_list": answer}}
    recorder.on("POST", f"{API}/add-selection", envelope(data))
    with pytest.raises(ke.ResponseFormatError) as exc:
        client.add_selection(known_session, 0, [(0.5, 0.5)])
    for word in words:
        assert word in str(exc.value), (word, str(exc.value))
    assert 0 not in client.sessions[known_session].masks


@pytest.mark.parametrize(
    "size", [list(SIZE), [1280, 720], [360, 640]],
    ids=["frame-size", "transposed (the docs are ambiguous)", "same-aspect-half-size"])
def test_a_well_formed_mask_answer_passes_the_same_checks(client, recorder, known_session,
                                                          size):
    """The control cases: the checks above refuse only what is wrong."""
    recorder.on("POST", f"{API}/add-selection", envelope({"status": 0, "res": {
        "frame_index": 0, "rle_mask_list": [_mask(size=size, counts=_runs(size[0] * size[1]))]}}))
    result = client.add_selection(known_session, 0, [(0.5, 0.5)])
    # a transposed size is read as the frame's own (h, w): decoded with it, never transposed
    expected = tuple(SIZE) if size == [1280, 720] else tuple(size)
    assert result.masks[0].to_array().shape == expected
    assert 0 in client.sessions[known_session].masks


# ---------------------------------------------------------------- tasks

TASK = {"task_id": "t1", "task_status": "succeed", "task_result": {"videos": [
    {"id": "v1", "url": "http://cdn/out.mp4", "duration": "2.0"}]}}

TASK_CASES = {
    "status-missing": ({"task_status": None}, ["lacks data.task_status"]),
    "status-as-int": ({"task_status": 99}, ["data.task_status is int, expected str"]),
    "task-id-missing": ({"task_id": None}, ["lacks data.task_id"]),
    "task-id-empty": ({"task_id": ""}, ["data.task_id is empty"]),
    "videos-not-a-list": ({"task_result": {"videos": {"id": "v1"}}},
                          ["videos is dict, expected list"]),
    "video-without-url": ({"task_result": {"videos": [{"id": "v1"}]}},
                          ["lacks task_result.videos[].url"]),
    "task-info-a-string": ({"task_info": "x"}, ["data.task_info is str, expected dict"]),
}


@pytest.mark.parametrize("name", list(TASK_CASES))
def test_a_malformed_task_answer_is_a_clear_error(name, client, recorder):
    change, words = TASK_CASES[name]
    recorder.on("GET", f"{API}/t1", envelope({**TASK, **change}))
    with pytest.raises(ke.ResponseFormatError) as exc:
        client.get_task("t1")
    for word in words:
        assert word in str(exc.value), (word, str(exc.value))


def test_a_task_list_that_is_not_a_list_is_a_clear_error(client, recorder):
    recorder.on("GET", API, envelope({"tasks": []}))
    with pytest.raises(ke.ResponseFormatError, match="not an array"):
        client.list_tasks()


# ---------------------------------------------------------------- result files

FILE_URL = "http://cdn.invalid/out.mp4"

DOWNLOAD_CASES = {
    "html-404": (lambda r: raw(404, b"<html>Not Found</html>"), ke.KlingError,
                 ["HTTP 404", "link may have expired", "query the task for a fresh URL"]),
    "range-from-elsewhere": (
        lambda r: httpx.Response(206, content=b"x" * 10,
                                 headers={"content-range": "bytes 5-14/15"}),
        ke.ConnectionFailed, ["did not complete"]),
    "shorter-than-announced": (
        lambda r: httpx.Response(200, content=b"x" * 10, headers={"content-length": "20"}),
        ke.ConnectionFailed, ["did not complete"]),
    "longer-than-announced": (
        lambda r: httpx.Response(206, content=b"x" * 30,
                                 headers={"content-range": "bytes 0-19/20"}),
        ke.ConnectionFailed, ["did not complete"]),
}


@pytest.mark.parametrize("name", list(DOWNLOAD_CASES))
def test_a_bad_file_answer_leaves_no_file_at_the_destination(name, client, recorder, tmp_path):
    reply, kind, words = DOWNLOAD_CASES[name]
    recorder.on("GET", "/out.mp4", reply)
    dest = tmp_path / "out.mp4"
    with pytest.raises(kind) as exc:
        client.download(FILE_URL, dest)
    for word in words:
        assert word in str(exc.value), (word, str(exc.value))
    assert not dest.exists()
    assert not (tmp_path / "out.mp4.part").exists() or name != "html-404"
