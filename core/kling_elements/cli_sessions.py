"""What the CLI's ``init`` learnt about a session, remembered for the commands that follow.

Each ``kling-elements`` command is a process of its own, so a ``create`` after a separate
``init`` would not know the session's input length, and Kling, given no ``duration``, makes
a 5 s result (cutting a 7-10 s input). ``init`` records the session's facts (length, frame
count and rate, frame size; no key, no URL) in the user cache folder and ``create`` reads
them back. A record lives as long as its session (24 h); expired ones are removed whenever
a record is written. A missing or unreadable record only means "unknown": the caller then
asks the user.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from .atomic import write_json_atomic
from .hosting import default_cache_dir
from .models import InitResult
from .validate import SESSION_TTL_S

__all__ = ["SessionRecord", "default_folder", "load", "save"]


@dataclass(frozen=True)
class SessionRecord:
    """The facts of one session that later commands need."""

    session_id: str
    duration_s: float
    fps: float
    total_frames: int
    width: int
    height: int
    started_at: float

    @classmethod
    def of(cls, init: InitResult, now: float | None = None) -> SessionRecord:
        return cls(init.session_id, init.duration_s, init.fps, init.total_frames, init.width,
                   init.height, time.time() if now is None else now)


def default_folder() -> Path:
    return default_cache_dir() / "sessions"


def _path(folder: Path, session_id: str) -> Path:
    # Session ids come from the server: hashed, they are always a safe file name.
    return folder / (hashlib.sha256(session_id.encode()).hexdigest()[:32] + ".json")


def save(record: SessionRecord, folder: Path | None = None) -> Path:
    """Write ``record`` atomically (mode 0600) and remove records of expired sessions."""
    folder = folder or default_folder()
    folder.mkdir(parents=True, exist_ok=True)
    _prune(folder, record.started_at)
    target = _path(folder, record.session_id)
    write_json_atomic(target, asdict(record), indent=None)
    return target


def load(session_id: str, folder: Path | None = None,
         now: float | None = None) -> SessionRecord | None:
    """The record of a live session ``init`` started, or ``None`` (unknown, expired, damaged)."""
    path = _path(folder or default_folder(), session_id)
    try:
        data = json.loads(path.read_text())
        record = SessionRecord(**data)
    except (OSError, ValueError, TypeError):
        return None
    if record.session_id != session_id:
        return None
    if (time.time() if now is None else now) >= record.started_at + SESSION_TTL_S:
        return None
    return record


def _prune(folder: Path, now: float) -> None:
    for path in folder.glob("*.json"):
        with contextlib.suppress(OSError):
            if path.stat().st_mtime + SESSION_TTL_S <= now:
                path.unlink()
