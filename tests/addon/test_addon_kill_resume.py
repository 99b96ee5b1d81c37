"""Blender killed with a task in flight: the reopened .blend finishes it, imported once.

Two Blender processes (the ``bpy`` wheel's Python) against one sandbox in this process:
the first starts a session, clicks, generates, saves the .blend as soon as the task exists
and is then killed with SIGKILL; the second opens the .blend, and the add-on on its own
(load handler + poller) finds the task by its id, downloads and imports the result.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

from .conftest import bpy

SCRIPT = textwrap.dedent('''
    import json, os, sys, time
    import bpy
    import addon_utils  # on the path once bpy is imported
    args = json.loads(sys.argv[1])
    addon_utils.enable("blender_addon", default_set=True, handle_error=None)
    prefs = bpy.context.preferences.addons["blender_addon"].preferences
    prefs.region, prefs.custom_url = "custom", args["base_url"]
    prefs.auth_mode, prefs.api_key = "api_key", args["api_key"]
    from blender_addon import compat
    from blender_addon.ops import select as ops_select, tasks as ops_tasks
    from blender_addon.bridge.props import load_selection
    from blender_addon.work.worker import BACKGROUND, WORKER
    import blender_addon

    def pump(until, timeout=120):
        deadline = time.monotonic() + timeout
        while not until():
            if time.monotonic() > deadline:
                raise TimeoutError("gave up waiting")
            blender_addon._drain()   # what Blender's timer runs
            ops_tasks._poll["last"] = 0.0  # poll at each pump instead of every 3 s
            time.sleep(0.05)

    if args["phase"] == "start":
        scene = bpy.context.scene
        editor = scene.sequence_editor_create()
        strip = compat.new_movie(editor, "plate", args["clip"], 2, 1)
        editor.active_strip = strip
        bpy.ops.kling.start_session()
        pump(lambda: load_selection(strip) is not None and not WORKER.busy)
        ops_select.request_add(bpy.context, strip, 0, [tuple(args["point"])])
        pump(lambda: not WORKER.busy)
        strip.kling.edit.edit_mode = "removal"
        strip.kling.edit.prompt = "Delete the ball from <<<video_1>>>"
        bpy.ops.kling.generate()
        pump(lambda: strip.kling.tasks[-1].task_id != "")
        bpy.ops.wm.save_as_mainfile(filepath=args["blend"])
        print("SAVED", strip.kling.tasks[-1].external_task_id, flush=True)
        time.sleep(600)  # killed here, the task still running on the server
    else:
        bpy.ops.wm.open_mainfile(filepath=args["blend"])
        def done():
            scene = bpy.context.scene
            source = compat.strip_by_name(scene, "plate")
            return source.kling.tasks[-1].imported_strip and not ops_tasks.pending_records() \\
                and not BACKGROUND.busy
        pump(done)
        pump(lambda: True)
        for _ in range(5):  # more polling rounds must not import it again
            pump(lambda: not BACKGROUND.busy)
            time.sleep(0.1)
        scene = bpy.context.scene
        source = compat.strip_by_name(scene, "plate")
        record = source.kling.tasks[-1]
        results = [s.name for s in compat.strips(scene.sequence_editor) if s.kling.task_id]
        print("RESULT", json.dumps({"status": record.status, "external": record.external_task_id,
                                    "imported": record.imported_strip, "results": results,
                                    "path": record.result_path}), flush=True)
    sys.stdout.flush()
    os._exit(0)
''')


def _env(tmp_path) -> dict[str, str]:
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, HOME=str(tmp_path / "home"),
               PYTHONPATH=os.pathsep.join([os.path.join(root, "core"), root]))
    for name in ("KLINGAI_API_KEY", "KLINGAI_ACCESS_KEY", "KLINGAI_SECRET_KEY",
                 "KLINGAI_BASE_URL"):
        env.pop(name, None)
    return env


def test_killed_blender_resumes_the_task_from_the_saved_blend(clip, tmp_path):
    from kling_elements.sandbox import running

    assert bpy is not None
    with running(task_seconds=8.0, data_dir=tmp_path / "sandbox") as sandbox:  # outlives
        _kill_and_resume(sandbox, clip, tmp_path)                             # the 1st Blender


def _kill_and_resume(sandbox, clip, tmp_path) -> None:
    from kling_elements.sandbox.tasks import status_at

    (tmp_path / "home").mkdir()
    blend = tmp_path / "shot.blend"
    common = {"base_url": sandbox.base_url, "api_key": sandbox.api_key, "clip": str(clip.path),
              "point": list(clip.center(0)), "blend": str(blend)}
    first = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, json.dumps({**common, "phase": "start"})],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env(tmp_path))
    external, seen = "", []
    for line in first.stdout:
        seen.append(line)
        if line.startswith("SAVED "):
            external = line.split()[1]
            break
    first.send_signal(signal.SIGKILL)
    first.wait(30)
    assert external, "the first Blender never saved:\n" + "".join(seen[-30:])
    task = next(t for t in sandbox.state.all_tasks() if t.external_task_id == external)
    status = status_at(task, sandbox.state.clock.now(), 8.0)[0]
    assert status in ("submitted", "processing")  # killed with the task in flight
    assert sandbox.state.created[external] == 1

    second = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps({**common, "phase": "resume"})],
        capture_output=True, text=True, env=_env(tmp_path), timeout=300)
    line = next((x for x in second.stdout.splitlines() if x.startswith("RESULT ")), None)
    assert line, second.stdout[-2000:] + second.stderr[-2000:]
    result = json.loads(line[len("RESULT "):])
    assert result["external"] == external and result["status"] == "succeed"
    assert result["results"] == [result["imported"]]  # imported exactly once
    assert result["path"].startswith("//kling/")
    assert (tmp_path / "kling" / os.path.basename(result["path"])).is_file()
    assert sandbox.state.created[external] == 1  # never created twice
