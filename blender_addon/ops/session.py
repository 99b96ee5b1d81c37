"""Operators of the Connection and Session steps: test the keys, start, reset."""


from typing import Any

import bpy

from .. import compat
from ..bridge import live_sync, source
from ..bridge.context import active_movie_strip, poll_online, sync_online_access
from ..bridge.prefs import client_settings, hosting_settings, url_cache_dir
from ..bridge.props import load_selection, save_selection, selection_text
from ..work import session_calls
from ..work.online import OnlineAccessRefused
from ..work.worker import WORKER, Worker
from . import conform
from .long_jobs import run_long_job, session_locked, start_key

__all__ = ["classes", "run_job"]


def _set_status(context: bpy.types.Context, status: str = "", error: str = "",
                busy: bool = False) -> None:
    runtime = context.window_manager.kling
    runtime.status = status
    runtime.error = error
    runtime.busy = busy or WORKER.busy


def run_job(context: bpy.types.Context, label: str, work, on_done, on_error=None, *,
            worker: Worker = WORKER) -> None:
    """Queue ``work`` on ``worker``; ``on_done`` and errors come back on the main thread.

    The click worker (the default) keeps the order of what the user did to a session;
    work that has none with clicks and can wait (an account query Kling paces at one a
    second) goes to ``BACKGROUND`` so no click waits behind it.
    ``on_error(exc)``, when given, runs after the error has been shown. Both callbacks
    look Blender's data up again: an undo meanwhile replaces it. A request the online gate
    refused shows the gate's message (nothing of it was sent).
    """
    sync_online_access()

    def done(result: Any) -> None:
        wm = bpy.context.window_manager
        wm.kling.busy = WORKER.busy
        wm.kling.status = ""
        on_done(result)

    def failed(exc: BaseException) -> None:
        wm = bpy.context.window_manager
        wm.kling.busy = WORKER.busy
        wm.kling.status = ""
        refused = isinstance(exc, OnlineAccessRefused)
        wm.kling.error = f"{label} was not sent: {exc}" if refused else f"{label} failed: {exc}"
        print(f"Kling: {wm.kling.error}")
        if on_error is not None:
            on_error(exc)

    # Status first, queue last: once the worker runs it competes for the GIL, and every
    # line the main thread still executes could then wait up to a switch interval (5 ms).
    _set_status(context, status=f"{label}…", busy=True)
    worker.submit(label, work, done, failed)


class KLING_OT_test_connection(bpy.types.Operator):
    """Check the keys and the region with a harmless request"""

    bl_idname = "kling.test_connection"
    bl_label = "Test Connection"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return poll_online(cls, context)

    def execute(self, context: bpy.types.Context) -> set[str]:
        settings = client_settings(context)
        wm = context.window_manager

        def done(count: int) -> None:
            wm.kling.status = f"Connected to {settings.base_url}"

        run_job(context, "Test connection", lambda: session_calls.test_connection(settings), done)
        return {"FINISHED"}


class KLING_OT_start_session(bpy.types.Operator):
    """Publish the active movie strip's clip and start a Kling selection session (24 h)"""

    bl_idname = "kling.start_session"
    bl_label = "Start Editing"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        strip = active_movie_strip(context)
        if strip is None:
            cls.poll_message_set("Select a movie strip first")
            return False
        locked = session_locked(compat.sequencer_scene(context).name, strip)
        if locked:
            cls.poll_message_set(locked)
            return False
        return poll_online(cls, context)

    def execute(self, context: bpy.types.Context) -> set[str]:
        strip = active_movie_strip(context)
        scene = compat.sequencer_scene(context)
        locked = session_locked(scene.name, strip)
        if locked:  # a script calling past the poll
            self.report({"ERROR"}, locked)
            return {"CANCELLED"}
        missing = source.missing_media(strip)
        if missing:
            self.report({"ERROR"}, missing)
            return {"CANCELLED"}
        found = conform.conformed_clip(scene, strip) if not strip.kling.video_id else None
        if found is None and strip.kling.conformed_path and not strip.kling.video_id:
            # Never fall back silently to the raw file the user chose to replace.
            self.report({"ERROR"}, conform.conform_status(scene, strip)[2])
            return {"CANCELLED"}
        path = found[0] if found else bpy.path.abspath(strip.filepath)
        frame_size = (found[1].height, found[1].width) if found else source.picture_size(strip)
        first_frame, file_frames = 0, 0
        if found:
            first_frame = found[1].first_frame
            file_frames = source.source_file_frames(strip, bpy.path.abspath(strip.filepath))
        if not strip.kling.video_id and not found:
            problems = [c for c in source.source_checks(source.clip_info(strip, path))
                        if not c.ok]
            if problems:
                self.report({"ERROR"}, "; ".join(c.detail for c in problems)
                            + " (Conform renders a compliant copy of the visible range)")
                return {"CANCELLED"}
        settings = client_settings(context)
        scene_name, name = scene.name, strip.name
        manual_url, video_id = strip.kling.video_url, strip.kling.video_id
        where = live_sync.ref(strip)  # keyed before the request: undo cannot lose the answer

        def done(result: tuple[session_calls.SessionSource, dict]) -> None:
            session_source, state = result
            live_sync.deliver_session(where, state["session_id"], {
                "published_url": session_source.video_url,
                "session_first_frame": first_frame,
                "session_file_frames": file_frames,
                "selection_json": selection_text(state),
            })

        hosting, cache = hosting_settings(), url_cache_dir()
        progress = session_calls.Progress(f"Publishing {name}")
        # Its own thread: a long upload never holds up clicks on other strips.
        run_long_job(context, start_key(scene_name, name), f"Start editing {name}",
                     lambda cancel: session_calls.start_session(
                         settings, path, manual_url, video_id, hosting, cache, progress.update,
                         cancel, frame_size),
                     done, progress=progress)
        return {"FINISHED"}


class KLING_OT_reset_session(bpy.types.Operator):
    """Forget this strip's session and its marked points here (Kling keeps them until the
    session expires; undo brings them back)"""

    bl_idname = "kling.reset_session"
    bl_label = "Reset"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        strip = active_movie_strip(context)
        if strip is None or load_selection(strip) is None:
            return False
        locked = session_locked(compat.sequencer_scene(context).name, strip)
        if locked:
            cls.poll_message_set(locked)
            return False
        return True

    def execute(self, context: bpy.types.Context) -> set[str]:
        strip = active_movie_strip(context)
        locked = session_locked(compat.sequencer_scene(context).name, strip)
        if locked:  # a script calling past the poll
            self.report({"ERROR"}, locked)
            return {"CANCELLED"}
        live_sync.forget(strip, load_selection(strip).session_id)
        save_selection(strip, None)
        strip.kling.published_url = ""
        strip.kling.session_first_frame = strip.kling.session_file_frames = 0
        return {"FINISHED"}


classes = (KLING_OT_test_connection, KLING_OT_start_session, KLING_OT_reset_session)
