"""The public client against a real sandbox over loopback HTTP: a whole edit, then every way
the network and the server can misbehave (injected with the sandbox's fault rules), then
what time does to sessions, tasks and tokens (with the sandbox's clock)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import kling_elements as ke
from kling_elements.hosting import SandboxHost
from kling_elements.retry import MAX_BACKOFF_S
from kling_elements.sandbox import RunningSandbox, running
from kling_elements.sandbox.sample import SampleClip, make_reference_image

from ..support.fixtures import sandbox_fixture
from ..support.media import decode, frame_count, sha256
from ..support.sandbox import (
    REFUSED_PROMPT,
    REMOVE_PROMPT,
    add_faults,
    advance,
    created,
    decode_rle,
    iou,
    pending_faults,
    set_tripwires,
)
from ..support.sandbox import client as admin_client

DAY_S = 24 * 3600
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation:DeprecationWarning"  # pycocotools on numpy 2
)


def _client(sandbox: RunningSandbox, auth: str = "jwt", **kwargs) -> ke.Client:
    if auth == "api_key":
        return ke.Client(api_key=sandbox.api_key, base_url=sandbox.base_url, **kwargs)
    return ke.Client(sandbox.access_key, sandbox.secret_key, base_url=sandbox.base_url, **kwargs)


def _ext() -> str:
    return f"e2e-{uuid.uuid4().hex[:12]}"


def _removed(result: dict[int, np.ndarray], clip: SampleClip, index: int) -> float:
    """Mean error against the clean background where the ball was on frame ``index``."""
    where = clip.mask(index)
    return float(np.abs(result[index][where].astype(float) - clip.background[where]).mean())


class Waits(list):
    """A ``sleep`` that records the waits instead of sleeping (retries stay instant)."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


# ---------------------------------------------------------------- the whole edit


def _publish_and_start(client: ke.Client, clip: SampleClip) -> ke.InitResult:
    uploaded: list[tuple[int, int | None]] = []
    url = SandboxHost(client.http).publish(
        clip.path, on_progress=lambda done, total: uploaded.append((done, total)))
    size = clip.path.stat().st_size
    assert uploaded[-1] == (size, size)
    init = client.init_selection(video_url=url)
    assert (init.width, init.height, init.total_frames) == (1280, 720, 60)
    assert (init.fps, init.duration_s, init.original_duration) == (30.0, 2.0, 2000)
    return init


def _select_unselect_select(client: ke.Client, sid: str, clip: SampleClip) -> None:
    point = clip.center(0)
    selected = client.add_selection(sid, 0, [point])
    assert selected.frame_index == 0 and len(selected.masks) == 1
    mask = selected.masks[0].to_array()
    assert mask.shape == (720, 1280)
    assert iou(mask.astype(bool), clip.mask(0)) >= 0.9
    # our decoder and pycocotools read the same mask off the wire
    reference = decode_rle({"size": list(selected.masks[0].size),
                            "counts": selected.masks[0].counts})
    assert np.array_equal(mask.astype(bool), reference)

    with pytest.raises(ke.ValidationError, match="was not added"):
        client.delete_selection(sid, 0, [(0.5, 0.5)])  # refused before sending
    # the same floats delete the point: nothing is selected any more
    assert client.delete_selection(sid, 0, [point]).masks == ()
    assert client.sessions[sid].frames() == []
    with pytest.raises(ke.ValidationError, match="needs a marked selection"):
        client.create_task(session_id=sid, edit_mode="removal", prompt=REMOVE_PROMPT)

    again = client.add_selection(sid, 0, [point])
    assert iou(again.masks[0].to_array().astype(bool), clip.mask(0)) >= 0.9


def _remove_and_download(client: ke.Client, admin, sid: str, clip: SampleClip,
                         folder: Path) -> ke.Task:
    task = client.create_task(session_id=sid, edit_mode="removal", prompt=REMOVE_PROMPT)
    assert task.status in ("submitted", "processing")
    assert task.external_task_id.startswith("ke-")
    advance(admin, 1.0)  # the task's minimum time is up; the render still runs for real
    seen: list[str] = []
    done = client.wait(task.task_id, poll_interval=0.05,
                       on_update=lambda t: seen.append(t.status))
    assert done.status == "succeed" and done.task_id == task.task_id
    assert seen[-1] == "succeed" and len(seen) == len(set(seen))
    assert len(done.videos) == 1 and done.videos[0].duration == "2.0"
    assert created(admin)[task.external_task_id] == 1

    result_path = client.download(done.videos[0].url, folder / "result.mp4")
    assert not (folder / "result.mp4.part").exists()
    count, result = decode(result_path, keep=(0, 30, 59))
    assert count == 60 and result[0].shape == (720, 1280, 3)
    for index in (0, 30, 59):  # the ball is gone: only the background is left
        assert _removed(result, clip, index) < 20
    return done


@pytest.mark.slow
def test_whole_edit_with_jwt_keys_select_preview_remove_download_chain(
    sandbox, admin, clip, tmp_path
):
    with _client(sandbox, "jwt") as client:
        init = _publish_and_start(client, clip)
        _select_unselect_select(client, init.session_id, clip)

        preview = client.preview_selection(init.session_id)
        preview_path = client.download(preview.video_url, tmp_path / "preview.mp4")
        assert frame_count(preview_path) == 60

        done = _remove_and_download(client, admin, init.session_id, clip, tmp_path)
        listed = client.list_tasks(page=1, page_size=500)
        assert [t.status for t in listed if t.task_id == done.task_id] == ["succeed"]

        chained = client.init_selection(video_id=done.videos[0].id)
        assert chained.session_id != init.session_id
        assert (chained.width, chained.height, chained.total_frames) == (1280, 720, 60)


def test_whole_edit_with_the_api_key(sandbox, admin, clip, tmp_path):
    """The same edit with the single-key mode (preview and chaining do not depend on it)."""
    with _client(sandbox, "api_key") as client:
        init = _publish_and_start(client, clip)
        _select_unselect_select(client, init.session_id, clip)
        done = _remove_and_download(client, admin, init.session_id, clip, tmp_path)
        assert done.task_id in [t.task_id for t in client.list_tasks(page_size=500)]


# ---------------------------------------------------------------- faults


@pytest.fixture(scope="module")
def marked(sandbox, clip) -> ke.InitResult:
    """A session on the clip with the ball selected on frame 0 (tasks may be created on it)."""
    with _client(sandbox) as client:
        init = client.init_selection(video_url=SandboxHost(client.http).publish(clip.path))
        client.add_selection(init.session_id, 0, [clip.center(0)])
    return init


@pytest.fixture
def waits() -> Waits:
    return Waits()


@pytest.fixture
def client(sandbox, waits) -> Iterator[ke.Client]:
    with _client(sandbox, sleep=waits) as c:
        yield c


def test_answer_lost_after_commit_returns_the_task_without_paying_twice(
    admin, client, marked, waits
):
    add_faults(admin, {"route": "create", "times": 1, "drop": "after_commit"})
    ext = _ext()
    task = client.create_task(session_id=marked.session_id, duration="5", edit_mode="removal",
                              prompt=REFUSED_PROMPT, external_task_id=ext)
    assert pending_faults(admin) == []  # the answer really was lost
    assert task.external_task_id == ext and task.task_id
    assert client.get_task(ext).task_id == task.task_id
    assert created(admin)[ext] == 1
    assert waits == []  # found at once, not posted again


@pytest.mark.parametrize(
    "rule",
    [
        {"route": "create", "times": 1, "drop": "before_commit"},
        {"route": "create", "times": 1, "error": {"http": 500, "code": 5000}},
    ],
    ids=["dropped", "server-error"],
)
def test_request_lost_before_commit_is_posted_once_more(admin, client, marked, waits, rule):
    add_faults(admin, rule)
    ext = _ext()
    task = client.create_task(session_id=marked.session_id, duration="5", edit_mode="removal",
                              prompt=REFUSED_PROMPT, external_task_id=ext)
    assert pending_faults(admin) == []
    assert task.external_task_id == ext
    assert created(admin)[ext] == 1
    assert len(waits) == 1  # one backoff before the second POST


def test_concurrency_limit_1303_is_waited_out(admin, client, marked, waits):
    add_faults(admin, {"route": "create", "times": 2, "error": {"http": 429, "code": 1303}})
    ext = _ext()
    task = client.create_task(session_id=marked.session_id, duration="5", edit_mode="removal",
                              prompt=REFUSED_PROMPT, external_task_id=ext)
    assert task.external_task_id == ext
    assert created(admin)[ext] == 1
    # backing off, never under the 1 s the docs advise for 1303
    assert len(waits) == 2 and 1.0 <= waits[0] <= waits[1] <= MAX_BACKOFF_S


def test_exhausted_resource_pack_1102_fails_after_one_request(admin, client, marked, waits):
    add_faults(admin, {"route": "create", "times": 2, "error": {"http": 429, "code": 1102}})
    ext = _ext()
    with pytest.raises(ke.AccountError) as caught:
        client.create_task(session_id=marked.session_id, duration="5", edit_mode="removal",
                           prompt=REFUSED_PROMPT, external_task_id=ext)
    assert caught.value.code == 1102 and caught.value.http_status == 429
    assert "resource pack" in str(caught.value)
    # exactly one of the two uses of the rule was taken: one request, no retry, no lookup
    assert [rule["times"] for rule in pending_faults(admin)] == [1]
    assert waits == []
    assert ext not in created(admin)


def test_truncated_download_resumes_to_the_identical_file(admin, client, marked, waits, tmp_path):
    clean = client.download(marked.normalized_video_url, tmp_path / "clean.mp4")
    add_faults(admin, {"route": "files", "times": 1, "truncate": 0.5})
    progress: list[int] = []
    resumed = client.download(marked.normalized_video_url, tmp_path / "resumed.mp4",
                              on_progress=lambda done, total: progress.append(done))
    assert pending_faults(admin) == []  # the first connection was cut
    assert len(waits) == 1
    assert sha256(resumed) == sha256(clean)
    assert progress[-1] == clean.stat().st_size
    assert progress == sorted(progress)  # resumed from the cut, never restarted from zero
    assert not list(tmp_path.glob("*.part*"))


def test_busy_file_server_is_retried_and_a_cut_download_resumes_through_it(
        admin, client, marked, waits, tmp_path):
    """A CDN's passing 503/429 is retried like a broken connection, without losing the bytes
    already on disk; a file server that stays busy ends in a ServerError naming the status."""
    clean = client.download(marked.normalized_video_url, tmp_path / "clean.mp4")
    add_faults(admin, {"route": "files", "times": 1, "truncate": 0.4},
               {"route": "files", "times": 1, "error": {"http": 503, "code": 5001}},
               {"route": "files", "times": 1, "error": {"http": 429, "code": 1302}})
    resumed = client.download(marked.normalized_video_url, tmp_path / "resumed.mp4")
    assert pending_faults(admin) == [] and len(waits) == 3
    assert sha256(resumed) == sha256(clean)

    add_faults(admin, {"route": "files", "times": client.max_retries + 1,
                       "error": {"http": 500, "code": 5000}})
    with pytest.raises(ke.ServerError, match="HTTP 500"):
        client.download(marked.normalized_video_url, tmp_path / "never.mp4")
    assert not (tmp_path / "never.mp4").exists()


def test_swap_reference_image_is_sent_and_a_bad_one_is_refused_locally(
    admin, client, marked, tmp_path
):
    prompt = "swap the star from <<<image_1>>> for the ball from <<<video_1>>> [[fail]]"
    star = make_reference_image(tmp_path / "star.png", "star", size=(512, 512))
    ext = _ext()
    task = client.create_task(session_id=marked.session_id, duration="5", edit_mode="swap",
                              prompt=prompt, images=[star], external_task_id=ext)
    assert task.external_task_id == ext and created(admin)[ext] == 1

    tiny = make_reference_image(tmp_path / "tiny.png", "star", size=(200, 200))
    wires = set_tripwires(admin)
    with pytest.raises(ke.ValidationError, match="300"):
        client.create_task(session_id=marked.session_id, duration="5", edit_mode="swap",
                           prompt=prompt, images=[tiny])
    assert pending_faults(admin) == wires  # nothing was sent


def test_answer_slower_than_the_client_timeout_is_retried(sandbox, admin, client, marked):
    task = client.create_task(session_id=marked.session_id, duration="5", edit_mode="removal",
                              prompt=REFUSED_PROMPT, external_task_id=_ext())
    impatient_waits = Waits()
    with _client(sandbox, timeout=0.5, sleep=impatient_waits) as impatient:
        add_faults(admin, {"route": "get", "times": 1, "delay_s": 1.5})
        found = impatient.get_task(task.task_id)
    assert found.task_id == task.task_id
    assert pending_faults(admin) == []  # the slow answer was the first one
    assert 1 <= len(impatient_waits) <= impatient.max_retries


def test_failed_task_raises_with_kling_reason(admin, client, marked):
    task = client.create_task(session_id=marked.session_id, duration="5", edit_mode="removal",
                              prompt=REFUSED_PROMPT, external_task_id=_ext())
    advance(admin, 1.0)
    with pytest.raises(ke.TaskFailedError) as caught:
        client.wait(task.task_id, timeout=10, poll_interval=0.05)
    assert "content safety policy" in str(caught.value)
    assert task.task_id in str(caught.value)
    assert caught.value.task.status == "failed"


def test_wait_polls_through_server_errors_to_the_real_outcome(admin, client, marked, waits):
    task = client.create_task(session_id=marked.session_id, duration="5", edit_mode="removal",
                              prompt=REFUSED_PROMPT, external_task_id=_ext())
    advance(admin, 1.0)
    # more errors in a row than one request retries: the poll fails, the wait goes on
    add_faults(admin, {"route": "get", "times": client.max_retries + 3,
                       "error": {"http": 503, "code": 5001}})
    with pytest.raises(ke.TaskFailedError, match="content safety policy"):
        client.wait(task.task_id, timeout=60, poll_interval=0.5)
    assert pending_faults(admin) == []
    # at least one poll interval between failed polls
    assert any(w == pytest.approx(0.5, abs=1e-6) for w in waits), waits


# ---------------------------------------------------------------- time


# A second sandbox whose tasks take a minute and whose clock these tests move by days
# (which would expire every token and session of the shared one).
slow_sandbox = sandbox_fixture(scope="module", name="slow_sandbox", task_seconds=60.0,
                               max_concurrent_tasks=50)


@pytest.fixture(scope="module")
def slow_admin(slow_sandbox):
    with admin_client(slow_sandbox) as api:
        yield api


@pytest.fixture(scope="module")
def slow_clip_url(slow_sandbox, clip) -> str:
    with _client(slow_sandbox, "api_key") as c:
        return SandboxHost(c.http).publish(clip.path)


@pytest.mark.slow
def test_wait_times_out_on_a_long_task_and_can_wait_again(
    slow_sandbox, slow_admin, slow_clip_url, clip
):
    with _client(slow_sandbox, "api_key") as client:
        init = client.init_selection(video_url=slow_clip_url)
        client.add_selection(init.session_id, 0, [clip.center(0)])
        task = client.create_task(session_id=init.session_id, edit_mode="removal",
                                  prompt=REMOVE_PROMPT)
        with pytest.raises(ke.TaskTimeoutError) as caught:
            client.wait(task.task_id, timeout=0.3, poll_interval=0.05)
        assert isinstance(caught.value, TimeoutError)
        assert caught.value.task.status in ("submitted", "processing")
        assert "wait again" in str(caught.value)

        advance(slow_admin, 60)
        done = client.wait(task.task_id, timeout=60, poll_interval=0.05)
        assert done.status == "succeed" and done.videos


@pytest.mark.slow
def test_session_expires_after_24_hours_and_the_next_click_restores_it(
    slow_sandbox, slow_admin, slow_clip_url, clip
):
    with _client(slow_sandbox, "api_key") as client:
        init = client.init_selection(video_url=slow_clip_url)
        client.add_selection(init.session_id, 0, [clip.center(0)])
        advance(slow_admin, DAY_S)
        result = client.add_selection(init.session_id, 1, [clip.center(1)])
        assert result.frame_index == 1 and result.masks
        state = client.sessions[init.session_id]
        assert state.session_id != init.session_id  # moved to a new session, marks kept
        on_server = slow_sandbox.state.sessions[state.session_id].points
        assert on_server == {0: [clip.center(0)], 1: [clip.center(1)]}
        assert set(state.masks) == {0, 1}

    # A client that does not know the session's points cannot restore it: 1203, as Kling says.
    with _client(slow_sandbox, "api_key") as stranger:
        with pytest.raises(ke.NotFoundError) as caught:
            stranger.add_selection(init.session_id, 1, [clip.center(1)])
        assert caught.value.code == 1203 and "expired" in str(caught.value)


def test_token_expired_by_the_server_clock_fails_once_resigned_and_blames_the_clock():
    """Advancing the sandbox clock 31 min is a client clock 31 min slow, as Kling sees it.

    The client re-signs once on 1004, but with its own (still slow) clock, so the new token
    is just as expired: the right outcome is an ``AuthError`` telling the user to check the
    clock, after exactly two attempts (no retry loop, no backoff)."""
    waits = Waits()
    # its own sandbox: the clock of the others may already be days ahead
    with running() as sb, admin_client(sb) as api, _client(sb, sleep=waits) as client:
        sent: list[str] = []
        client.http.event_hooks["request"].append(lambda request: sent.append(request.url.path))
        assert isinstance(client.list_tasks(), list)  # the token is fine now
        advance(api, 31 * 60)
        with pytest.raises(ke.AuthError) as caught:
            client.list_tasks()
    assert caught.value.code == 1004 and caught.value.http_status == 401
    assert "clock" in str(caught.value)
    assert len(sent) == 1 + 2 and waits == []
