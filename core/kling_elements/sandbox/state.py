"""Everything the sandbox remembers: sessions, tasks, result videos, served files, the clock.

All times are *sandbox clock* seconds (``Clock.now()`` = real time + an offset that only
``/sandbox/clock`` moves, forwards). One re-entrant lock guards the registries; a session
additionally has its own lock so selection edits of one session are serialized without
blocking the others during the (slow) segmentation. Nothing here does HTTP.
"""

from __future__ import annotations

import hashlib
import queue
import secrets
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..validate import RESULT_TTL_S, SESSION_TTL_S
from .billing import Billing
from .config import ApiError
from .faults import FaultBook

__all__ = [
    "Clock", "FrameCache", "Normalized", "NormalizedCache", "OutputCache", "Preview",
    "ResultVideo", "Session", "State", "Task", "TrackCache", "file_digest",
]


class Clock:
    """Real time plus an offset; ``advance`` only moves forwards and notifies listeners."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._offset = 0.0
        self._listeners: list[Callable[[], None]] = []

    def now(self) -> float:
        with self._lock:
            return time.time() + self._offset

    @property
    def offset(self) -> float:
        with self._lock:
            return self._offset

    def advance(self, seconds: float) -> float:
        """Move the clock ``seconds`` (>= 0) forwards; return the new ``now()``."""
        if seconds < 0:
            raise ValueError("the sandbox clock only moves forwards")
        with self._lock:
            self._offset += seconds
            listeners = list(self._listeners)
        for listener in listeners:
            listener()
        return self.now()

    def on_change(self, listener: Callable[[], None]) -> None:
        with self._lock:
            self._listeners.append(listener)


@dataclass
class Preview:
    """The tracking of one selection version and the files made from it.

    The masks are kept bit-packed (8x smaller: a 10 s 60 fps 720p tracking is ~70 MB, not
    550 MB); :meth:`masks` unpacks them.
    """

    version: int
    packed: np.ndarray  # np.packbits of the (n, h, w) bool masks along the last axis
    width: int
    video: str  # file names under /sandbox/files
    cover: str
    tracking: str

    @classmethod
    def of(cls, version: int, masks: np.ndarray, video: str, cover: str, tracking: str
           ) -> Preview:
        return cls(version, np.packbits(masks, axis=-1), masks.shape[-1], video, cover, tracking)

    def masks(self) -> np.ndarray:
        return np.unpackbits(self.packed, axis=-1, count=self.width).astype(bool)


@dataclass(eq=False)
class Session:
    """One init-selection: the normalized video and the points marked on its frames.

    ``points`` keeps every frame's points exactly as received (delete compares bits);
    ``masks`` the union mask of each marked frame (the key masks for tracking);
    ``version`` increments on every change, keying the preview cache.
    """

    id: str
    created_at: float
    video_path: Path
    video_name: str
    fps: float
    width: int
    height: int
    total_frame: int
    duration_s: float
    original_duration: int
    points: dict[int, list[tuple[float, float]]] = field(default_factory=dict)
    masks: dict[int, np.ndarray] = field(default_factory=dict)
    version: int = 0
    preview: Preview | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def expired(self, now: float) -> bool:
        return now >= self.created_at + SESSION_TTL_S

    def forget(self) -> None:
        """Drop the selection's memory (an expired session is only kept to say so)."""
        with self.lock:
            self.points.clear()
            self.masks.clear()
            self.preview = None


@dataclass(eq=False)
class ResultVideo:
    """A video the sandbox generated; its id can start a new session for 30 days."""

    id: str
    session_id: str
    path: Path
    name: str
    watermark_name: str | None
    duration_s: float
    created_at: float


@dataclass(eq=False)
class Task:
    """An edit task; its visible status is derived from the clock (see ``jobs.status_at``)."""

    id: str
    owner: str
    external_task_id: str
    session_id: str
    edit_mode: str
    prompt: str
    negative_prompt: str | None
    mode: str
    duration: str
    model_name: str
    watermark: bool
    callback_url: str | None
    created_at: float
    video_path: Path
    images: list[np.ndarray]
    key_masks: dict[int, np.ndarray]
    selection_version: int
    render_finished_at: float | None = None
    render_error: str | None = None
    result: ResultVideo | None = None
    notified: list[str] = field(default_factory=list)


def file_digest(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class Normalized:
    """A normalized copy written by init-selection, reused for a source with the same bytes."""

    path: Path
    fps: float
    frames: int
    height: int
    width: int


class NormalizedCache:
    """Normalized copies by source content: the inits of one clip's bytes (shots of one
    plate), concurrent or later, decode and encode it once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, Normalized] = {}
        self._making: dict[str, threading.Lock] = {}

    def get(self, key: str, make: Callable[[], Normalized]) -> Normalized:
        """The copy for ``key``, made by ``make()`` (once) if there is none yet."""
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                return found
            gate = self._making.setdefault(key, threading.Lock())
        with gate:
            with self._lock:
                found = self._entries.get(key)
            if found is None:
                found = make()
                with self._lock:
                    self._entries[key] = found
                    self._making.pop(key, None)
            return found


class FrameCache:
    """Decoded frames of the few most recently used videos (decoding a clip costs seconds).

    Keyed by the file's content (SHA-256), so the normalized copies of one clip made by
    several sessions are decoded once; files the sandbox writes never change after their
    atomic rename, so each path's digest is computed once. The arrays are shared and must be
    treated as read-only.
    """

    def __init__(self, capacity: int = 2) -> None:
        self._capacity = capacity
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[np.ndarray, float]] = OrderedDict()
        self._loading: dict[str, threading.Lock] = {}
        self._digests: dict[Path, str] = {}

    def key(self, path: Path) -> str:
        """The content digest of ``path``, which names its frames in every cache."""
        with self._lock:
            known = self._digests.get(path)
        if known is None:
            known = file_digest(path)
            with self._lock:
                self._digests[path] = known
        return known

    def get(self, path: Path) -> tuple[np.ndarray, float]:
        from . import video  # the sandbox's decoder (PyAV)

        key = self.key(path)
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
            loading = self._loading.setdefault(key, threading.Lock())
        with loading:  # one decode per content even when several threads ask at once
            with self._lock:
                if key in self._entries:
                    return self._entries[key]
            frames, fps = video.read_frames(path)
            frames.setflags(write=False)
            with self._lock:
                self._entries[key] = (frames, fps)
                while len(self._entries) > self._capacity:
                    self._entries.popitem(last=False)
                self._loading.pop(key, None)
            return frames, fps


class TrackCache:
    """Tracked masks per (video content, key masks), bit-packed, the few most recent.

    Tracking is deterministic, so tasks with identical selections on the same clip (shots
    of one plate in a batch) share one tracking run; concurrent asks compute it once.
    """

    def __init__(self, capacity: int = 8) -> None:
        self._capacity = capacity
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[np.ndarray, int]] = OrderedDict()
        self._loading: dict[str, threading.Lock] = {}

    @staticmethod
    def key(video_key: str, key_masks: dict[int, np.ndarray]) -> str:
        """The digest naming a tracking: the video's content and the key masks, bit for bit."""
        digest = hashlib.sha256(video_key.encode())
        for frame in sorted(key_masks):
            mask = np.asarray(key_masks[frame], dtype=bool)
            digest.update(f"{frame}:{mask.shape}".encode())
            digest.update(np.packbits(mask).tobytes())
        return digest.hexdigest()

    def get(self, video_key: str, key_masks: dict[int, np.ndarray],
            compute: Callable[[], np.ndarray]) -> np.ndarray:
        """The ``(n, h, w)`` bool masks, from the cache or from ``compute()``."""
        key = self.key(video_key, key_masks)
        with self._lock:
            cached = self._entries.get(key)
            if cached is not None:
                self._entries.move_to_end(key)
            loading = self._loading.setdefault(key, threading.Lock())
        if cached is None:
            with loading:
                with self._lock:
                    cached = self._entries.get(key)
                if cached is None:
                    masks = np.asarray(compute(), dtype=bool)
                    with self._lock:
                        self._entries[key] = (np.packbits(masks, axis=-1), masks.shape[-1])
                        while len(self._entries) > self._capacity:
                            self._entries.popitem(last=False)
                        self._loading.pop(key, None)
                    return masks
        packed, width = cached
        return np.unpackbits(packed, axis=-1, count=width).astype(bool)


class OutputCache:
    """Files the sandbox already made (previews, results), by everything they were made from.

    Drawing, editing and encoding are deterministic, so a request with the same inputs as an
    earlier one (shots of one plate, a client replaying a session) gets a copy of the earlier
    files instead of the same seconds of CPU again: the bytes are the ones a new render
    would write. Keeps the ``capacity`` most recent entries whose files still exist.
    """

    def __init__(self, capacity: int = 16) -> None:
        self._capacity = capacity
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[tuple[Path, ...], dict]] = OrderedDict()

    def get(self, key: str) -> tuple[tuple[Path, ...], dict] | None:
        """``(paths, info)`` stored under ``key``, or ``None``."""
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
        if found is None or not all(path.is_file() for path in found[0]):
            return None
        return found

    def put(self, key: str, paths: tuple[Path, ...], info: dict | None = None) -> None:
        with self._lock:
            self._entries[key] = (paths, dict(info or {}))
            self._entries.move_to_end(key)
            while len(self._entries) > self._capacity:
                self._entries.popitem(last=False)


def _numeric_id() -> str:
    return str(10**17 + secrets.randbelow(9 * 10**17))


class State:
    """The registries. ``render_queue`` feeds the worker; ``wakeup`` nudges the ticker."""

    def __init__(self, data_dir: Path, clock: Clock | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.clock = clock or Clock()
        self.lock = threading.RLock()
        self.sessions: dict[str, Session] = {}
        self.tasks: dict[str, Task] = {}
        self.videos: dict[str, ResultVideo] = {}
        self.created: Counter[str] = Counter()  # create POSTs that made a task, per ext id
        # File GETs served, "range" (a Range header: a resumed download) or "full".
        self.file_requests: Counter[str] = Counter()
        # Every HTTP request that reached the server, as "METHOD /path" (answered or not).
        self.requests: Counter[str] = Counter()
        self.faults = FaultBook()
        self.frames = FrameCache()
        self.tracks = TrackCache()
        self.outputs = OutputCache()
        self.normalized = NormalizedCache()
        self.render_queue: queue.Queue[Task | None] = queue.Queue()
        self.wakeup = threading.Event()
        self.base_url = ""
        self.billing: Billing | None = None  # set by the app, which knows the config
        self._files: dict[str, Path] = {}
        self.clock.on_change(self.wakeup.set)

    # files -------------------------------------------------------------------------
    def new_file(
        self, folder: str, suffix: str, filename: str | None = None
    ) -> tuple[str, Path]:
        """A fresh unguessable name (served at /sandbox/files/<name>) and the path it maps to.

        The path is ``data_dir/folder/filename`` (``filename`` defaults to the name).
        """
        name = secrets.token_urlsafe(18) + suffix
        directory = self.data_dir / folder
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / (filename or name)
        with self.lock:
            self._files[name] = path
        return name, path

    def file_path(self, name: str) -> Path | None:
        with self.lock:
            return self._files.get(name)

    def file_url(self, name: str, base_url: str | None = None) -> str:
        return f"{(base_url or self.base_url).rstrip('/')}/sandbox/files/{name}"

    # ids ---------------------------------------------------------------------------
    @staticmethod
    def new_session_id() -> str:
        """18 digits, like the session ids in Kling's examples (and its task ids)."""
        return _numeric_id()

    @staticmethod
    def new_numeric_id() -> str:
        return _numeric_id()

    # sessions ----------------------------------------------------------------------
    def add_session(self, session: Session) -> None:
        with self.lock:
            self.sessions[session.id] = session

    def purge_expired(self) -> None:
        """Free the memory of expired sessions (their ids keep answering "expired")."""
        now = self.clock.now()
        with self.lock:
            stale = [s for s in self.sessions.values()
                     if (s.points or s.preview is not None) and s.expired(now)]
        for session in stale:
            session.forget()

    def session(self, session_id: object) -> Session:
        """The live session, or 1203 (unknown or older than 24 h)."""
        if not isinstance(session_id, str) or not session_id:
            raise ApiError(1201, "session_id is required: pass the id init-selection returned")
        with self.lock:
            found = self.sessions.get(session_id)
        if found is None:
            raise ApiError(1203, f"session {session_id!r} does not exist")
        if found.expired(self.clock.now()):
            raise ApiError(1203, f"session {session_id!r} expired (sessions last 24 h)")
        return found

    # result videos -----------------------------------------------------------------
    def add_video(self, result: ResultVideo) -> None:
        with self.lock:
            self.videos[result.id] = result

    def video(self, video_id: str) -> ResultVideo:
        """A generated video younger than 30 days, or 1203."""
        with self.lock:
            found = self.videos.get(video_id)
        if found is None:
            raise ApiError(1203, f"video_id {video_id!r} is not a video the sandbox generated")
        if self.clock.now() >= found.created_at + RESULT_TTL_S:
            raise ApiError(1203, f"video_id {video_id!r} expired (results last 30 days)")
        return found

    # tasks -------------------------------------------------------------------------
    def add_task(self, task: Task) -> None:
        with self.lock:
            self.tasks[task.id] = task
            self.created[task.external_task_id] += 1
        self.render_queue.put(task)
        self.wakeup.set()

    def find_task(self, owner: str, ident: str) -> Task | None:
        """By task_id, else by external_task_id, among ``owner``'s tasks only."""
        with self.lock:
            task = self.tasks.get(ident)
            if task is not None and task.owner == owner:
                return task
            for task in self.tasks.values():
                if task.owner == owner and task.external_task_id and task.external_task_id == ident:
                    return task
        return None

    def tasks_of(self, owner: str) -> list[Task]:
        """``owner``'s tasks, newest first."""
        with self.lock:
            mine = [t for t in self.tasks.values() if t.owner == owner]
        return mine[::-1]

    def all_tasks(self) -> list[Task]:
        with self.lock:
            return list(self.tasks.values())
