"""Background work: the render workers, the status ticker and callback deliveries.

Daemon threads, started and stopped together by :class:`Jobs`:

* the **workers** (as many as tasks may run at once, at most ``MAX_RENDER_WORKERS`` to
  bound memory) render queued tasks (track, then remove/swap/add, then write the result
  MP4 and, if asked, a watermarked copy; a task with the inputs of an earlier one gets
  copies of its files), recording the outcome and the sandbox time it finished; a render
  that raises makes the task ``failed`` with the reason;
* the **ticker** wakes every ~50 ms and whenever the clock moves or a task is created, and
  for each task with a ``callback_url`` queues one callback per status it reached since the
  last look, in order (``submitted``, ``processing``, then ``succeed``/``failed``), even when
  a clock jump skipped over a status; it also frees the memory of expired sessions;
* the **callback sender** (``webhooks``) POSTs them, signed, in each configured format,
  retrying a failing receiver a few times and obeying ``callback`` fault rules.
"""

from __future__ import annotations

import hashlib
import logging
import threading

import numpy as np

from . import video, vision
from .config import SandboxConfig
from .selection import copy_file, tracking
from .state import ResultVideo, State, Task
from .tasks import SUBMITTED_FRACTION, status_at
from .webhooks import WebhookSender

__all__ = ["RESULT_EXTRA_FRAMES", "Jobs", "render", "result_frames"]

log = logging.getLogger("kling_elements.sandbox")
TICK_S = 0.05
MAX_RENDER_WORKERS = 4
# Kling's results run a few frames over the duration asked for; so do the sandbox's.
RESULT_EXTRA_FRAMES = 3
_ORDER = ("submitted", "processing")


def _render_key(state: State, task: Task) -> str:
    """Everything a result is made from: clip content, key masks, mode, images, watermark."""
    digest = hashlib.sha256(state.tracks.key(state.frames.key(task.video_path),
                                             task.key_masks).encode())
    digest.update(f"{task.edit_mode}:{task.watermark}:{task.duration}".encode())
    for image in task.images:
        digest.update(f"{image.shape}".encode())
        digest.update(np.ascontiguousarray(image).tobytes())
    return "render:" + digest.hexdigest()


def render(state: State, task: Task) -> ResultVideo:
    """Produce the task's result video (and watermarked copy); register it; return it.

    A task made from the same inputs as an earlier one (``_render_key``) gets copies of the
    earlier files: the edit is deterministic, so they are the bytes a new render would write.
    """
    folder = f"tasks/{task.id}"
    name, path = state.new_file(folder, ".mp4", "result.mp4")
    watermark_name = watermark_path = None
    if task.watermark:
        watermark_name, watermark_path = state.new_file(folder, ".mp4", "watermarked.mp4")
    targets = (path,) if watermark_path is None else (path, watermark_path)
    key = _render_key(state, task)
    made = state.outputs.get(key)
    if made is not None:
        for source, target in zip(made[0], targets, strict=True):
            copy_file(source, target)
        duration_s = made[1]["duration_s"]
    else:
        out, fps = _edit(state, task)
        video.write_mp4(path, out, fps)
        if watermark_path is not None:
            video.write_mp4(watermark_path, vision.watermark(out), fps)
        duration_s = len(out) / fps
        state.outputs.put(key, targets, {"duration_s": duration_s})
    result = ResultVideo(
        id=state.new_numeric_id(), session_id=task.session_id, path=path, name=name,
        watermark_name=watermark_name, duration_s=duration_s, created_at=state.clock.now(),
    )
    state.add_video(result)
    return result


def _edit(state: State, task: Task) -> tuple[np.ndarray, float]:
    """The edited frames (track, then remove/swap/add) and the frame rate."""
    frames, fps = state.frames.get(task.video_path)
    masks = None
    if task.key_masks:
        with state.lock:
            session = state.sessions[task.session_id]
        masks = state.tracks.get(
            state.frames.key(task.video_path), task.key_masks,
            lambda: tracking(state, session, task.key_masks, task.selection_version),
        )
    reference = task.images[0] if task.images else None
    if task.edit_mode == "removal":
        out = vision.remove(frames, masks)
    elif task.edit_mode == "swap":
        out = vision.swap(frames, masks, reference)
    else:
        out = vision.add(frames, masks, reference)
    return result_frames(np.asarray(out), fps, task.duration), fps


def result_frames(frames: np.ndarray, fps: float, duration: str) -> np.ndarray:
    """The edited frames cut to the task's ``duration``, the way Kling's results are long.

    An input at least that long gives ``duration`` seconds plus ``RESULT_EXTRA_FRAMES``
    (taken from the input, or the last frame held where it ends): a 10 s input with "5" gives
    5 s and a few frames, a 5 s input with "5" a few frames over 5 s. A shorter input (a 3 s
    clip with "5") keeps its length.
    """
    wanted = round(float(duration) * fps)
    if len(frames) < wanted:
        return frames
    total = wanted + RESULT_EXTRA_FRAMES
    if len(frames) >= total:
        return frames[:total]
    held = np.repeat(frames[-1:], total - len(frames), axis=0)
    return np.concatenate([frames, held])


def _updated_at(task: Task, status: str, task_seconds: float, final_at: float) -> float:
    if status == "submitted":
        return task.created_at
    if status == "processing":
        return task.created_at + SUBMITTED_FRACTION * task_seconds
    return final_at


class Jobs:
    """The render workers, ticker and deliverer threads of one sandbox."""

    def __init__(self, state: State, config: SandboxConfig) -> None:
        self.state = state
        self.config = config
        self._stop = threading.Event()
        self.webhooks = WebhookSender(state, config)
        self._workers = max(1, min(config.max_concurrent_tasks, MAX_RENDER_WORKERS))
        self._threads = [
            *(threading.Thread(target=self._work, name="sandbox-render", daemon=True)
              for _ in range(self._workers)),
            threading.Thread(target=self._tick, name="sandbox-ticker", daemon=True),
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()
        self.webhooks.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop all threads (a render in progress is finished first, up to ``timeout``)."""
        self._stop.set()
        for _ in range(self._workers):
            self.state.render_queue.put(None)
        self.state.wakeup.set()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout)
        self.webhooks.stop()

    # worker --------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            task = self.state.render_queue.get()
            if task is None or self._stop.is_set():
                return
            if task.render_finished_at is not None:  # refused up front (the [[fail]] marker)
                continue
            result, error = None, None
            try:
                result = render(self.state, task)
            except Exception as exc:
                log.exception("render of task %s failed", task.id)
                error = f"render failed: {exc.__class__.__name__}: {exc}"
            with self.state.lock:
                task.result, task.render_error = result, error
                task.render_finished_at = self.state.clock.now()
                task.images, task.key_masks = [], {}  # inputs are not needed any more
            self.state.wakeup.set()

    # ticker --------------------------------------------------------------------------
    def _tick(self) -> None:
        while not self._stop.is_set():
            self.state.wakeup.wait(TICK_S)
            self.state.wakeup.clear()
            self.state.purge_expired()
            now = self.state.clock.now()
            for task in self.state.all_tasks():
                if task.callback_url and len(task.notified) < 3:
                    self._queue_callbacks(task, now)

    def _queue_callbacks(self, task: Task, now: float) -> None:
        seconds = self.config.task_seconds
        with self.state.lock:
            status, updated = status_at(task, now, seconds)
            reached = [*_ORDER[: _ORDER.index(status) + 1]] if status in _ORDER else [
                *_ORDER, status]
            steps = reached[len(task.notified):]
            task.notified.extend(steps)
        for step in steps:
            self.webhooks.queue(task, step, _updated_at(task, step, seconds, updated))
