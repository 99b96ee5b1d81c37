"""Blender's "Allow Online Access" stops every request of a session that is already running.

The sandbox is reached by name (``localhost``) and the gate's resolver is told that name is
a remote address, so to the add-on it is Kling on another machine while connections still
land on the in-process sandbox, which counts every request it receives.
"""

from __future__ import annotations

import threading

import pytest

from .conftest import bpy, drain

MESSAGE_START = "Online access is disabled"


def _sent(sandbox) -> int:
    with sandbox.state.lock:
        return sum(sandbox.state.requests.values())


def _drain_all() -> None:
    from blender_addon.work.worker import BACKGROUND

    drain()
    for _ in range(6000):
        BACKGROUND.drain()
        if not BACKGROUND.busy:
            return
        threading.Event().wait(0.01)
    raise TimeoutError("the background worker is still busy")


def _set_online(allowed: bool) -> None:
    """Flip Blender's switch; the add-on's timer hands it to the gate at its next tick."""
    from blender_addon.bridge.context import sync_online_access

    bpy.context.preferences.system.use_online_access = allowed
    sync_online_access()


@pytest.fixture
def online(addon):
    system = bpy.context.preferences.system
    before = system.use_online_access
    _set_online(True)
    yield
    _set_online(before)


@pytest.fixture
def remote_sandbox(online, connected, sandbox):
    """Makes the sandbox look remote to the gate (call it after the session has started)."""
    from blender_addon.work.online import GATE, system_resolve

    def as_remote() -> None:
        GATE.resolve = lambda host: (["203.0.113.7"] if host == "localhost"
                                     else system_resolve(host))
        GATE.forget()
        connected.custom_url = sandbox.base_url.replace("127.0.0.1", "localhost")

    yield as_remote
    GATE.resolve = system_resolve
    GATE.forget()
    connected.custom_url = sandbox.base_url


@pytest.fixture
def live(movie_strip, clip, sandbox, remote_sandbox):
    """A session started online with a point on frame 0 and a task waiting to be polled,
    then the sandbox made to look remote; a click still gets through while online."""
    from blender_addon.bridge.props import load_selection
    from blender_addon.ops import select as ops_select

    _drain_all()  # nothing left in flight by an earlier test
    assert bpy.ops.kling.start_session() == {"FINISHED"}
    drain()
    assert load_selection(movie_strip) is not None, bpy.context.window_manager.kling.error
    ops_select.request_add(bpy.context, movie_strip, 0, [clip.center(0)])
    drain()
    movie_strip.kling.edit.edit_mode = "removal"
    movie_strip.kling.edit.prompt = "Delete the ball from <<<video_1>>>"
    assert bpy.ops.kling.generate() == {"FINISHED"}
    drain()
    assert movie_strip.kling.tasks[-1].status == "submitted"
    remote_sandbox()
    before = _sent(sandbox)
    ops_select.request_add(bpy.context, movie_strip, 0, [(0.2, 0.2)])
    drain()
    assert _sent(sandbox) == before + 1, bpy.context.window_manager.kling.error
    assert len(load_selection(movie_strip).points[0]) == 2
    bpy.context.window_manager.kling.error = ""
    return movie_strip


def _click(strip):
    from blender_addon.ops import select as ops_select

    ops_select.request_add(bpy.context, strip, 1, [(0.6, 0.6)])


def _generate(strip):
    from blender_addon.ops import edit as ops_edit

    ops_edit.request_generate(bpy.context, strip)


def _poll_tasks(strip):
    from blender_addon.ops import tasks as ops_tasks

    ops_tasks.tick(force=True)


SENDERS = {
    "click": _click,
    "delete frame": lambda strip: bpy.ops.kling.delete_frame(frame_index=0),
    "clear": lambda strip: bpy.ops.kling.clear_selection(),
    "preview tracking": lambda strip: bpy.ops.kling.preview_tracking(),
    "generate": _generate,
    "poll and download": _poll_tasks,
    "test connection": lambda strip: bpy.ops.kling.test_connection(),
    "account tasks": lambda strip: bpy.ops.kling.refresh_account_tasks(),
    "check balance": lambda strip: bpy.ops.kling.refresh_account_costs(),
    "start editing": lambda strip: bpy.ops.kling.start_session(),
}


@pytest.mark.parametrize("name", list(SENDERS))
def test_switched_off_every_sender_is_refused_and_sends_nothing(live, sandbox, name):
    from kling_elements import ValidationError

    tasks = len(live.kling.tasks)
    _set_online(False)
    before = _sent(sandbox)
    wm = bpy.context.window_manager
    try:
        SENDERS[name](live)
    except (RuntimeError, ValidationError, ValueError) as exc:
        assert MESSAGE_START in str(exc)
    else:
        shown = wm.kling.tasks_status if name == "poll and download" else wm.kling.error
        assert MESSAGE_START in shown
    _drain_all()
    assert _sent(sandbox) == before
    assert len(live.kling.tasks) == tasks  # Generate recorded nothing either


@pytest.mark.parametrize("name", [n for n in SENDERS if n != "start editing"])
def test_work_queued_while_online_is_refused_at_the_request_once_switched_off(
        live, sandbox, name):
    """The worker is busy, the user acts (allowed: online), then turns online access off
    before the work runs: the request itself is refused, and the panel says why."""
    from blender_addon.work.worker import BACKGROUND, WORKER

    release = threading.Event()
    for worker in (WORKER, BACKGROUND):
        worker.submit("busy", lambda: release.wait(30), lambda _r: None, lambda _e: None)
    externals = set(sandbox.state.created)
    SENDERS[name](live)
    _set_online(False)
    before = _sent(sandbox)
    release.set()
    _drain_all()
    assert _sent(sandbox) == before
    assert set(sandbox.state.created) == externals  # nothing was charged
    wm = bpy.context.window_manager
    shown = wm.kling.tasks_status if name == "poll and download" else wm.kling.error
    assert MESSAGE_START in shown and "Traceback" not in shown
    if name == "generate":
        record = live.kling.tasks[-1]
        assert record.status == "not_sent" and MESSAGE_START in record.message


def test_a_host_that_only_reads_like_loopback_is_remote(connected, sandbox, online):
    _set_online(False)
    port = sandbox.base_url.rsplit(":", 1)[1]
    connected.custom_url = f"http://127.example.test:{port}"
    try:
        assert not bpy.ops.kling.test_connection.poll()
        connected.custom_url = sandbox.base_url
        assert bpy.ops.kling.test_connection.poll()  # the real loopback sandbox is fine
    finally:
        connected.custom_url = sandbox.base_url
