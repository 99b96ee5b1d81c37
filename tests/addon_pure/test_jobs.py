"""Worker-side session work: a Start Editing cancelled during its upload starts nothing."""

from __future__ import annotations

import threading

import pytest

from blender_addon.pure.settings import ClientSettings
from blender_addon.work import session_calls as jobs
from blender_addon.work.worker import JobCancelled

pytest.importorskip("uvicorn")


def test_cancel_during_the_upload_stops_it_and_starts_no_session(tmp_path):
    from kling_elements.sandbox import running
    from kling_elements.sandbox.sample import make_clip

    clip = make_clip(tmp_path / "clip.mp4", width=1280, height=720, fps=30, seconds=2.0, seed=2)
    cancel, reports = threading.Event(), []

    def progress(done, total):
        reports.append(done)
        cancel.set()  # the user presses Cancel as the upload starts

    with running(data_dir=tmp_path / "sandbox") as sandbox:
        settings = ClientSettings(sandbox.base_url, api_key=sandbox.api_key)
        try:
            with pytest.raises(JobCancelled, match="no session was started"):
                jobs.start_session(settings, str(clip.path), on_progress=progress,
                                   cancel=cancel)
            assert len(reports) == 1
            assert sandbox.state.sessions == {}
            uploads = sandbox.data_dir / "uploads"
            assert not uploads.exists() or not list(uploads.iterdir())  # the upload stopped

            source, state = jobs.start_session(settings, str(clip.path))  # uncancelled
            assert source.video_url and state["session_id"] in sandbox.state.sessions
        finally:
            jobs.close_clients()
