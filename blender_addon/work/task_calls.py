"""The Kling calls of the Edit, Preview and Tasks steps, run by worker jobs; no ``bpy``.

Creation runs on a long-job thread of its own (``worker.LONG``): on 1303 it waits up to
``SLOT_WAIT_S`` for a free task slot, and no click may wait behind that. It starts only once
the clicks queued before Generate are done (``after``), so the task is made from the marks
the user saw. Polling and downloads run on the background worker, so a long download never
delays a click. A tracking preview (a ``preview-selection`` call and a video download) runs on
a long-job thread too, after the clicks queued before it, and can be cancelled.
Downloads go through the core's resumable, atomic download: a file at its final path is
always complete, so an existing one is reused rather than fetched again.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kling_elements import AccountCosts, CreateCancelled, KlingError, NotFoundError, Task

from ..pure.settings import ClientSettings
from .online import GATE, OnlineAccessRefused
from .session_calls import Progress, SessionSource, client_for, retries_reported_to, working_session
from .worker import JobCancelled

__all__ = ["EditRequest", "ImagePixels", "ResultFiles", "TaskNotSent", "TaskUpdate",
           "account_costs", "create_task", "fetch_result", "list_account_tasks", "poll_task",
           "preview_tracking", "session_snapshot"]


SLOT_WAIT_S = 600.0


@dataclass(frozen=True, eq=False)
class ImagePixels:
    """A reference image that has no file (made or painted in Blender), as read from Blender.

    ``rgba`` holds Blender's float pixels, rows bottom-up, copied on the main thread (the
    only read of ``bpy`` data); the worker turns them into a picture for the request body.
    No temporary file is written, so none can be left behind.
    """

    width: int
    height: int
    rgba: Any  # numpy float32 array of width * height * 4 values

    def to_image(self) -> Any:
        import numpy as np
        from PIL import Image

        rows = self.rgba.reshape(self.height, self.width, 4)[::-1]
        return Image.fromarray((np.clip(rows, 0, 1) * 255 + 0.5).astype(np.uint8), "RGBA")


@dataclass(frozen=True)
class EditRequest:
    """The task options as read from the panel; images are file paths or pixels."""

    edit_mode: str
    prompt: str
    external_task_id: str
    images: tuple[str | ImagePixels, ...] = ()
    negative_prompt: str = ""
    quality: str = "std"
    watermark: bool = False


class TaskNotSent(OnlineAccessRefused):
    """The create job was refused before any of its requests left: nothing was charged."""


@dataclass(frozen=True)
class ResultFiles:
    path: str
    watermark_path: str = ""


@dataclass(frozen=True)
class TaskUpdate:
    """What one poll learned: the task (None when Kling has no such task) and any files."""

    task: Task | None
    files: ResultFiles | None = None


def _not_created(request: EditRequest) -> CreateCancelled:
    return CreateCancelled(
        f"Generate was cancelled before the create call {request.external_task_id!r} was "
        "sent: no task was created and nothing was charged",
        external_task_id=request.external_task_id, may_exist=False)


def _wait_note(error: KlingError, _wait_s: float) -> str:
    if error.code == 1303:
        return "every task slot of the account is busy: waiting for a free one"
    if error.code == 1302:
        return "Kling asks to slow down: waiting"
    return f"no answer from Kling yet ({error.code or error.__class__.__name__}): retrying"


def create_task(settings: ClientSettings, source: SessionSource, stored: dict[str, Any],
                request: EditRequest, *, cancel: threading.Event | None = None,
                after: threading.Event | None = None,
                progress: Progress | None = None) -> tuple[Task, dict[str, Any]]:
    """Create the task once (never-pay-twice protocol of the core); restore an expired session.

    Waits for ``after`` (set once the clicks queued before Generate are sent) before
    anything else. A 1203 (session not found) on create means nothing was created, so the
    session is restored (points replayed exactly) and the same ``external_task_id`` is sent
    again. ``cancel`` stops it: before the first POST, or during a wait for a free task
    slot (1303), with ``CreateCancelled`` (``may_exist`` says whether a task may exist).
    Raises :class:`TaskNotSent` when online access refuses Kling before anything is sent.
    """
    stop = cancel or threading.Event()
    if progress is not None:
        progress.say("waiting for the clicks sent before it")
    while after is not None and not after.wait(0.05):
        if stop.is_set():
            raise _not_created(request)
    if stop.is_set():
        raise _not_created(request)
    try:
        GATE.check_url(settings.base_url)
    except OnlineAccessRefused as exc:
        raise TaskNotSent(exc.host) from None
    client = client_for(settings)
    state = working_session(client, source, stored)
    images = [i.to_image() if isinstance(i, ImagePixels) else i for i in request.images]

    def submit(session_id: str) -> Task:
        body = client.build_task_body(
            session_id=session_id, edit_mode=request.edit_mode, prompt=request.prompt,
            images=images, negative_prompt=request.negative_prompt or None,
            mode=request.quality, watermark=request.watermark,
            external_task_id=request.external_task_id,
        )
        if progress is not None:
            progress.say("sending")
        # Kling allows a few tasks at a time (1303): wait for a slot rather than fail.
        return client.submit_task(body, slot_wait_s=SLOT_WAIT_S, cancel=stop)

    def waiting(error: KlingError, wait_s: float) -> None:
        if progress is not None:
            progress.say(_wait_note(error, wait_s))

    with retries_reported_to(waiting):
        task = submit(state.session_id)  # the client restores a gone session itself
    return task, client.sessions[state.session_id].to_dict()


def poll_task(settings: ClientSettings, task_ref: str) -> Task | None:
    """The task by its id or external id; None when Kling says it does not exist."""
    try:
        return client_for(settings).get_task(task_ref)
    except NotFoundError:
        return None


def fetch_result(settings: ClientSettings, task: Task, folder: str, stem: str,
                 watermark: bool) -> ResultFiles:
    """Download the result (and its watermarked copy if asked) into ``folder``."""
    if not task.videos:
        raise ValueError(f"task {task.task_id} succeeded but lists no result video")
    client = client_for(settings)
    video = task.videos[0]
    path = Path(folder) / f"{stem}.mp4"
    _download_once(client, video.url, path)
    marked = ""
    if watermark and video.watermark_url:
        marked_path = Path(folder) / f"{stem}.watermarked.mp4"
        _download_once(client, video.watermark_url, marked_path)
        marked = str(marked_path)
    return ResultFiles(str(path), marked)


def _download_once(client: Any, url: str, path: Path, on_progress: Any = None) -> None:
    if path.is_file():  # the core writes atomically: a file at its final path is complete
        return
    os.makedirs(path.parent, exist_ok=True)
    client.download(url, path, on_progress)


def preview_tracking(settings: ClientSettings, source: SessionSource, stored: dict[str, Any],
                     folder: str, stem: str, *, cancel: threading.Event | None = None,
                     after: threading.Event | None = None,
                     progress: Progress | None = None) -> tuple[str, dict[str, Any]]:
    """Ask for the tracked-mask video of the current marks and download it.

    Runs on a long-job thread: it waits for ``after`` (set once the clicks queued before it
    are sent, so Kling tracks the marks the user saw), then sends ``preview-selection`` and
    streams the video. ``cancel`` is seen before the request, after its answer and at every
    chunk of the download; a cancelled preview raises :class:`JobCancelled` and leaves no
    file behind, not even the partial ``.part`` the core keeps for resuming.

    The file name carries a digest of the marks, so the same marks reuse the file and new
    marks never overwrite the preview an editor may still be looking at.
    """
    stop = cancel or threading.Event()
    if progress is not None:
        progress.say("waiting for the clicks sent before it")
    while after is not None and not after.wait(0.05):
        if stop.is_set():
            raise JobCancelled("Preview tracking was cancelled before anything was sent")
    _stop_if(stop, "before anything was sent")
    client = client_for(settings)
    state = working_session(client, source, stored)
    if progress is not None:
        progress.say("Kling is tracking the marks")
    result = client.preview_selection(state.session_id)
    _stop_if(stop, "nothing was downloaded")
    marks = json.dumps({str(f): state.points[f] for f in state.frames()}, sort_keys=True)
    digest = hashlib.sha256(marks.encode()).hexdigest()[:8]
    path = Path(folder) / f"{stem}-tracking-{digest}.mp4"

    def downloaded(done: int, total: int | None) -> None:
        _stop_if(stop, "the partial download was deleted")
        if progress is not None:
            progress.say("")
            progress.update(done, total)

    try:
        _download_once(client, result.video_url, path, downloaded)
    except JobCancelled:
        for partial in (path.with_name(path.name + ".part"),
                        path.with_name(path.name + ".part.etag")):
            partial.unlink(missing_ok=True)
        raise
    return str(path), client.sessions[state.session_id].to_dict()


def session_snapshot(settings: ClientSettings, session_id: str) -> dict[str, Any] | None:
    """The session as this add-on's client last knew it (None if unknown): run on the click
    worker, so it is ordered with the clicks' own answers."""
    state = client_for(settings).sessions.get(session_id)
    return None if state is None else state.to_dict()


def _stop_if(stop: threading.Event, kept: str) -> None:
    if stop.is_set():
        raise JobCancelled(f"Preview tracking was cancelled: {kept}")


def list_account_tasks(settings: ClientSettings, page_size: int = 30) -> list[Task]:
    return client_for(settings).list_tasks(page=1, page_size=page_size)


def account_costs(settings: ClientSettings) -> AccountCosts:
    """The account's resource packs (the client keeps Kling's pace of one query a second)."""
    return client_for(settings).account_costs()
