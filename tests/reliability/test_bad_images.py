"""Bad reference images: refused by the client before anything is sent (value, limit, fix in
the message), or made compliant when that needs no human (other formats, over 10 MB); the
sandbox refuses what reaches it raw (1201) and creates no task.
"""

from __future__ import annotations

import base64
import io
import json
import os
from pathlib import Path

import pytest
from PIL import Image

import kling_elements as ke
from kling_elements.validate import IMAGE_MAX_BYTES

from ..support.media import image_bytes
from ..support.sandbox import ok, refused
from .conftest import API, envelope

ADD = "Using the context of <<<video_1>>>, seamlessly add the star from <<<image_1>>>"
ADD_TWO = ADD + " and the cube from <<<image_2>>>"
SWAP = "swap the star from <<<image_1>>> for the ball from <<<video_1>>>"
REMOVE = "Delete the ball from <<<video_1>>>"
SVG = (b'<svg xmlns="http://www.w3.org/2000/svg" width="400" height="400">'
       b'<rect width="400" height="400" fill="red"/></svg>')
PNG_400 = image_bytes(400, 400)


def _file(tmp: Path, name: str, data: bytes) -> str:
    path = tmp / name
    path.write_bytes(data)
    return str(path)


# id -> (images given for an addition, words: value, limit, fix)
LOCAL_CASES: dict[str, tuple] = {
    "svg-file": (lambda t: [_file(t, "logo.svg", SVG)], ["image 1", "not a readable image",
                                                         "JPEG or PNG"]),
    "svg-bytes": (lambda t: [SVG], ["image 1", "not a readable image", "JPEG or PNG"]),
    "299px-wide": (lambda t: [_file(t, "n.png", image_bytes(299, 400))],
                   ["299x400 px", "at least 300 px", "larger image"]),
    "299px-tall": (lambda t: [image_bytes(400, 299)], ["400x299 px", "at least 300 px",
                                                       "larger image"]),
    "2.6-to-1": (lambda t: [image_bytes(780, 300)], ["2.60:1", "1:2.5-2.5:1", "crop"]),
    "1-to-2.6": (lambda t: [image_bytes(300, 780)], ["0.38:1", "1:2.5-2.5:1", "crop"]),
    "corrupt-bytes": (lambda t: [os.urandom(5000)], ["not a readable image", "JPEG or PNG"]),
    "truncated-png": (lambda t: [_file(t, "cut.png", PNG_400[: len(PNG_400) // 2])],
                      ["not a readable image", "JPEG or PNG"]),
    "zero-byte-file": (lambda t: [_file(t, "empty.png", b"")],
                       ["not a readable image", "JPEG or PNG"]),
    "data-prefix-string": (
        lambda t: ["data:image/png;base64," + base64.b64encode(PNG_400).decode()],
        ["image 1", "data: URL", "pass a file path"]),
    "data-prefix-bytes": (lambda t: [b"data:image/png;base64," + base64.b64encode(PNG_400)],
                          ["image 1", "data: URL", "pass the raw image bytes"]),
    "missing-file": (lambda t: [str(t / "nope.png")], ["nope.png", "does not exist"]),
    "a-folder": (lambda t: [str(t)], ["does not exist or is not a file"]),
    "three-images": (lambda t: [PNG_400] * 3, ["addition takes 1-2 images, got 3"]),
    "no-image": (lambda t: [], ["addition takes 1-2 images, got 0", "reference image"]),
}


@pytest.mark.parametrize("name", list(LOCAL_CASES))
def test_bad_image_is_refused_before_anything_is_sent(name, client, recorder, tmp_path):
    make, words = LOCAL_CASES[name]
    images = make(tmp_path)
    prompt = ADD_TWO if len(images) >= 2 else ADD
    with pytest.raises(ke.ValidationError) as exc:
        client.create_task(session_id="sess", edit_mode="addition", prompt=prompt,
                           images=images)
    for word in words:
        assert word in str(exc.value), (word, str(exc.value))
    assert recorder.requests == []


@pytest.mark.parametrize(
    ("mode", "count", "prompt", "words"),
    [("swap", 2, SWAP, ["swap takes exactly 1 image, got 2"]),
     ("swap", 0, SWAP, ["swap takes exactly 1 image, got 0"]),
     ("removal", 1, REMOVE, ["removal takes no images, got 1", "drop the images"])],
    ids=["swap-two-images", "swap-no-image", "removal-with-image"],
)
def test_image_count_per_mode_is_refused_before_sending(client, recorder, mode, count, prompt,
                                                        words):
    with pytest.raises(ke.ValidationError) as exc:
        client.create_task(session_id="sess", edit_mode=mode, prompt=prompt,
                           images=[PNG_400] * count)
    for word in words:
        assert word in str(exc.value)
    assert recorder.requests == []


def _sent_image(recorder) -> Image.Image:
    body = json.loads(recorder.requests[-1].read())
    raw = base64.b64decode(body["image_list"][0]["image"], validate=True)
    assert len(raw) <= IMAGE_MAX_BYTES
    return Image.open(io.BytesIO(raw))


def test_webp_and_11_mb_images_are_converted_not_sent_as_they_are(client, recorder, tmp_path):
    """Policy: what a machine can fix (format, size) is fixed; only JPEG/PNG <= 10 MB leave."""
    recorder.on("POST", API, envelope({"task_id": "1", "task_status": "submitted"}))
    webp = _file(tmp_path, "star.webp", image_bytes(400, 400, "WEBP"))
    client.create_task(session_id="s", edit_mode="addition", prompt=ADD, images=[webp],
                       duration="5")
    assert _sent_image(recorder).format in ("JPEG", "PNG")

    big = image_bytes(1900, 2000, "PNG", noise=True)
    assert len(big) > 11 * 10**6
    client.create_task(session_id="s", edit_mode="addition", prompt=ADD, images=[big],
                       duration="5")
    sent = _sent_image(recorder)
    assert sent.format == "JPEG" and min(sent.size) >= 300


# ---------------------------------------------------------------- the sandbox, raw

def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


RAW_CASES = {
    "webp": (lambda: _b64(image_bytes(400, 400, "WEBP")), ["WEBP", "only JPEG and PNG"]),
    "11-mb": (lambda: _b64(os.urandom(11 * 2**20)), ["over the 10 MB limit", "shrink it"]),
    "svg": (lambda: _b64(SVG), ["not a readable image", "JPEG or PNG"]),
    "299px": (lambda: _b64(image_bytes(299, 400)), ["299x400 px", "at least 300 px"]),
    "2.6-to-1": (lambda: _b64(image_bytes(780, 300)), ["2.60:1", "1:2.5-2.5:1"]),
    "data-prefix": (lambda: "data:image/png;base64," + _b64(PNG_400),
                    ["data: prefix", "raw base64 only"]),
    "not-base64": (lambda: "%%%not base64%%%", ["neither an http(s) URL nor valid base64"]),
    "corrupt": (lambda: _b64(os.urandom(3000)), ["not a readable image"]),
}


@pytest.mark.parametrize("name", list(RAW_CASES))
def test_the_sandbox_refuses_a_raw_bad_image_and_creates_no_task(name, admin, session_id):
    make, words = RAW_CASES[name]
    before = ok(admin.get("/sandbox/stats"))["tasks"]
    external = f"bad-image-{name}"
    response = admin.post(API, json={
        "session_id": session_id, "edit_mode": "addition", "prompt": ADD,
        "image_list": [{"image": make()}], "external_task_id": external,
    })
    message = refused(response, 400, 1201)
    for word in words:
        assert word in message, (word, message)
    stats = ok(admin.get("/sandbox/stats"))
    assert stats["tasks"] == before and external not in stats["created"]
