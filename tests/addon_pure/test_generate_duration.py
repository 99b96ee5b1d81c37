"""The add-on's Generate sends the duration its session needs, also after a restart.

Kling takes a create without ``duration`` as "5", which cuts a 7-10 s clip. The session the
add-on keeps in the .blend carries the input's length, so the worker's create (run here
without Blender, against a sandbox) derives "10" for a 7 s clip even from a fresh client.
"""

from __future__ import annotations

import pytest

from blender_addon.pure.settings import ClientSettings
from blender_addon.work import session_calls as jobs
from blender_addon.work import task_calls as task_jobs
from kling_elements.hosting import HostingSettings
from kling_elements.sandbox import running
from kling_elements.sandbox.sample import make_clip, make_reference_image

ADD = "Using the context of <<<video_1>>>, seamlessly add the star from <<<image_1>>> [[fail]]"


@pytest.fixture
def sandbox():
    with running(task_seconds=1.0) as sb:
        yield sb
    jobs.close_clients()


def test_generate_on_a_7_s_clip_sends_10_from_the_stored_session(sandbox, tmp_path):
    clip = make_clip(tmp_path / "seven.mp4", width=720, height=720, fps=24, seconds=7.0)
    star = make_reference_image(tmp_path / "star.png", "star", (400, 400))
    settings = ClientSettings(base_url=sandbox.base_url, api_key=sandbox.api_key)
    source, stored = jobs.start_session(settings, str(clip.path),
                                        hosting=HostingSettings(kind="sandbox"))
    assert stored["duration_s"] == 7.0
    jobs.close_clients()  # Blender restarted: only what the .blend kept is known
    request = task_jobs.EditRequest(edit_mode="addition", prompt=ADD,
                                    external_task_id="addon-duration", images=(str(star),))
    task, _ = task_jobs.create_task(settings, source, stored, request)
    assert sandbox.state.tasks[task.task_id].duration == "10"
