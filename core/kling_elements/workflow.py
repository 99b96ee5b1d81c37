"""One whole edit, resumable: publish -> session -> clicks -> task -> wait -> download.

``run_edit`` persists its progress in a small JSON state file after every step (written
atomically), so a process killed at any moment and started again with the same job picks
up where it stopped: the clip is not published twice, the task is never created twice (its
``external_task_id`` is saved before the POST and looked up first on resume), and the
download continues from the bytes already on disk.

A result file already at the output path is never replaced silently: unless ``overwrite``,
the job is refused before anything is sent, except when the state file shows that this job
wrote it (its download had started: the file appears only complete), in which case it is
kept and not fetched again.

Every deduction Kling reports is recorded in the state file too (``ledger.CostLedger``):
one step per init, add and restore, and the task's, each reported as a ``cost`` event with
the edit's running total; ``EditResult.cost`` is the total over every run of the job.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import validate
from .api.tasks import image_list_of
from .atomic import write_json_atomic
from .client import RESTORE_MARGIN_S, Client
from .cost import Cost
from .errors import NotFoundError, ResponseFormatError, TaskFailedError
from .hosting import Host, check_clip, url_usable
from .job_key import content_key, match_state
from .ledger import CostLedger
from .models import Task
from .retry import observe_retries
from .selection import SelectionState, check_add

if TYPE_CHECKING:
    from .callbacks import TaskInbox

__all__ = ["EditHooks", "EditJob", "EditResult", "run_edit"]

EventCallback = Callable[[str, dict[str, Any]], None]
log = logging.getLogger("kling_elements")


@dataclass(frozen=True)
class EditJob:
    """Everything that defines one edit; two runs of an equal job share their state file."""

    output: str
    edit_mode: str
    prompt: str
    video_path: str | None = None
    video_url: str | None = None
    video_id: str | None = None
    selections: tuple[tuple[int, tuple[tuple[float, float], ...]], ...] = ()
    images: tuple[str, ...] = ()
    negative_prompt: str | None = None
    mode: str = "std"
    duration: str | None = None
    watermark: bool = False
    model_name: str | None = None
    video_digest: str | None = None  # what video_path holds, when known without reading it

    def key(self) -> str:
        """A fingerprint of the job, so a state file is never applied to a different edit;
        local files count by content, not path (see ``job_key``)."""
        return content_key(self)


@dataclass
class EditResult:
    """The finished edit; ``cost`` is what every step of every run reported, ``cost_steps``
    the steps (JSON-ready dicts: ``step``, ``cost`` and what identifies it)."""

    task: Task
    output: Path
    watermarked_output: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    cost: Cost = field(default_factory=Cost)
    cost_steps: list[dict[str, Any]] = field(default_factory=list)


class EditHooks:
    """Where a scheduler of many edits (the batch) takes part in one edit; each default
    does nothing, so a subclass overrides only what it needs. Called in the edit's thread.

    ``before_create(body)`` runs just before the task is created, with the body about to be
    sent: it may block (waiting for a slot) or raise, and then nothing is created.
    ``created(task)`` follows an accepted create. ``resumed(task)`` is the task an earlier
    run created, found again. ``poll_interval()`` is how often to poll the task (``None``:
    the client's schedule); it is not asked when an inbox ends the wait.
    ``waited(task)`` is called once the wait for the task ends, with the final task or
    ``None`` when the wait raised; no wait happens for a task already done.
    ``retried(error, wait_s)`` hears each retry of this edit's own requests (not those of
    other edits sharing the client, see ``retry.observe_retries``).
    """

    def before_create(self, body: dict[str, Any]) -> None:
        """Hold or refuse a create; by default every create goes ahead."""

    def created(self, task: Task) -> None:
        """An accepted create."""

    def resumed(self, task: Task) -> None:
        """The task an earlier run created, found again."""

    def poll_interval(self) -> float | None:
        return None

    def waited(self, task: Task | None) -> None:
        """The wait for the task ended (``None``: it raised)."""

    def retried(self, error: Exception, wait: float) -> None:
        """One of this edit's requests is about to be retried after ``wait`` seconds."""


def _ledger(state: dict[str, Any]) -> CostLedger:
    record = state.get("cost")
    if not isinstance(record, dict):
        record = state["cost"] = {}
    return CostLedger(record)


def _charge(state: dict[str, Any], emit: EventCallback, step: str, cost: Cost,
            **info: Any) -> None:
    """Record a step's deduction and report it with the edit's new total."""
    ledger = _ledger(state)
    ledger.add(step, cost, **info)
    emit("cost", {"step": step, "cost": cost, "total": ledger.total(), **info})


def _charge_task(state: dict[str, Any], emit: EventCallback, task: Task) -> None:
    """Record the task's deduction as last reported; an event when it changed and says
    something (a reported deduction, or the task's end)."""
    ledger = _ledger(state)
    kind = state.get("task_kind") or {}
    if ledger.set_task(task.task_id, task.cost) and (task.cost.known or task.done):
        emit("cost", {"step": "task", "cost": task.cost, "total": ledger.total(),
                      "task_id": task.task_id, "mode": kind.get("mode"),
                      "duration": kind.get("duration"), "done": task.done})


def _load_state(path: Path | None, job: EditJob) -> dict[str, Any]:
    key = job.key()
    if path is None or not path.exists():
        return {"job": key}
    try:
        state = json.loads(path.read_text())
    except ValueError as exc:  # also UnicodeDecodeError
        raise ValueError(
            f"state file {path} is damaged ({exc}): remove it to start the edit over"
        ) from None
    if not isinstance(state, dict):
        raise ValueError(
            f"state file {path} is damaged (not a JSON object): remove it to start the edit over"
        )
    match = match_state(state.get("job"), job)
    if match == "other":
        raise ValueError(
            f"state file {path} belongs to a different edit: remove it or choose another "
            "--state path"
        )
    if match == "legacy":
        # Only the task (looked up by its saved id before anything is created) and the cost
        # are kept: a session made for points the line may no longer have is made again.
        log.warning("state file %s was written by an older version for files at other "
                    "paths; its task is kept, its session is made again", path)
        state.pop("selection", None)
        state.pop("video_url", None)
    state["job"] = key
    return state


def _save_state(path: Path | None, state: dict[str, Any]) -> None:
    if path is not None:
        write_json_atomic(path, state)


def _watermarked_path(output: Path) -> Path:
    return output.with_name(output.stem + ".watermarked" + output.suffix)


def _outputs(job: EditJob) -> list[Path]:
    output = Path(job.output)
    return [output, _watermarked_path(output)] if job.watermark else [output]


def _check_outputs(job: EditJob, state: dict[str, Any], overwrite: bool) -> None:
    """Refuse a job whose result would replace a file it did not write itself."""
    ours = state.get("downloading") or state.get("done")
    for path in _outputs(job):
        if path.is_dir():
            raise validate.ValidationError(f"output {path} is a folder: give a file name")
        if not overwrite and not ours and os.path.lexists(path):
            raise validate.ValidationError(
                f"output {path} already exists and would be replaced: choose another output "
                "path, or pass overwrite=True (the CLI's --force) to replace it"
            )


def _check_job(job: EditJob, state: dict[str, Any]) -> None:
    """Refuse, before anything is sent, a job that breaks a documented limit.

    Without this, a bad prompt or point would only be noticed after the clip was uploaded,
    a session started and the selection made. The task's rules are ``validate.task``'s (the
    session's length is not known yet: without ``job.duration`` it decides when the body is
    built); the reference images are read and checked as the create will read them.
    """
    marked: dict[int, list[tuple[float, float]]] = {}
    for frame, points in job.selections:  # the limits of points and frames, as add_selection
        validate.frame_index(frame)
        exact = validate.points(list(points))
        check_add(marked, frame, exact)
        marked.setdefault(frame, []).extend(exact)
    problems = validate.task(
        edit_mode=job.edit_mode, prompt=job.prompt, images=job.images,
        negative_prompt=job.negative_prompt, mode=job.mode, duration=job.duration,
        marked_frames=len(marked), duration_later=True,
    )
    # A missing selection first: it is what the job's author must add before anything else.
    for problem in sorted(problems, key=lambda p: p.field != "selection"):
        if problem.field == "selection":
            raise validate.ValidationError(
                f"{job.edit_mode} needs a marked selection: give at least one point on the "
                "element")
        raise validate.ValidationError(problem.message)
    image_list_of(job.images)
    if job.video_path and not (job.video_id or job.video_url or state.get("video_url")):
        check_clip(job.video_path)


def clip_frame_size(path: str | os.PathLike) -> tuple[int, int] | None:
    """``(height, width)`` of a local clip, or ``None`` (unreadable, or no PyAV).

    For a session whose init answer left out ``width``/``height`` (documented as unused):
    Kling's normalized copy has the clip's orientation and aspect, which is all the client
    needs to read a mask ``size`` given as ``[w, h]`` (``SelectionResult.fit_frame``).
    """
    try:
        from .media import probe

        info = probe(path)
    except (ImportError, ValueError, OSError):
        return None
    return (info.height, info.width) if info.width and info.height else None


def _session(client: Client, job: EditJob, host: Host | None, state: dict[str, Any],
             save: Callable[[], None], emit: EventCallback) -> SelectionState:
    saved = state.get("selection")
    if saved:
        selection = SelectionState.from_dict(saved)
        # The client restores a saved session that expired or vanished (same video, same
        # points); only one whose published URL has itself expired is started over here,
        # where the clip can be published again.
        stale_url = (not job.video_url and not job.video_id and selection.video_url
                     and not url_usable(selection.video_url))
        if not (stale_url and selection.seconds_left() <= RESTORE_MARGIN_S):
            client.sessions[selection.session_id] = selection
            return selection
        state.pop("selection")
    if job.video_id:
        init = client.init_selection(video_id=job.video_id)
    else:
        url = job.video_url or state.get("video_url")
        if url and not job.video_url and not url_usable(url):
            url = None  # a presigned URL saved by an interrupted run that expires too soon
        if not url:
            if host is None or job.video_path is None:
                raise ValueError("a local clip needs a hosting choice to become a URL")
            emit("publish", {"path": job.video_path})
            url = host.publish(
                job.video_path, on_progress=lambda done, total: emit(
                    "upload_progress", {"done": done, "total": total})
            )
            state["video_url"] = url
            save()
        init = client.init_selection(video_url=url)
    emit("session", {"session_id": init.session_id, "total_frames": init.total_frames,
                     "fps": init.fps})
    _charge(state, emit, "init-selection", init.cost, session_id=init.session_id)
    save()
    selection = client.sessions[init.session_id]
    if selection.frame_size is None and job.video_path and not job.video_id:
        selection.height, selection.width = clip_frame_size(job.video_path) or (None, None)
    for frame, points in job.selections:
        with _restores_charged(state, emit, selection):
            result = client.add_selection(init.session_id, frame, list(points))
        emit("selection", {"frame_index": frame, "objects": len(result.masks)})
        _charge(state, emit, "add-selection", result.cost, frame_index=frame)
    state["selection"] = selection.to_dict()
    save()
    return selection


@contextmanager
def _restores_charged(state: dict[str, Any], emit: EventCallback,
                      selection: SelectionState) -> Iterator[None]:
    """Record in the ledger every restore the client made of ``selection`` in the block."""
    restores, restore_spent = selection.restores, selection.restore_spent
    try:
        yield
    finally:
        if selection.restores > restores:
            _charge(state, emit, "restore", selection.restore_spent - restore_spent,
                    count=selection.restores - restores, session_id=selection.session_id)
            state["selection"] = selection.to_dict()


def _create(client: Client, job: EditJob, host: Host | None, state: dict[str, Any],
            save: Callable[[], None], emit: EventCallback, wait_timeout: float,
            callback_url: str | None, hooks: EditHooks) -> Task:
    selection = _session(client, job, host, state, save, emit)
    body = client.build_task_body(
        session_id=selection.session_id, edit_mode=job.edit_mode, prompt=job.prompt,
        images=list(job.images), negative_prompt=job.negative_prompt, mode=job.mode,
        duration=job.duration, watermark=job.watermark, model_name=job.model_name,
        external_task_id=state["external_task_id"], callback_url=callback_url,
    )
    state["task_kind"] = {"mode": body.get("mode"), "duration": body.get("duration")}
    save()
    # All of the account's task slots taken (1303) clears as running tasks end: wait for one
    # as long as the task itself may take, rather than fail a job that only had to queue.
    hooks.before_create(body)
    # A session that expired or is gone (1203) is restored by the client, and the same body
    # (same external_task_id) posted on the new one.
    with _restores_charged(state, emit, selection):
        task = client.submit_task(body, slot_wait_s=wait_timeout)
    hooks.created(task)
    return task


def run_edit(
    client: Client,
    job: EditJob,
    *,
    host: Host | None = None,
    state_path: str | os.PathLike | None = None,
    wait_timeout: float = 1800.0,
    on_event: EventCallback | None = None,
    overwrite: bool = False,
    callback_url: str | None = None,
    inbox: TaskInbox | None = None,
    hooks: EditHooks | None = None,
) -> EditResult:
    """Run (or resume) ``job`` to a downloaded result file; events report each step.

    ``overwrite`` allows replacing result files that exist at the output paths (else such a
    job is refused with a ``ValidationError`` before anything is sent). ``callback_url``
    goes into the create body (Kling POSTs status changes there); ``inbox`` (the receiver
    behind that URL, see ``kling_elements.callbacks``) lets the wait end on the final
    delivery instead of polling. Neither is part of the job: a resumed run may differ.
    ``hooks`` let a scheduler hold the create and follow the task (see :class:`EditHooks`).
    """
    hooks = hooks or EditHooks()
    with observe_retries(hooks.retried):
        path = Path(state_path) if state_path else None
        state = _load_state(path, job)
        _check_outputs(job, state, overwrite)
        _check_job(job, state)

        def save() -> None:
            _save_state(path, state)

        def emit(kind: str, info: dict[str, Any]) -> None:
            if on_event:
                on_event(kind, info)

        task: Task | None = None
        if state.get("external_task_id"):
            try:
                task = client.get_task(state["external_task_id"])
                hooks.resumed(task)
                emit("resumed", {"task_id": task.task_id, "status": task.status})
            except NotFoundError:
                task = None
        if task is None:
            state.setdefault("external_task_id", f"ke-{uuid.uuid4().hex}")
            save()
            task = _create(client, job, host, state, save, emit, wait_timeout, callback_url,
                           hooks)
            emit("created", {"task_id": task.task_id, "external_task_id": task.external_task_id})
        state["task_id"] = task.task_id
        _charge_task(state, emit, task)
        save()

        def on_update(current: Task) -> None:
            emit("status", {"status": current.status})
            _charge_task(state, emit, current)

        if not task.done:
            ended: Task | None = None
            try:
                ended = task = client.wait(
                    task.task_id, timeout=wait_timeout, on_update=on_update,
                    **({"inbox": inbox} if inbox is not None else
                       {"poll_interval": hooks.poll_interval()}))
            finally:
                hooks.waited(ended)
            _charge_task(state, emit, task)
            save()
        elif task.status == "failed":
            raise TaskFailedError(
                f"task {task.task_id} failed: {task.status_msg or 'no reason given'}", task=task
            )
        if not task.videos:
            raise ResponseFormatError(f"task {task.task_id} succeeded but lists no result video")
        video = task.videos[0]
        output = Path(job.output)
        progress = lambda done, total: emit("download_progress", {"done": done, "total": total})  # noqa: E731
        # From here on a file at an output path is this job's (it appears only complete), so a
        # resumed run keeps it instead of refusing it.
        ours = bool(state.get("downloading") or state.get("done"))
        if not state.get("downloading"):
            state["downloading"] = True
            save()

        def fetch(url: str, dest: Path) -> None:
            if ours and not overwrite and os.path.lexists(dest):
                return
            client.download(url, dest, on_progress=progress, overwrite=overwrite)

        fetch(video.url, output)
        watermarked = None
        if job.watermark and video.watermark_url:
            watermarked = _watermarked_path(output)
            fetch(video.watermark_url, watermarked)
        state["done"] = True
        state["video_id"] = video.id
        save()
        ledger = _ledger(state)
        emit("done", {"output": str(output), "video_id": video.id, "cost": ledger.total()})
        return EditResult(task=task, output=output, watermarked_output=watermarked,
                          cost=ledger.total(), cost_steps=ledger.steps())

