"""One contract suite, run through both clients against the sandbox: ``Client`` (sync) and
``AsyncClient`` share every rule (``kling_elements.api``), so each scenario must give the
same outcome, and leave the same marks on the sandbox, through either.

Scenarios: sessions (init, add, delete, preview), clear, create with never-pay-twice when
the create's answer is dropped, create on a session gone at Kling (1203: restored, same
external_task_id), wait and download, and errors (retried, fatal, refused before sending).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

import kling_elements as ke
from kling_elements.hosting import SandboxHost
from kling_elements.sandbox import RunningSandbox
from kling_elements.sandbox.sample import SampleClip
from kling_elements.selection import same_point

from ..support.sandbox import add_faults

PROMPT = "Delete the ball from <<<video_1>>>"


class Driven:
    """A client whose calls are made the same way whatever its kind: ``call(name, ...)``
    returns the result (an async client's coroutine is run to completion)."""

    def __init__(self, client: ke.Client | ke.AsyncClient) -> None:
        self.client = client
        self.loop = asyncio.new_event_loop() if isinstance(client, ke.AsyncClient) else None

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        outcome = getattr(self.client, name)(*args, **kwargs)
        return self.loop.run_until_complete(outcome) if self.loop is not None else outcome

    @property
    def sessions(self) -> dict[str, ke.SelectionState]:
        return self.client.sessions

    def close(self) -> None:
        if self.loop is None:
            self.client.close()
        else:
            self.loop.run_until_complete(self.client.aclose())
            self.loop.close()


@pytest.fixture(scope="module")
def clip_url(sandbox: RunningSandbox, clip: SampleClip) -> str:
    with ke.Client(api_key=sandbox.api_key, base_url=sandbox.base_url) as c:
        return SandboxHost(c.http).publish(clip.path)


@pytest.fixture(params=["sync", "async"])
def api(request, sandbox: RunningSandbox) -> Iterator[Driven]:
    kind = ke.Client if request.param == "sync" else ke.AsyncClient
    retries: list[tuple[ke.KlingError, float]] = []
    driven = Driven(kind(sandbox.access_key, sandbox.secret_key, base_url=sandbox.base_url,
                         on_retry=lambda error, wait: retries.append((error, wait))))
    driven.retries = retries  # type: ignore[attr-defined]
    yield driven
    driven.close()


def _server_points(sandbox: RunningSandbox, session_id: str) -> dict[int, list]:
    session = sandbox.state.sessions[session_id]
    with session.lock:
        return {f: list(p) for f, p in session.points.items() if p}


def _tasks_with(sandbox: RunningSandbox, external_id: str) -> list:
    with sandbox.state.lock:
        return [t for t in sandbox.state.tasks.values() if t.external_task_id == external_id]


def _marked(api: Driven, clip: SampleClip, url: str) -> str:
    init = api.call("init_selection", video_url=url)
    api.call("add_selection", init.session_id, 0, [clip.center(0)])
    return init.session_id


def test_sessions_add_delete_and_preview(api, sandbox, clip, clip_url):
    init = api.call("init_selection", video_url=clip_url)
    assert init.total_frames == 60 and init.session_id in api.sessions
    first, second = clip.center(0), (0.1 + 1 / 3e4, 0.2)
    result = api.call("add_selection", init.session_id, 0, [first, second])
    assert result.frame_index == 0 and result.masks
    api.call("delete_selection", init.session_id, 0, [second])
    server = _server_points(sandbox, init.session_id)
    assert list(server) == [0] and len(server[0]) == 1 and same_point(server[0][0], first)
    preview = api.call("preview_selection", init.session_id)
    assert preview.video_url.startswith("http")
    assert api.sessions[init.session_id].spent.known


def test_clear_removes_every_point(api, sandbox, clip, clip_url):
    session_id = _marked(api, clip, clip_url)
    api.call("add_selection", session_id, 30, [clip.center(30)])
    api.call("clear_selection", session_id)
    assert _server_points(sandbox, session_id) == {}
    assert api.sessions[session_id].frames() == []


def test_a_dropped_create_is_looked_up_not_paid_twice(api, sandbox, admin, clip, clip_url):
    session_id = _marked(api, clip, clip_url)
    external_id = f"both-{uuid.uuid4().hex}"
    add_faults(admin, {"route": "create", "drop": "after_commit"})
    task = api.call("create_task", session_id=session_id, edit_mode="removal", prompt=PROMPT,
                    external_task_id=external_id)
    assert task.external_task_id == external_id
    assert len(_tasks_with(sandbox, external_id)) == 1  # created once, found by its id


def test_a_create_on_a_session_gone_at_kling_restores_it_and_keeps_the_id(
        api, sandbox, admin, clip, clip_url):
    session_id = _marked(api, clip, clip_url)
    external_id = f"both-{uuid.uuid4().hex}"
    add_faults(admin, {"route": "create", "error": {"code": 1203}})
    task = api.call("create_task", session_id=session_id, edit_mode="removal", prompt=PROMPT,
                    external_task_id=external_id)
    state = api.sessions[session_id]
    assert state.restores == 1 and state.session_id != session_id
    (made,) = _tasks_with(sandbox, external_id)
    assert made.id == task.task_id and made.session_id == state.session_id
    assert list(_server_points(sandbox, state.session_id)) == [0]  # the marks moved along


def test_wait_and_download(api, sandbox, clip, clip_url, tmp_path):
    session_id = _marked(api, clip, clip_url)
    task = api.call("create_task", session_id=session_id, edit_mode="removal", prompt=PROMPT)
    seen: list[str] = []
    done = api.call("wait", task.task_id, timeout=60, poll_interval=0.1,
                    on_update=lambda t: seen.append(t.status))
    assert done.status == "succeed" and seen[-1] == "succeed"
    path = api.call("download", done.videos[0].url, tmp_path / "result.mp4")
    assert path.stat().st_size > 1000
    with pytest.raises(ke.ValidationError, match="already exists"):
        api.call("download", done.videos[0].url, tmp_path / "result.mp4")


def test_a_retryable_refusal_is_retried_and_reported(api, admin, clip_url):
    add_faults(admin, {"route": "init-selection", "error": {"code": 1302}})
    init = api.call("init_selection", video_url=clip_url)
    assert init.session_id
    assert [error.code for error, _ in api.retries] == [1302]


def test_a_fatal_refusal_raises_at_once(api, admin, clip, clip_url):
    session_id = _marked(api, clip, clip_url)
    add_faults(admin, {"route": "create", "error": {"code": 1102}})
    with pytest.raises(ke.AccountError, match="resource pack"):
        api.call("create_task", session_id=session_id, edit_mode="removal", prompt=PROMPT)
    assert api.retries == []


def test_bad_input_is_refused_before_anything_is_sent(api, sandbox, clip, clip_url):
    session_id = api.call("init_selection", video_url=clip_url).session_id
    with sandbox.state.lock:
        before = len(sandbox.state.tasks)
    with pytest.raises(ke.ValidationError, match="needs a marked selection"):
        api.call("create_task", session_id=session_id, edit_mode="removal", prompt=PROMPT)
    with pytest.raises(ke.ValidationError, match="outside"):
        api.call("add_selection", session_id, 0, [(1.5, 0.5)])
    with sandbox.state.lock:
        assert len(sandbox.state.tasks) == before
    assert _server_points(sandbox, session_id) == {}


def test_an_unreachable_server_is_a_connection_failure(sandbox):
    async def go() -> None:
        async with ke.AsyncClient(api_key="k", base_url="http://127.0.0.1:9", max_retries=1,
                                  sleep=lambda s: asyncio.sleep(0)) as client:
            await client.list_tasks()

    with pytest.raises(ke.ConnectionFailed, match="no answer"):
        asyncio.run(go())
    with ke.Client(api_key="k", base_url="http://127.0.0.1:9", max_retries=1,
                   sleep=lambda s: None) as client, pytest.raises(ke.ConnectionFailed):
        client.list_tasks()
