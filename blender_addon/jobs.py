"""The work the add-on sends to its worker thread: plain functions, no ``bpy``.

Each takes what the main thread read from Blender (settings, the strip's stored selection
as a dict) and returns plain data for the main thread to store. One client per settings is
cached; jobs run one at a time on the single worker thread, so the client's per-session
memory (the exact points sent) is always the latest and queued clicks never overwrite
each other's results.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kling_elements import Client, NotFoundError, SelectionState
from kling_elements.hosting import SandboxHost, UrlHost
from kling_elements.workflow import restore_session

from .settings import ClientSettings

__all__ = ["SessionSource", "add_points", "clear_points", "delete_points", "start_session",
           "test_connection"]

_clients: dict[ClientSettings, Client] = {}
RESTORE_MARGIN_S = 120.0


@dataclass(frozen=True)
class SessionSource:
    """Where a session's video comes from: a published URL or a Kling video id."""

    video_url: str = ""
    video_id: str = ""


def client_for(settings: ClientSettings) -> Client:
    client = _clients.get(settings)
    if client is None:
        client = Client(settings.access_key or None, settings.secret_key or None,
                        api_key=settings.api_key or None, base_url=settings.base_url)
        _clients[settings] = client
    return client


def close_clients() -> None:
    for client in _clients.values():
        client.close()
    _clients.clear()


def test_connection(settings: ClientSettings) -> int:
    return len(client_for(settings).list_tasks(page=1, page_size=1))


def start_session(settings: ClientSettings, clip_path: str, manual_url: str = "",
                  video_id: str = "") -> tuple[SessionSource, dict[str, Any]]:
    """Publish the clip (sandbox upload, or the user's URL) and start a session."""
    client = client_for(settings)
    if video_id:
        source = SessionSource(video_id=video_id)
        init = client.init_selection(video_id=video_id)
    else:
        if manual_url:
            url = UrlHost(manual_url).publish()
        elif settings.is_local:
            url = SandboxHost(client.http).publish(clip_path)
        else:
            raise ValueError(
                "this clip has no public URL yet: paste one in Source > Video URL "
                "(upload choices for S3 and other hosts are coming)"
            )
        source = SessionSource(video_url=url)
        init = client.init_selection(video_url=url)
    return source, client.sessions[init.session_id].to_dict()


def _live_state(client: Client, source: SessionSource, stored: dict[str, Any]) -> SelectionState:
    """The session to work on: the worker's memory, else the stored copy, restored if expired."""
    state = client.sessions.get(stored["session_id"]) or SelectionState.from_dict(stored)
    client.sessions[state.session_id] = state
    if state.seconds_left() < RESTORE_MARGIN_S:
        state = restore_session(client, state, video_url=source.video_url or None,
                                video_id=source.video_id or None)
    return state


def _with_restore(settings: ClientSettings, source: SessionSource, stored: dict[str, Any],
                  action) -> dict[str, Any]:
    client = client_for(settings)
    state = _live_state(client, source, stored)
    try:
        action(client, state)
    except NotFoundError:
        state = restore_session(client, state, video_url=source.video_url or None,
                                video_id=source.video_id or None)
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
