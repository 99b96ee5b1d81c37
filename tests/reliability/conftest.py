"""Shared fixtures of the reliability tests: a recording fake Kling, a client on it, and one
loopback sandbox for the package.

The fake Kling (``Recorder``) answers through ``httpx.MockTransport``: no socket is opened,
every request is recorded, so "nothing was sent" is an assertion on ``recorder.requests``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest

import kling_elements as ke

from ..support.fixtures import sandbox_fixture

API = "/v1/videos/multi-elements"
API_KEY = "reliability-api-key-0123456789"

Reply = Callable[[httpx.Request], httpx.Response]


def envelope(data: object = None, code: int = 0, http: int = 200) -> httpx.Response:
    return httpx.Response(http, json={"code": code, "message": "SUCCEED" if code == 0 else "no",
                                      "request_id": "rid-1", "data": data})


class Recorder:
    """A fake Kling: ``on(method, path, reply)`` sets an answer; every request is kept."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.replies: dict[tuple[str, str], Reply] = {}

    def on(self, method: str, path: str, reply: Reply | httpx.Response) -> None:
        self.replies[(method, path)] = reply if callable(reply) else (lambda request: reply)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        reply = self.replies.get((request.method, request.url.path))
        if reply is None:
            return envelope(code=1202, http=404)
        return reply(request)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def client(recorder: Recorder) -> Iterator[ke.Client]:
    with ke.Client(api_key=API_KEY, transport=httpx.MockTransport(recorder),
                   sleep=lambda s: None, max_retries=1) as c:
        yield c


sandbox = sandbox_fixture(task_seconds=0.2, max_concurrent_tasks=50)


@pytest.fixture(scope="package")
def valid_clip(tmp_path_factory: pytest.TempPathFactory):
    """The cheapest clip Kling accepts: 720x720, 24 fps, 2 s of flat grey."""
    from ..support.media import write_clip

    return write_clip(tmp_path_factory.mktemp("valid-clip") / "clip.mp4")


@pytest.fixture(scope="package")
def session_id(sandbox, valid_clip) -> str:
    """One sandbox session on ``valid_clip`` (no points marked), for create-time checks."""
    from ..support.sandbox import client, ok, upload

    with client(sandbox) as api:
        url = upload(api, valid_clip)
        return ok(api.post(f"{API}/init-selection", json={"video_url": url}))["session_id"]
