"""Conformed clips cached by content, for batch: a resumed or sharded run never renders twice.

A manifest line with ``"conform": true`` (and maybe ``"range": [start, end]``) is planned
when the manifest is validated (:func:`conform_target`): refusals are manifest problems,
found by ``--dry-run`` like any other. The clip's name is a digest of the source's bytes
(SHA-256) and of every number of the plan, so the same plate and span give the same file on
every machine and in every run, wherever the plate lives; a file with that name and its
record *is* that result (it only ever appears complete), and is reused as it is.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .plan import ConformPlan, read_record
from .render import CancelCheck, ProgressCallback, render
from .run import duration_choice, prepare
from .source import Mark

__all__ = ["CACHE_FOLDER", "ConformTarget", "conform_target", "content_key"]

CACHE_FOLDER = Path(".state") / "conformed"

_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def content_key(source_sha256: str, plan: ConformPlan) -> str:
    """The cache name of ``plan``'s result for a source with these bytes."""
    numbers = [plan.first_frame, plan.last_frame, plan.frame_count, plan.width, plan.height,
               plan.fps, plan.source_fps, plan.quality, plan.preset,
               list(plan.frame_map) if plan.frame_map is not None else None]
    text = json.dumps([source_sha256, numbers])
    return hashlib.sha256(text.encode()).hexdigest()[:24]


@dataclass(frozen=True)
class ConformTarget:
    """A planned conform of one manifest line: render once, then reuse by ``key``."""

    key: str
    plan: ConformPlan

    def path(self, out_dir: str | os.PathLike) -> Path:
        return Path(out_dir) / CACHE_FOLDER / f"{self.key}.mp4"

    def ready(self, out_dir: str | os.PathLike) -> bool:
        path = self.path(out_dir)
        return path.is_file() and read_record(path) is not None

    def ensure(self, out_dir: str | os.PathLike, *, on_progress: ProgressCallback | None = None,
               cancel: CancelCheck = None) -> tuple[Path, bool]:
        """``(path, rendered)``: the conformed clip, rendered now unless already there.

        Jobs sharing a plate and span wait for one render instead of making two.
        """
        path = self.path(out_dir)
        with _locks_guard:
            lock = _locks.setdefault(str(path), threading.Lock())
        with lock:
            if self.ready(out_dir):
                return path, False
            render(replace(self.plan, output=str(path)), on_progress=on_progress,
                   cancel=cancel)
            return path, True


def conform_target(path: str | os.PathLike, span: Any, duration: Any
                   ) -> tuple[ConformTarget | None, list[str]]:
    """Plan a manifest line's conform (nothing rendered); ``(target, problems)``.

    ``span`` is the ``range`` field (``None`` or ``[start, end]``, each seconds or
    ``"f<frame>"``, ``end`` may be ``null``); ``duration`` the line's ``duration`` field.
    """
    from ..hosting.base import content_sha256

    start = end = None
    if span is not None:
        if not isinstance(span, list) or len(span) != 2:
            return None, [f"range {span!r} must be [start, end]: seconds or \"f<frame>\" each, "
                          "e.g. [2.5, 8] or [\"f60\", null] (end excluded; null: the clip's end)"]
        try:
            start = Mark.of(span[0]) if span[0] is not None else None
            end = Mark.of(span[1]) if span[1] is not None else None
        except ValueError as exc:
            return None, [f"range: {exc}"]
    choice = "AUTO" if duration is None else duration
    try:
        prepared = prepare(path, duration=duration_choice(choice), start=start, end=end,
                           out_dir=".")
    except ImportError as exc:
        return None, [str(exc)]
    except ValueError as exc:
        return None, [_in_manifest_terms(str(exc))]
    try:
        sha = content_sha256(path)
    except OSError as exc:
        return None, [f"video {str(path)!r} cannot be read ({exc.strerror}): check the file"]
    plan = prepared.plan
    return ConformTarget(content_key(sha, plan), plan), []


def _in_manifest_terms(message: str) -> str:
    return (message.replace("widen --start/--end", "widen range")
            .replace("--start", "range start").replace("--end", "range end"))


def progress_events(emit: Callable[[str, dict[str, Any]], None]) -> ProgressCallback:
    """A progress callback that reports ``conform_progress`` events (every 5%)."""
    shown = [-1]

    def on_progress(done: int, total: int) -> None:
        step = 20 * done // total
        if step != shown[0]:
            shown[0] = step
            emit("conform_progress", {"done": done, "total": total})

    return on_progress
