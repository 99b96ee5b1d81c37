"""Talking to a test sandbox over plain HTTP: signing, envelopes, uploads, its tools (faults,
clock, stats), mask checks and a callback sink.

Everything goes through HTTP (httpx) and PyJWT, the way any client would; nothing here
imports the project's client.
"""

from __future__ import annotations

import base64
import io
import json
import re
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import jwt
import numpy as np
from PIL import Image

from kling_elements.sandbox import RunningSandbox, video
from kling_elements.sandbox.faults import ROUTES

API = "/v1/videos/multi-elements"
REMOVE_PROMPT = "Delete the ball from <<<video_1>>>"
ADD_PROMPT = "Using the context of <<<video_1>>>, seamlessly add the star from <<<image_1>>>"
# The sandbox refuses such a task as a content-policy violation, without rendering it.
REFUSED_PROMPT = REMOVE_PROMPT + " [[fail]]"
# A JWT as the client sends it: base64url of '{"' starts both header and payload.
JWT_PATTERN = re.compile(r"eyJ[\w-]{8,}\.eyJ[\w-]{8,}\.[\w-]{16,}")


def sign(
    sandbox: RunningSandbox,
    *,
    iss: str | None = None,
    secret: str | None = None,
    now: float | None = None,
    nbf: float = -5,
    exp: float = 1800,
) -> str:
    """A Kling JWT; ``nbf``/``exp`` are offsets in seconds from ``now`` (default real time)."""
    issued = time.time() if now is None else now
    payload = {"iss": iss or sandbox.access_key, "exp": int(issued + exp),
               "nbf": int(issued + nbf)}
    return jwt.encode(payload, secret or sandbox.secret_key, algorithm="HS256",
                      headers={"typ": "JWT"})


def client(sandbox: RunningSandbox, token: str | None = None) -> httpx.Client:
    return httpx.Client(
        base_url=sandbox.base_url, timeout=120.0, trust_env=False,
        headers={"Authorization": f"Bearer {token or sandbox.api_key}"},
    )


def ok(response: httpx.Response) -> object:
    """``data`` of a successful envelope (asserting HTTP 200 and code 0)."""
    body = response.json()
    assert response.status_code == 200 and body["code"] == 0, body
    assert isinstance(body["request_id"], str) and body["request_id"]
    return body["data"]


def refused(response: httpx.Response, http: int, code: int, *words: str) -> str:
    """Assert an error envelope with that status/code whose message has every word."""
    body = response.json()
    assert (response.status_code, body["code"]) == (http, code), body
    assert set(body) == {"code", "message", "request_id"}  # no data, as in the docs (1303)
    for word in words:
        assert word.lower() in body["message"].lower(), (word, body["message"])
    return body["message"]


def upload(api: httpx.Client, path: Path, name: str | None = None) -> str:
    with open(path, "rb") as handle:
        data = ok(api.post("/sandbox/uploads", files={"file": (name or path.name, handle)}))
    return data["url"]


def b64(path: Path) -> str:
    return base64.b64encode(Path(path).read_bytes()).decode("ascii")


def png_b64(width: int, height: int, fmt: str = "PNG") -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 40, 40)).save(buffer, fmt)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def decode_rle(rle: dict) -> np.ndarray:
    """The mask of a returned RLE, decoded by pycocotools (the reference) when installed."""
    try:
        from pycocotools import mask as coco
    except ImportError:  # pragma: no cover - dev extra missing
        from kling_elements import rle as ours
        return ours.decode(rle["counts"], rle["size"]).astype(bool)
    return coco.decode({"size": rle["size"], "counts": rle["counts"].encode()}).astype(bool)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def frames_of(api: httpx.Client, url: str) -> tuple[np.ndarray, float]:
    """Download a video URL and decode it."""
    response = api.get(url)
    assert response.status_code == 200
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "video.mp4"
        path.write_bytes(response.content)
        return video.read_frames(path)


def wait_task(api: httpx.Client, ident: str, statuses: tuple[str, ...], timeout: float = 60.0):
    """Poll GET until the task reaches one of ``statuses``; return it."""
    deadline = time.monotonic() + timeout
    while True:
        task = ok(api.get(f"{API}/{ident}"))
        if task["task_status"] in statuses:
            return task
        assert time.monotonic() < deadline, f"task stuck in {task['task_status']}"
        time.sleep(0.05)


def advance(api: httpx.Client, seconds: float) -> float:
    """Move the sandbox's clock on; its new time."""
    return ok(api.post("/sandbox/clock", json={"advance_s": seconds}))["now"]


def add_faults(admin: httpx.Client, *rules: dict) -> list[dict]:
    """Append fault rules (see ``kling_elements.sandbox.faults``); every rule now pending."""
    return ok(admin.post("/sandbox/faults", json={"rules": list(rules)}))["rules"]


def pending_faults(admin: httpx.Client) -> list[dict]:
    return ok(admin.get("/sandbox/faults"))["rules"]


def set_tripwires(admin: httpx.Client) -> list[dict]:
    """One error rule on every route: any request that reaches the sandbox consumes one."""
    return add_faults(admin, *({"route": route, "times": 1,
                                "error": {"http": 500, "code": 5000}} for route in ROUTES))


def created(admin: httpx.Client) -> dict[str, int]:
    """How many tasks each external_task_id created, as the sandbox counted them."""
    return ok(admin.get("/sandbox/stats"))["created"]


def created_total(admin: httpx.Client) -> int:
    """How many tasks the sandbox has created so far (all external ids)."""
    return sum(created(admin).values())


class CallbackSink:
    """A tiny HTTP server on a free loopback port that records what is POSTed to it: the
    parsed JSON in ``received``, the headers and raw body in ``deliveries``. ``answers``
    are the HTTP statuses of the first replies (then 200)."""

    def __init__(self, answers: tuple[int, ...] = ()) -> None:
        self.received: list[dict] = []
        self.deliveries: list[tuple[dict[str, str], bytes]] = []
        received, deliveries, pending = self.received, self.deliveries, list(answers)

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length)
                status = pending.pop(0) if pending else 200
                if status == 200:
                    deliveries.append((dict(self.headers.items()), raw))
                    received.append(json.loads(raw))
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/kling-callback"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait(self, count: int, timeout: float = 30.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while len(self.received) < count:
            assert time.monotonic() < deadline, f"only {len(self.received)} callbacks"
            time.sleep(0.02)
        return list(self.received)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
