"""A create refused with 1203 (the session is gone: nothing was created) restores the
session once and posts the same body, same ``external_task_id``, on the new one; the one
restore protocol, for the sync and the async client alike (scripted Kling)."""

from __future__ import annotations

import asyncio
import random

import httpx
import pytest

import kling_elements as ke

from .test_client import AK, API, INIT, SEED, SK, FakeTime, Kling, err, ok, selection, task

SESS2 = {**INIT, "session_id": "sess-2"}
REMOVE = "Delete the cup from <<<video_1>>>"


def marked(kling: Kling, client: ke.Client) -> None:
    kling.on("POST", f"{API}/init-selection", ok(INIT), ok(SESS2))
    kling.on("POST", f"{API}/add-selection", ok(selection(3)))
    client.init_selection(video_url="https://cdn.example/clip.mp4")
    client.add_selection("sess-1", 3, [(0.25, 0.75)])


def make(kling: Kling, **kwargs) -> ke.Client:
    clock = FakeTime()
    return ke.Client(AK, SK, transport=httpx.MockTransport(kling), sleep=clock.sleep,
                     clock=clock, rng=random.Random(SEED), **kwargs)


def test_a_create_on_a_gone_session_restores_it_and_posts_the_same_id():
    kling = Kling()
    reports: list[ke.RestoreReport] = []
    client = make(kling, on_restore=reports.append)
    marked(kling, client)
    kling.on("POST", API, err(1203), ok(task(ext="ext-7")))
    created = client.create_task(session_id="sess-1", edit_mode="removal", prompt=REMOVE,
                                 external_task_id="ext-7")
    assert created.external_task_id == "ext-7"
    posts = kling.bodies("POST", API)
    assert [b["session_id"] for b in posts] == ["sess-1", "sess-2"]
    assert {b["external_task_id"] for b in posts} == {"ext-7"}
    replayed = kling.bodies("POST", f"{API}/add-selection")[-1]
    assert replayed["session_id"] == "sess-2" and replayed["points"] == [{"x": 0.25, "y": 0.75}]
    (report,) = reports
    assert (report.old_session_id, report.new_session_id) == ("sess-1", "sess-2")


def test_a_second_1203_is_raised_not_restored_again():
    kling = Kling()
    client = make(kling)
    marked(kling, client)
    kling.on("POST", API, err(1203))
    with pytest.raises(ke.NotFoundError):
        client.create_task(session_id="sess-1", edit_mode="removal", prompt=REMOVE)
    assert len(kling.bodies("POST", API)) == 2
    assert len(kling.bodies("POST", f"{API}/init-selection")) == 2


def test_without_auto_restore_the_1203_says_so_and_nothing_more_is_sent():
    kling = Kling()
    client = make(kling, auto_restore=False)
    marked(kling, client)
    kling.on("POST", API, err(1203))
    with pytest.raises(ke.RestoreDisabledError, match="auto_restore=False"):
        client.create_task(session_id="sess-1", edit_mode="removal", prompt=REMOVE)
    assert len(kling.bodies("POST", API)) == 1
    assert len(kling.bodies("POST", f"{API}/init-selection")) == 1


def test_the_async_client_follows_the_same_protocol():
    kling = Kling()

    async def handler(request: httpx.Request) -> httpx.Response:
        await request.aread()
        return kling(request)

    async def go() -> ke.Task:
        async def no_wait(seconds: float) -> None:
            return None

        async with ke.AsyncClient(AK, SK, transport=httpx.MockTransport(handler),
                                  sleep=no_wait, rng=random.Random(SEED)) as client:
            kling.on("POST", f"{API}/init-selection", ok(INIT), ok(SESS2))
            kling.on("POST", f"{API}/add-selection", ok(selection(3)))
            await client.init_selection(video_url="https://cdn.example/clip.mp4")
            await client.add_selection("sess-1", 3, [(0.25, 0.75)])
            kling.on("POST", API, err(1203), ok(task(ext="ext-8")))
            return await client.create_task(session_id="sess-1", edit_mode="removal",
                                            prompt=REMOVE, external_task_id="ext-8")

    assert asyncio.run(go()).external_task_id == "ext-8"
    assert [b["session_id"] for b in kling.bodies("POST", API)] == ["sess-1", "sess-2"]


def test_a_subclass_watching_restore_sees_the_clients_own_restores():
    """Every restore goes through the public ``restore`` (the fault campaign's client
    records the sessions it leaves this way)."""
    seen: list[str] = []

    class Watching(ke.Client):
        def restore(self, session, **options):
            seen.append(options.get("reason", ""))
            return super().restore(session, **options)

    kling = Kling()
    clock = FakeTime()
    client = Watching(AK, SK, transport=httpx.MockTransport(kling), sleep=clock.sleep,
                      clock=clock, rng=random.Random(SEED))
    marked(kling, client)
    kling.on("POST", API, err(1203), ok(task(ext="ext-9")))
    client.create_task(session_id="sess-1", edit_mode="removal", prompt=REMOVE,
                       external_task_id="ext-9")
    assert seen == ["is gone on the server (1203)"]
