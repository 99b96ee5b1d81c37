"""Kling Multi-Elements for Blender's Video Sequence Editor.

Registration only: classes in order, pointer properties, the timer that drains the
worker's results, the file and undo handlers, and the overlay's draw handler; all undone
in reverse on unregister.

The rest is laid out by role (``pure``, ``work``, ``child``, ``bridge``, ``ops``, ``ui``; see
``docs/addon-layout.md``): what may touch ``bpy`` and what runs off the main thread shows in
the tree, and ``tests/addon_pure/test_layout.py`` holds every module to it.
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

from .bridge import context, live_sync, props, results  # noqa: E402
from .bridge.prefs import KlingPreferences  # noqa: E402
from .ops import batch, conform, edit, long_jobs, select, session, tasks  # noqa: E402
from .ui import overlay, panels  # noqa: E402
from .work.session_calls import close_clients  # noqa: E402
from .work.worker import BACKGROUND, LONG, OVERLAY, WORKER  # noqa: E402

_classes = (
    KlingPreferences,
    *props.classes,
    *session.classes,
    *select.classes,
    *conform.classes,
    *edit.classes,
    *tasks.classes,
    *batch.classes,
    *long_jobs.classes,
    *panels.classes,
)
_handlers = (
    (bpy.app.handlers.load_post, live_sync.rebuild),
    (bpy.app.handlers.load_post, tasks.on_load),
    (bpy.app.handlers.save_pre, results.move_to_blend_folder),
    (bpy.app.handlers.save_post, live_sync.resync),
    (bpy.app.handlers.undo_pre, live_sync.undo_started),
    (bpy.app.handlers.redo_pre, live_sync.undo_started),
    (bpy.app.handlers.undo_post, live_sync.reconcile),
    (bpy.app.handlers.redo_post, live_sync.reconcile),
    (bpy.app.handlers.depsgraph_update_post, live_sync.split_new_copies),
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
    context.sync_online_access()
    WORKER.drain()
    BACKGROUND.drain()
    LONG.drain()
    OVERLAY.drain()
    tasks.tick()
    if LONG.jobs:
        context.redraw_sequencers()  # their progress moved
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
    context.sync_online_access()
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
    for menu, entry in batch.MENUS:
        getattr(bpy.types, menu).append(entry)


def unregister() -> None:
    for menu, entry in batch.MENUS:
        getattr(bpy.types, menu).remove(entry)
    overlay.unregister()
    LONG.stop()  # cancels renders, uploads and slot waits; their callbacks are dropped
    conform.unregister()
    edit.CREATING.clear()  # the poller finds out by external id what was created
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
