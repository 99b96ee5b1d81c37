"""Conform in the add-on: a movie strip's visible range, rendered by a background Blender.

The plan itself (frame rate, size, window, refusals, output name, record) is the core's
(``kling_elements.conform``) and is re-exported here, so the add-on, the CLI and batch share
one source of truth. This module keeps what is Blender's: which file frames a strip shows
(:func:`visible_file_frames`, read with the same ``mapping`` as the session's clicks), where
conformed clips go, the command line of the render child (``child/conform_render.py``) and
:class:`ConformRender`, which runs it (as a long job's work) and reports progress. No
``bpy`` here: everything is testable with plain pytest.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import uuid
from collections import deque
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from kling_elements.conform import (
    DEFAULT_PRESET,
    DEFAULT_QUALITY,
    DURATION_CHOICES,
    RECORD_SUFFIX,
    RECORD_VERSION,
    ConformCancelled,
    ConformError,
    ConformPlan,
    SourceClip,
    conform_size,
    duration_options,
    nearest_fps,
    needs_conform,
    plan_conform,
    read_record,
    write_record,
)

from ..child.protocol import DONE, ERROR, PROGRESS
from ..pure import mapping

__all__ = [
    "DEFAULT_PRESET",
    "DEFAULT_QUALITY",
    "DURATION_CHOICES",
    "RECORD_SUFFIX",
    "RECORD_VERSION",
    "ConformCancelled",
    "ConformError",
    "ConformPlan",
    "ConformRender",
    "SourceClip",
    "StripTimes",
    "conform_dir",
    "conform_size",
    "duration_options",
    "nearest_fps",
    "needs_conform",
    "plan_conform",
    "read_record",
    "render_command",
    "visible_file_frames",
]

RENDER_SCRIPT = str(Path(__file__).parent.parent / "child" / "conform_render.py")


# ------------------------------------------------------------------ what the strip shows


@dataclass(frozen=True)
class StripTimes:
    """A movie strip's timing as RNA reports it (see ``mapping`` for the conventions).

    ``frame_duration`` means different things across versions for a strip Blender retimes
    ("Adjust Playback Rate"): 4.2 reports the file's frames, 5.0 the timeline length; the
    timeline length is always ``final duration + both frame offsets``. ``file_frames`` is the
    movie's frame count when known (the MP4 index), which settles the question.
    """

    frame_start: float
    frame_final_start: int
    frame_final_end: int
    frame_offset_start: float
    frame_offset_end: float
    frame_duration: int
    animation_offset_start: int
    animation_offset_end: int
    scene_fps: float
    source_fps: float
    file_frames: int | None = None


def visible_file_frames(times: StripTimes) -> tuple[int, int]:
    """``(first, count)``: the file frames the strip shows between its handles, in order.

    Computed with the same ``mapping`` functions the session's frame mapping uses, so a
    conformed clip and the clicks on the strip agree on which file frame is which.
    """
    timeline = round(times.frame_final_end - times.frame_final_start
                     + times.frame_offset_start + times.frame_offset_end)
    if times.file_frames:
        content = times.file_frames - times.animation_offset_start - times.animation_offset_end
    elif abs(times.frame_duration - timeline) > 1:
        content = times.frame_duration  # 4.2 reports the file's frames of a retimed strip
    else:
        content = timeline  # unknown file length: read as a strip Blender does not retime
    try:
        retimed = mapping.infer_auto_playback_rate(timeline, max(content, 1),
                                                   times.source_fps, times.scene_fps)
        timing = mapping.StripTiming(
            frame_start=times.frame_start,
            frame_final_start=times.frame_final_start,
            frame_final_end=times.frame_final_end,
            scene_fps=times.scene_fps,
            source_fps=times.source_fps,
            auto_playback_rate=retimed,
            animation_offset_start=times.animation_offset_start,
            content_frames=max(content, 1),
        )
    except ValueError as exc:
        raise ConformError(f"cannot tell which frames the strip shows: {exc}") from None
    first = mapping.scene_to_source_frame(timing, times.frame_final_start)
    last = mapping.scene_to_source_frame(timing, times.frame_final_end - 1)
    assert first is not None and last is not None  # the handles are inside the strip
    return first, last - first + 1


def conform_dir(blend_path: str, unsaved_root: str) -> str:
    """Where conformed clips go: ``kling/conformed`` beside the .blend, else ``conformed``
    under the add-on's folder for an unsaved .blend, which the first save moves to
    ``kling/`` beside it (so the clip lands in ``kling/conformed`` either way).

    (Not Blender's per-session temp dir: that is deleted when Blender quits, and the strip
    keeps pointing at the file.)
    """
    if blend_path:
        return str(Path(blend_path).resolve().parent / "kling" / "conformed")
    return str(Path(unsaved_root) / "conformed")


# ------------------------------------------------------------------ the render process


def render_command(script: str, args: dict[str, Any], *, blender_binary: str = "",
                   python: str = sys.executable) -> list[str]:
    """The command line that runs ``script`` with ``args`` in a background Blender.

    A real Blender (``bpy.app.binary_path``) runs it with ``--background --factory-startup``
    and no user add-ons. Blender built as a Python module reports an empty binary path (unless
    a script set one); then the Python that imported ``bpy`` runs the script, which imports
    ``bpy`` itself.
    """
    payload = json.dumps(args)
    if (blender_binary and os.path.isfile(blender_binary)
            and os.path.realpath(blender_binary) != os.path.realpath(python)):
        return [blender_binary, "--background", "--factory-startup", "-noaudio",
                "--python-exit-code", "1", "--python", script, "--", payload]
    return [python, script, payload]


class ConformRender:
    """One conform render in a child process, run by ``run`` on a thread that may block.

    Thread safety: ``run`` is called once, on one thread; ``progress``, ``state`` and
    ``cancel`` may be called from any other (plain attribute reads/writes of immutable
    values). Guarantee: when ``run`` returns, ``plan.output`` and its record exist and are
    complete; when it raises, the temporary movie is gone (whether the child failed, crashed
    or was cancelled), and ``plan.output``, if it exists, is a whole file (the child only
    ever renames a finished movie into place).
    """

    def __init__(self, plan: ConformPlan, *, blender_binary: str = "",
                 python: str = sys.executable, script: str = RENDER_SCRIPT) -> None:
        self.plan = plan
        self.progress: tuple[int, int] = (0, plan.frame_count)
        self.state = "queued"  # queued -> running -> done | failed | cancelled
        self._binary, self._python, self._script = blender_binary, python, script
        self._process: subprocess.Popen[str] | None = None
        self._cancelled = False
        self._lock = threading.Lock()

    @property
    def fraction(self) -> float:
        done, total = self.progress
        return min(done / total, 1.0) if total else 0.0

    def cancel(self) -> None:
        """Stop the render (or keep it from starting); ``run`` then raises ConformCancelled."""
        with self._lock:
            self._cancelled = True
            process = self._process
        if process is not None and process.poll() is None:
            process.terminate()

    def run(self) -> str:
        """Render (unless this plan's file already exists); return the output path."""
        plan = self.plan
        record = read_record(plan.output)
        # The record names where the clip was first written; a clip moved beside the .blend
        # on save (with its record) is still this plan's result.
        if record is not None and os.path.isfile(plan.output) \
                and replace(record, output=plan.output) == plan:
            self.progress, self.state = (plan.frame_count, plan.frame_count), "done"
            return plan.output
        Path(plan.output).parent.mkdir(parents=True, exist_ok=True)
        tmp = str(Path(plan.output).with_name(
            f"{Path(plan.output).stem}.{uuid.uuid4().hex[:8]}.part.mp4"))
        command = render_command(self._script, plan.render_args(tmp),
                                 blender_binary=self._binary, python=self._python)
        try:
            self._render(command)
            write_record(plan)
        except BaseException as exc:
            self.state = "cancelled" if isinstance(exc, ConformCancelled) else "failed"
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        self.state = "done"
        return plan.output

    def _render(self, command: list[str]) -> None:
        tail: deque[str] = deque(maxlen=12)
        error = ""
        done_path = ""
        with self._lock:
            if self._cancelled:
                raise ConformCancelled("conform cancelled")
            self.state = "running"
            try:
                self._process = subprocess.Popen(
                    command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT, text=True, encoding="utf-8", errors="replace",
                    bufsize=1, creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0))
            except OSError as exc:
                raise ConformError(f"cannot start the background render ({command[0]}): "
                                   f"{exc}") from None
        process = self._process
        assert process.stdout is not None
        with process:
            for raw in process.stdout:
                line = raw.rstrip("\n")
                if line.startswith(PROGRESS + " "):
                    parts = line.split()
                    if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
                        self.progress = (int(parts[1]), int(parts[2]))
                elif line.startswith(DONE + " "):
                    done_path = line[len(DONE) + 1:]
                elif line.startswith(ERROR + " "):
                    error = line[len(ERROR) + 1:]
                elif line.strip():
                    tail.append(line)
            status = process.wait()
        if self._cancelled:
            raise ConformCancelled("conform cancelled")
        if status != 0 or not done_path:
            detail = error or " | ".join(tail) or "no output"
            raise ConformError(f"the background render failed (exit status {status}): {detail}")
        if os.path.abspath(done_path) != os.path.abspath(self.plan.output) or not \
                os.path.isfile(self.plan.output):
            raise ConformError(f"the background render reported {done_path!r}, expected "
                               f"{self.plan.output!r}")
