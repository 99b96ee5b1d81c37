"""The client, the one-shot workflow and the sandbox on the contract points that cost users
most when got wrong (docs/kling-api.md): the duration every create carries, results a few
frames over their duration edited again by ``video_id``, and rejections by ``data.status``."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

import kling_elements as ke
from kling_elements.hosting import SandboxHost
from kling_elements.sandbox.jobs import RESULT_EXTRA_FRAMES
from kling_elements.sandbox.sample import SampleClip, make_clip, make_reference_image
from kling_elements.workflow import EditJob, run_edit

from ..support.fixtures import sandbox_fixture
from ..support.media import frame_count
from ..support.sandbox import ADD_PROMPT, add_faults, advance, iou

FPS = 24


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("contract-media")


@pytest.fixture(scope="module")
def star(media) -> Path:
    return make_reference_image(media / "star.png", "star", (400, 400))


@pytest.fixture(scope="module")
def five_s(media) -> SampleClip:
    return make_clip(media / "five.mp4", width=720, height=720, fps=FPS, seconds=5.0)


@pytest.fixture(scope="module")
def seven_s(media) -> SampleClip:
    return make_clip(media / "seven.mp4", width=720, height=720, fps=FPS, seconds=7.0)


def _client(sandbox, **kwargs) -> ke.Client:
    return ke.Client(sandbox.access_key, sandbox.secret_key, base_url=sandbox.base_url,
                     **kwargs)


def _sent_duration(sandbox, task: ke.Task) -> str:
    """The duration the sandbox took from the create body (white box)."""
    return sandbox.state.tasks[task.task_id].duration


def _finish(client: ke.Client, admin, task: ke.Task) -> ke.Task:
    advance(admin, 1.0)
    return client.wait(task.task_id, poll_interval=0.05, timeout=120)


@pytest.mark.slow
def test_a_5_s_edits_result_is_edited_again_by_video_id_as_5(sandbox, admin, five_s, star):
    """Kling's "5" results run a few frames over 5 s: the chained edit stays a "5" task
    (not "10", which Kling would refuse for a 5 s input, nor refused by the client)."""
    with _client(sandbox) as client:
        init = client.init_selection(video_url=SandboxHost(client.http).publish(five_s.path))
        assert init.duration_s == 5.0
        first = client.create_task(session_id=init.session_id, edit_mode="addition",
                                   prompt=ADD_PROMPT, images=[star])
        assert _sent_duration(sandbox, first) == "5"
        result = _finish(client, admin, first).videos[0]
        assert result.duration == "5.1"  # 123 frames at 24 fps

        again = client.init_selection(video_id=result.id)
        assert again.total_frames == 5 * FPS + RESULT_EXTRA_FRAMES
        assert 5.0 < again.duration_s < 5.2
        second = client.create_task(session_id=again.session_id, edit_mode="addition",
                                    prompt=ADD_PROMPT, images=[star])
        assert _sent_duration(sandbox, second) == "5"
        done = _finish(client, admin, second)
        assert done.succeeded and done.videos[0].duration == "5.1"
        with pytest.raises(ke.ValidationError, match="does not match"):
            client.create_task(session_id=again.session_id, edit_mode="addition",
                               prompt=ADD_PROMPT, images=[star], duration="10")


@pytest.mark.slow
def test_run_edit_on_a_7_s_clip_asks_for_10_and_gets_every_frame(sandbox, admin, seven_s,
                                                                 star, tmp_path):
    """Without a duration the job's session decides it: Kling's default would cut to 5 s."""
    job = EditJob(output=str(tmp_path / "out.mp4"), edit_mode="addition", prompt=ADD_PROMPT,
                  video_path=str(seven_s.path), images=(str(star),))
    with _client(sandbox) as client:
        result = run_edit(client, job, host=SandboxHost(client.http),
                          state_path=tmp_path / "state.json", wait_timeout=120)
    assert _sent_duration(sandbox, result.task) == "10"
    assert frame_count(result.output) == 7 * FPS
    assert result.task.videos[0].duration == "7.0"


def test_rejections_by_data_status_raise_and_nothing_is_remembered(sandbox, admin, clip):
    """code 0 with a non-zero data.status is Kling's rejection of the video or a frame."""
    with _client(sandbox) as client:
        url = SandboxHost(client.http).publish(clip.path)
        add_faults(admin, {"route": "init-selection", "reject": {"status": 4}})
        with pytest.raises(ke.RejectedError) as caught:
            client.init_selection(video_url=url)
        assert caught.value.status == 4 and caught.value.code == 0
        assert "rejection status 4" in str(caught.value)
        assert client.sessions == {}

        init = client.init_selection(video_url=url)
        add_faults(admin, {"route": "add-selection", "reject": {"status": 9}})
        with pytest.raises(ke.RejectedError) as caught:
            client.add_selection(init.session_id, 0, [clip.center(0)])
        assert caught.value.status == 9
        state = client.sessions[init.session_id]
        assert state.points == {} and state.masks == {}
        # nothing was added on either side: the same point can be added once, normally
        assert client.add_selection(init.session_id, 0, [clip.center(0)]).masks
        assert sandbox.state.sessions[init.session_id].points == {0: [clip.center(0)]}


def test_every_key_of_the_account_sees_the_accounts_tasks(sandbox, admin, clip, star):
    ext = f"acct-{uuid.uuid4().hex[:12]}"
    with _client(sandbox) as by_jwt:
        init = by_jwt.init_selection(video_url=SandboxHost(by_jwt.http).publish(clip.path))
        task = by_jwt.create_task(session_id=init.session_id, edit_mode="addition",
                                  prompt=ADD_PROMPT + " [[fail]]", images=[star],
                                  external_task_id=ext)
    with ke.Client(api_key=sandbox.api_key, base_url=sandbox.base_url) as by_api_key:
        assert by_api_key.get_task(ext).task_id == task.task_id
        assert task.task_id in [t.task_id for t in by_api_key.list_tasks(page_size=500)]


@pytest.fixture(scope="module")
def portrait(media) -> SampleClip:
    """720 wide, 1280 tall, like the video of the docs' example."""
    return make_clip(media / "portrait.mp4", width=720, height=1280, fps=30, seconds=2.0)


# A sandbox that writes mask sizes as [w, h], as the docs' own example does.
wh_sandbox = sandbox_fixture(scope="module", name="wh_sandbox", task_seconds=0.5,
                             mask_size_order="wh")


@pytest.mark.slow
@pytest.mark.parametrize("order", ["[h, w]", "[w, h]"])
def test_masks_land_on_the_clicked_object_whatever_the_size_order(
    request, sandbox, portrait, order
):
    server = sandbox if order == "[h, w]" else request.getfixturevalue("wh_sandbox")
    with _client(server) as client:
        init = client.init_selection(video_url=SandboxHost(client.http).publish(portrait.path))
        assert init.frame_size == (1280, 720)
        (mask,) = client.add_selection(init.session_id, 0, [portrait.center(0)]).masks
    assert mask.size == (1280, 720)
    assert iou(mask.to_array().astype(bool), portrait.mask(0)) >= 0.9
