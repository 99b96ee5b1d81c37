"""The Kling calls of a selection session, run by worker jobs: plain functions, no ``bpy``.

Each takes what the main thread read from Blender (settings, the strip's stored selection
as a dict) and returns plain data for the main thread to store. One client per settings is
cached; clicks run one at a time on the interactive worker, so the client's per-session
memory (the exact points sent) is always the latest and queued clicks never overwrite
each other's results. ``start_session`` runs on a long-job thread (an upload can take
minutes); no click reaches a session before it exists, nor a strip while it is replaced.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from kling_elements import Client, KlingError, SelectionState
from kling_elements.hosting import HostingSettings, UrlHost, make_host

from ..pure.settings import ClientSettings
from .online import GATE
from .overlay_cache import Prepared, overlay_key, prepare
from .worker import JobCancelled

__all__ = ["Progress", "SelectionAnswer", "SessionSource", "add_points", "clear_points",
           "delete_points", "retries_reported_to", "selection_answer", "start_session",
           "test_connection"]

_clients: dict[ClientSettings, Client] = {}


class Progress:
    """How far a long job is, written by its thread and read by the panel's redraw.

    Either bytes done (``update``) or a phase with the time spent in it (``say``, for a
    wait whose end nobody knows, such as a free task slot). Values are assigned whole, so
    reading them from another thread under the GIL is safe; the panel only ever shows a
    slightly old value.
    """

    def __init__(self, label: str) -> None:
        self.label = label
        self.done = 0
        self.total: int | None = None
        self.note = ""
        self.since = time.monotonic()

    def update(self, done: int, total: int | None) -> None:
        self.done, self.total = done, total

    def say(self, note: str) -> None:
        if note != self.note:
            self.note, self.since = note, time.monotonic()

    def text(self) -> str:
        if self.note:
            seconds = int(time.monotonic() - self.since)
            return f"{self.label}: {self.note} ({seconds // 60}:{seconds % 60:02d})"
        if not self.total:
            return f"{self.label}… {self.done / 2**20:.1f} MB"
        return f"{self.label}… {100 * self.done / self.total:.0f}%"


_retry_listener = threading.local()


def _report_retry(error: KlingError, wait_s: float) -> None:
    """Every cached client's ``on_retry``: tells the listener of the thread that retries."""
    listener = getattr(_retry_listener, "callback", None)
    if listener is not None:
        listener(error, wait_s)


@contextmanager
def retries_reported_to(callback: Callable[[KlingError, float], None]) -> Iterator[None]:
    """Within the block, the calling thread's retries (1303 slot waits too) go to ``callback``.

    Clients are shared between threads, so the listener is per thread, not per client.
    """
    previous = getattr(_retry_listener, "callback", None)
    _retry_listener.callback = callback
    try:
        yield
    finally:
        _retry_listener.callback = previous


@dataclass(frozen=True)
class SessionSource:
    """Where a session's video comes from: a published URL or a Kling video id."""

    video_url: str = ""
    video_id: str = ""


@dataclass(frozen=True)
class SelectionAnswer:
    """A selection call's outcome made ready on the worker: the main thread only stores it.

    ``text`` is the session's JSON for the strip (hundreds of kB with ten 2160x2160
    frames: serialising it is worker work); ``overlay`` the changed frame's mask overlay,
    when the Preview shows overlays.
    """

    session_id: str
    text: str
    overlay: Prepared | None = None


def selection_answer(state: dict[str, Any], frame: int | None = None,
                     look: tuple[tuple[float, float, float], float] | None = None
                     ) -> SelectionAnswer:
    """``state`` (``SelectionState.to_dict()``) as stored, plus the overlay of ``frame`` in
    the colour and opacity ``look`` (none without a frame or a look, or with no mask)."""
    prepared = None
    masks = state.get("masks", {}).get(str(frame)) if frame is not None else None
    if masks and look is not None:
        prepared = prepare(overlay_key(state["session_id"], frame, masks, *look), masks, *look)
    return SelectionAnswer(state["session_id"], json.dumps(state), prepared)


def client_for(settings: ClientSettings) -> Client:
    """The cached client for ``settings``; each of its requests asks the online gate first."""
    client = _clients.get(settings)
    if client is None:
        client = Client(settings.access_key or None, settings.secret_key or None,
                        api_key=settings.api_key or None, base_url=settings.base_url,
                        before_request=GATE.check_request, on_retry=_report_retry)
        _clients[settings] = client
    return client


def close_clients() -> None:
    for client in _clients.values():
        client.close()
    _clients.clear()


def test_connection(settings: ClientSettings) -> int:
    return len(client_for(settings).list_tasks(page=1, page_size=1))


def start_session(settings: ClientSettings, clip_path: str, manual_url: str = "",
                  video_id: str = "", hosting: HostingSettings | None = None,
                  cache_dir: str | None = None, on_progress: Any = None,
                  cancel: threading.Event | None = None,
                  frame_size: tuple[int, int] | None = None,
                  ) -> tuple[SessionSource, dict[str, Any]]:
    """Publish the clip (the strip's own URL, else the chosen host) and start a session.

    A Kling video id needs no upload; an unchanged clip published before reuses its URL
    while it is fresh (the host's cache, keyed by content). Nothing is published while the
    online gate refuses Kling: an upload command is the user's own program, whose
    connections the gate cannot see, so it runs only when Kling itself may be reached.
    A ``cancel`` set during the upload stops it at its next progress report; once set, no
    session is started. ``frame_size`` is the sent clip's ``(height, width)`` as Blender
    reads it: when Kling's answer leaves its own out (documented as unused), it is what
    tells a mask ``size`` given as ``[w, h]`` from one given as ``[h, w]``.
    """
    client = client_for(settings)
    if video_id:
        source = SessionSource(video_id=video_id)
        _stop_if(cancel)
        init = client.init_selection(video_id=video_id)
    else:
        hosting = hosting or HostingSettings(kind="sandbox")
        if manual_url:
            url = UrlHost(manual_url).publish()
        elif hosting.kind == "url":
            raise ValueError("this clip has no URL yet: paste it in Source > Video URL, or "
                             "choose another way to publish clips in the add-on's preferences")
        elif hosting.kind == "sandbox" and not GATE.is_local(client.http.base_url.host):
            raise ValueError(
                f"the sandbox upload only works with a local sandbox, not {settings.base_url}: "
                "choose S3, a command or per-clip URLs in the add-on's preferences"
            )
        else:
            GATE.check_url(settings.base_url)
            # Sandbox URLs die with the sandbox: only stores that outlive it are remembered.
            remember = cache_dir if hosting.kind in ("s3", "command") else None
            host = make_host(hosting, http=client.http, cache_dir=remember,
                             before_request=GATE.check_request)
            url = host.publish(clip_path, on_progress=_cancellable(on_progress, cancel))
        source = SessionSource(video_url=url)
        _stop_if(cancel)
        init = client.init_selection(video_url=url)
    state = client.sessions[init.session_id]
    if state.frame_size is None and frame_size and all(frame_size):
        state.height, state.width = frame_size
    return source, state.to_dict()


def _stop_if(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise JobCancelled("Start Editing was cancelled: no session was started")


def _cancellable(on_progress: Any, cancel: threading.Event | None) -> Any:
    """A progress callback that ends the upload (by raising) once ``cancel`` is set."""
    if cancel is None:
        return on_progress

    def report(done: int, total: int | None) -> None:
        _stop_if(cancel)
        if on_progress is not None:
            on_progress(done, total)

    return report


def working_session(client: Client, source: SessionSource,
                    stored: dict[str, Any]) -> SelectionState:
    """The session to work on: the worker's memory, else the stored copy, with its video
    known so the client can restore it (expired, or gone on Kling's side) by itself."""
    state = client.sessions.get(stored["session_id"]) or SelectionState.from_dict(stored)
    if not state.restorable:
        state.video_url, state.video_id = source.video_url or None, source.video_id or None
    client.sessions[state.session_id] = state
    return state


def _with_restore(settings: ClientSettings, source: SessionSource, stored: dict[str, Any],
                  action) -> dict[str, Any]:
    client = client_for(settings)
    state = working_session(client, source, stored)
    action(client, state)
    return client.sessions[state.session_id].to_dict()


def add_points(settings: ClientSettings, source: SessionSource, stored: dict[str, Any],
               frame_index: int, points: list[tuple[float, float]]) -> dict[str, Any]:
    return _with_restore(settings, source, stored, lambda c, s: c.add_selection(
        s.session_id, frame_index, points))


def delete_points(settings: ClientSettings, source: SessionSource, stored: dict[str, Any],
                  frame_index: int, points: list[tuple[float, float]]) -> dict[str, Any]:
    return _with_restore(settings, source, stored, lambda c, s: c.delete_selection(
        s.session_id, frame_index, points))


def clear_points(settings: ClientSettings, source: SessionSource,
                 stored: dict[str, Any]) -> dict[str, Any]:
    return _with_restore(settings, source, stored,
                         lambda c, s: c.clear_selection(s.session_id))
