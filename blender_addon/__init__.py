"""Kling Multi-Elements for Blender's Video Sequence Editor.

Registration only: classes in order, pointer properties, the timer that drains the
worker's results, the file and undo handlers, and the overlay's draw handler; all undone
in reverse on unregister.
"""

from __future__ import annotations

bl_info = {
    "name": "Kling Multi-Elements",
    "author": "kling-elements",
    "version": (0, 1, 0),
    "blender": (3, 4, 0),
    "location": "Sequencer > Sidebar > Kling",
    "description": "Mark elements in the Preview and add, swap or remove them with Kling AI",
    "category": "Sequencer",
}

import bpy  # noqa: E402

from . import (  # noqa: E402
    compat,
    live_sync,
    ops_batch,
    ops_conform,
    ops_edit,
    ops_jobs,
    ops_select,
    ops_session,
    ops_tasks,
    overlay,
    props,
    results,
    ui,
)
from .jobs import close_clients  # noqa: E402
from .prefs import KlingPreferences  # noqa: E402
from .worker import BACKGROUND, LONG, OVERLAY, WORKER  # noqa: E402

_classes = (
    KlingPreferences,
    *props.classes,
    *ops_session.classes,
    *ops_select.classes,
    *ops_conform.classes,
    *ops_edit.classes,
    *ops_tasks.classes,
    *ops_batch.classes,
    *ops_jobs.classes,
    *ui.classes,
)
_handlers = (
    (bpy.app.handlers.load_post, live_sync.rebuild),
    (bpy.app.handlers.load_post, ops_tasks.on_load),
    (bpy.app.handlers.save_pre, results.move_to_blend_folder),
    (bpy.app.handlers.save_post, live_sync.resync),
    (bpy.app.handlers.undo_post, live_sync.reconcile),
    (bpy.app.handlers.redo_post, live_sync.reconcile),
    (bpy.app.handlers.save_post, results.finish_moves),
)
CLICK_INTERVAL_S = 0.01  # a click's mask shows within ~10 ms of its answer
DRAIN_INTERVAL_S = 0.05
IDLE_INTERVAL_S = 0.25


def _drain() -> float:
    """Runs on the main thread: apply finished jobs within a small time budget.

    Also copies Blender's "Allow Online Access" to the network gate, so requests already
    queued are refused within a tick of the switch being turned off.
    """
    compat.sync_online_access()
    WORKER.drain()
    BACKGROUND.drain()
    LONG.drain()
    OVERLAY.drain()
    ops_tasks.tick()
    if LONG.jobs:
        ui.redraw_sidebar()  # their progress moved
    if WORKER.busy or OVERLAY.busy:
        return CLICK_INTERVAL_S
    return DRAIN_INTERVAL_S if BACKGROUND.busy or LONG.busy else IDLE_INTERVAL_S


def _wake() -> None:
    """A click (or an overlay) was queued: tick at the click pace from now, not after the
    idle interval still running (``scripts/bench_click.py`` measures the difference)."""
    if bpy.app.timers.is_registered(_drain):
        bpy.app.timers.unregister(_drain)
    bpy.app.timers.register(_drain, first_interval=CLICK_INTERVAL_S, persistent=True)


def register() -> None:
    for cls in _classes:
        bpy.utils.register_class(cls)
    props.register_pointers()
    compat.sync_online_access()
    WORKER.start()
    BACKGROUND.start()
    LONG.start()
    OVERLAY.start()
    for handlers, handler in _handlers:
        handlers.append(handler)
    bpy.app.timers.register(_drain, first_interval=DRAIN_INTERVAL_S, persistent=True)
    WORKER.on_submit = OVERLAY.on_submit = _wake
    # Enabled or reloaded with a file open: learn its sessions once data can be read.
    bpy.app.timers.register(live_sync.rebuild, first_interval=0.0)
    overlay.register()
    for menu, entry in ops_batch.MENUS:
        getattr(bpy.types, menu).append(entry)


def unregister() -> None:
    for menu, entry in ops_batch.MENUS:
        getattr(bpy.types, menu).remove(entry)
    overlay.unregister()
    LONG.stop()  # cancels renders, uploads and slot waits; their callbacks are dropped
    ops_conform.unregister()
    ops_edit.CREATING.clear()  # the poller finds out by external id what was created
    for timer in (_drain, live_sync.rebuild):
        if bpy.app.timers.is_registered(timer):
            bpy.app.timers.unregister(timer)
    for handlers, handler in _handlers:
        if handler in handlers:
            handlers.remove(handler)
    WORKER.on_submit = OVERLAY.on_submit = None
    WORKER.stop()
    BACKGROUND.stop()
    OVERLAY.stop()
    close_clients()
    props.unregister_pointers()
    for cls in reversed(_classes):
        bpy.utils.unregister_class(cls)
