"""How long the add-on holds Blender's main thread, on Kling's largest clips.

Runs under the ``bpy`` wheel (``make bench-ui``). The workload is an editor's at the
largest size Kling accepts: a 2 s 2160x2160 clip at 24 fps; Start Editing; on ten frames,
three objects clicked one after the other (each click waits for its mask, as an editor
would); Preview Tracking; three points deleted; Generate; the poll until the result is
imported. The sandbox runs in a child process (``kling-elements sandbox``) at a lower
priority, so the server's work, and its hold on its own interpreter lock, is never charged
to the add-on: it stands in for Kling's servers, which do not share the editor's CPU.

Timed on the main thread: operators, the modal tool's click (mapping included), every tick
of the add-on's timer (run at the interval it asks for, as Blender runs it), and the Python
work of each redraw: the sidebar's panels open by default, with the polls of the operators
they show, and the overlay's draw callback (``overlay.plan``, then the ready buffer taken as
the callback takes it for its upload). A Preview is emulated (``OVERLAYS.enabled``):
overlays are prepared as in a Blender with a window. Headless bpy has no GPU, so the
texture upload itself is not timed (C work on a ready float buffer).

Each entry's wall time and CPU time are recorded, with what the machine did meanwhile: a
voluntary context switch (the entry blocked: it waited for the interpreter lock held by one
of the add-on's threads, or for I/O), an involuntary one (the OS gave the core to another
process), steal time (the hypervisor ran something else), a major page fault, and the
garbage collector's passes. As in a Blender that has been running a while, the modules
imported before the run have been through a full collection. An entry's hold is its wall
time when it blocked (the add-on's waits count), else the smaller of its wall and CPU time
(this virtual machine stalls pure computation without a trace, and its CPU clock can
overshoot after a context switch; the computation fits in both). The judged hold counts
the entries the machine did not disturb (not preempted, no steal, no page fault); per label
the longest, or for the redraws and timer ticks (thousands each) the 99.9th percentile,
which sets aside a handful of blips but keeps anything that recurs, such as the redraws
after each of the 30 answers. A "control" entry, a fixed ~0.4 ms of pure Python run at every
redraw, shows what the machine alone does to a fixed amount of work. The raw longest wall
time, how many entries were disturbed, the collector's longest pass and the five longest
undisturbed entries are printed with it.

The reference, measured in the same run: the same calls made synchronously with the core
client on the main thread (upload and init, 30 adds, preview and its download, 3 deletes,
create, each poll, the download): the longest of them is how long a naive add-on would
freeze Blender. Goals: the longest hold at most 4 ms (a quarter of a 60 fps frame), the
overlay's draw callback at most 1 ms. Printed last: the ratio of the longest hold to the
synchronous reference's longest call.

Exempt, and judged on their own: the ticks that import a movie (the tracking preview, the
result). Blender's ``new_movie`` opens the file with FFmpeg on the main thread (tens of ms
at 2160x2160) and no add-on can move that elsewhere; it happens once per preview or task.
They are compared with the same ``new_movie`` call made by hand on the result's file in the
same run (three times; the slowest, the least cached, is the reference; the smaller of wall
and CPU time of each): the ratio must stay under 1.5.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import ClassVar

from bench_support import FakeClick, Holds, percentile, sandbox_process, write_clip

GOAL_S = 0.004
OVERLAY_GOAL_S = 0.001
CONTROL = "control: fixed work"
MANY = 1000  # entries of a label above which its hold is its 99.9th percentile
FRAME_60FPS_S = 1 / 60
IMPORT_LABEL = "timer + movie import"
IMPORT_RATIO_MAX = 1.5
SIZE = 2160
FRAMES = 10
DELETED = 3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=SIZE, help="clip side in pixels")
    args = parser.parse_args()

    import importlib

    import bpy

    addon_utils = importlib.import_module("addon_utils")  # on the path only once bpy is in
    tmp = Path(tempfile.mkdtemp(prefix="kling-bench-"))
    clip = write_clip(tmp / "clip.mp4", args.size, args.size, fps=24, seconds=2.0)
    addon_utils.enable("blender_addon", default_set=True, handle_error=None)
    from blender_addon.work.overlay_cache import OVERLAYS

    OVERLAYS.enabled = True  # as with a Preview to draw in
    # As in a Blender that has been running a while: what enabling imported has been through
    # a full collection, so the collector's young generations hold only what the run makes.
    gc.collect()
    holds = Holds()
    load = os.getloadavg()
    with sandbox_process(tmp / "sandbox", max_long_side=args.size) as sandbox:
        session_frames = addon_workflow(bpy, clip, sandbox, holds)
        reference = synchronous_workflow(clip, sandbox, session_frames)
    addon_utils.disable("blender_addon", default_set=True)
    return report(holds, reference, clip, load)


def addon_workflow(bpy, clip, sandbox, holds: Holds) -> list[int]:
    """The editor's session through the add-on's own entry points; returns the frames used."""
    import blender_addon
    from blender_addon import compat
    from blender_addon.bridge import geometry
    from blender_addon.bridge.props import load_selection
    from blender_addon.ops import edit as ops_edit
    from blender_addon.ops import select as ops_select
    from blender_addon.ui import panels as ui
    from blender_addon.work.worker import BACKGROUND, LONG, OVERLAY, WORKER

    prefs = bpy.context.preferences.addons["blender_addon"].preferences
    prefs.region, prefs.custom_url = "custom", sandbox.base_url
    prefs.auth_mode, prefs.api_key = "api_key", sandbox.api_key
    scene = bpy.context.scene
    scene.render.resolution_x, scene.render.resolution_y = clip.width, clip.height
    editor = scene.sequence_editor_create()
    strip = compat.new_movie(editor, "plate", str(clip.path), 2, 1)
    editor.active_strip = strip
    redraw = Redraw(bpy, holds, ui)

    def strips() -> int:
        return len(list(compat.strips(editor)))

    def tick() -> None:
        before = strips()
        interval = holds.time("timer tick", blender_addon._drain)
        if strips() > before:
            holds.relabel_last(IMPORT_LABEL)
        redraw()
        time.sleep(interval)

    def settle(what: str, timeout: float = 600.0) -> None:
        deadline = time.monotonic() + timeout
        while WORKER.busy or BACKGROUND.busy or LONG.busy or OVERLAY.busy:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what}: the workers did not finish")
            tick()
        error = bpy.context.window_manager.kling.error
        if error:
            raise RuntimeError(f"{what}: {error}")

    holds.time("start_session operator", bpy.ops.kling.start_session)
    settle("Start Editing")
    frames = [round(i * (clip.frame_count - 1) / (FRAMES - 1)) for i in range(FRAMES)]
    tool = ops_select.KLING_OT_select_points
    for frame in frames:
        scene.frame_set(geometry.scene_frame(scene, strip, load_selection(strip), frame))
        redraw()
        for point in clip.objects(frame):
            click = FakeClick(*geometry.normalized_to_view(scene, strip, *point))
            holds.time("click (modal tool)", tool.click, None, bpy.context, strip, click.region,
                       click.event, False)
            redraw()
            settle(f"click on frame {frame}")
    holds.time("preview_tracking operator", bpy.ops.kling.preview_tracking)
    settle("Preview Tracking")
    state = load_selection(strip)
    for frame in frames[:DELETED]:
        scene.frame_set(geometry.scene_frame(scene, strip, state, frame))
        holds.time("click -> request_delete", ops_select.request_delete, bpy.context, strip,
                   frame, [state.points[frame][-1]])
        redraw()
        settle(f"delete on frame {frame}")
    strip.kling.edit.edit_mode = "removal"
    strip.kling.edit.prompt = "Delete the orange ellipse from <<<video_1>>>"
    holds.time("generate operator", bpy.ops.kling.generate)
    generate_until_imported(bpy, strip, tick, holds, ops_edit)
    return frames


def generate_until_imported(bpy, strip, tick, holds: Holds, ops_edit) -> None:
    """Tick the timer (polling at every tick here, not every 3 s) until the result is in."""
    from blender_addon import compat
    from blender_addon.ops import tasks as ops_tasks

    deadline = time.monotonic() + 600
    while not strip.kling.tasks[-1].imported_strip:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the result was not imported: {strip.kling.tasks[-1].message}")
        ops_tasks._poll["last"] = 0.0
        tick()
    editor = bpy.context.scene.sequence_editor
    path = bpy.path.abspath(strip.kling.tasks[-1].result_path)
    for _ in range(3):  # the result's file again: the first open is the fair reference
        by_hand = holds.time("reference: new_movie by hand", compat.new_movie, editor,
                             "by hand", path, 30, 1)
        compat.top_level(editor).remove(by_hand)


class Redraw:
    """The Python work of one redraw of the Sequencer: the Kling sidebar and the overlay."""

    def __init__(self, bpy, holds: Holds, ui) -> None:
        self.bpy, self.holds, self.ui = bpy, holds, ui
        from blender_addon.ui import overlay

        self.overlay = overlay

    def __call__(self) -> None:
        context = self.bpy.context
        self.holds.time("draw: sidebar panels", self._panels, context)
        self.holds.time("draw: overlay callback", self._overlay, context)
        self.holds.time(CONTROL, sum, range(20_000))  # ~0.4 ms of pure Python

    def _overlay(self, context) -> None:
        drawn = self.overlay.plan(context)
        if drawn is not None and drawn.key is not None:
            self._upload(drawn.key)

    def _upload(self, key) -> None:
        """What ``overlay._texture`` does before its GPU calls; a placeholder is the texture."""
        from blender_addon.work.overlay_cache import OVERLAYS

        textures = self.overlay._textures
        if key in textures:
            textures.move_to_end(key)
            return
        prepared = OVERLAYS.take(key)
        if prepared is not None:
            textures[key] = prepared.pixels.reshape(-1)

    def _panels(self, context) -> None:
        """The panels open by default (a closed panel's ``draw`` is not called)."""
        for cls in self.ui.classes:
            if "DEFAULT_CLOSED" in getattr(cls, "bl_options", ()):
                continue
            if hasattr(cls, "poll") and not cls.poll(context):
                continue
            cls.draw(_Panel(cls, self.bpy), context)


class _Layout:
    """Takes any layout call; ``operator`` runs the operator's poll, as a drawn button does."""

    _polls: ClassVar[dict] = {}  # a button's poll is called from C: no bpy.ops lookup

    def __init__(self, bpy) -> None:
        self._bpy = bpy

    def operator(self, name: str, *args, **kwargs):
        poll = self._polls.get(name)
        if poll is None:
            family, op = name.split(".")
            poll = self._polls[name] = getattr(getattr(self._bpy.ops, family), op).poll
        poll()
        return _Layout(self._bpy)

    def __getattr__(self, name: str):
        return lambda *args, **kwargs: _Layout(self._bpy)


class _Panel:
    def __init__(self, cls, bpy) -> None:
        self._cls = cls
        self.layout = _Layout(bpy)

    def __getattr__(self, name: str):
        return getattr(self._cls, name)


def synchronous_workflow(clip, sandbox, frames: list[int]) -> list[tuple[str, float]]:
    """The same calls made synchronously with the core client: each one's duration."""
    from kling_elements import Client
    from kling_elements.hosting import SandboxHost

    calls: list[tuple[str, float]] = []

    def timed(label: str, call, *args, **kwargs):
        start = time.perf_counter()
        result = call(*args, **kwargs)
        calls.append((label, time.perf_counter() - start))
        return result

    out = Path(tempfile.mkdtemp(prefix="kling-bench-sync-"))
    with Client(api_key=sandbox.api_key, base_url=sandbox.base_url) as client:
        def start():
            return client.init_selection(video_url=SandboxHost(client.http).publish(clip.path))

        session = timed("upload + init", start).session_id
        for frame in frames:
            for point in clip.objects(frame):
                timed("add", client.add_selection, session, frame, [point])

        def preview():
            url = client.preview_selection(session).video_url
            client.download(url, out / "preview.mp4")

        timed("preview + download", preview)
        for frame in frames[:DELETED]:
            timed("delete", client.delete_selection, session, frame,
                  [client.sessions[session].points[frame][-1]])
        body = client.build_task_body(session_id=session, edit_mode="removal",
                                      prompt="Delete the orange ellipse from <<<video_1>>>")
        task = timed("create", client.submit_task, body)
        while task.status not in ("succeed", "failed"):
            time.sleep(0.2)
            task = timed("poll", client.get_task, task.task_id)
        timed("download", client.download, task.videos[0].url, out / "result.mp4")
    return calls


def _held(group) -> float:
    """How long a label held the main thread at worst (``Hold.held``), over its entries the
    machine did not disturb; for the redraws and ticks (thousands of entries) the 99.9th
    percentile, which sets aside a handful of blips while keeping anything that recurs,
    such as the first redraw after each of the 30 answers. An entry run once and disturbed
    counts as it is."""
    calm = [h.held for h in group if not h.disturbed]
    if len(calm) >= MANY:
        return percentile(calm, 0.999)
    return max(calm) if calm else max(h.held for h in group)


def report(holds: Holds, reference: list[tuple[str, float]], clip, load) -> int:
    # Single calls of tens of ms: the smaller of wall and CPU time, so one stall of the
    # machine does not decide the ratio.
    imports = [min(h.wall, h.cpu) for h in holds.of(IMPORT_LABEL)]
    by_hand = [min(h.wall, h.cpu) for h in holds.of("reference: new_movie by hand")]
    everything = holds.entries
    entries = [h for h in everything if h.label != IMPORT_LABEL
               and not h.label.startswith(("reference:", "control:"))]
    print(f"clip {clip.width}x{clip.height}, {clip.frame_count} frames; {FRAMES} frames x 3 "
          f"objects clicked, {DELETED} deleted; load average before: "
          f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, after: "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"main-thread entries timed: {len(entries)} (ms; held: the longest undisturbed)")
    for name in sorted({h.label for h in everything} - {IMPORT_LABEL}):
        if name.startswith("reference:"):
            continue
        group = holds.of(name)
        walls = [h.wall for h in group]
        print(f"  {name:25s} n={len(group):5d}  held {_held(group) * 1e3:6.3f}  wall max "
              f"{max(walls) * 1e3:7.3f} p99 {percentile(walls, 0.99) * 1e3:6.3f} mean "
              f"{sum(walls) / len(walls) * 1e3:6.3f}  disturbed "
              f"{sum(h.disturbed for h in group):4d}  blocked {sum(h.blocked for h in group)}"
              f"  gc max {max(h.collecting for h in group) * 1e3:5.2f}")
    import_ratio = max(imports) / max(by_hand)
    print(f"movie imports (preview, result; exempt): longest {max(imports) * 1e3:.1f} ms; "
          f"Blender's new_movie by hand (longest of 3) {max(by_hand) * 1e3:.1f} ms; ratio "
          f"{import_ratio:.2f} (max {IMPORT_RATIO_MAX})")
    ref_label, ref_longest = max(reference, key=lambda item: item[1])
    print(f"synchronous reference: {len(reference)} calls, longest {ref_longest * 1e3:.1f} ms "
          f"({ref_label})")
    walls = [h.wall for h in entries]
    raw = max(entries, key=lambda h: h.wall)
    control = [h.wall for h in holds.of(CONTROL)]
    set_aside = [h for h in entries if h.disturbed]
    print(f"wall clock, all entries: longest {raw.wall * 1e3:.3f} ms ({raw.label}), 99th "
          f"percentile {percentile(walls, 0.99) * 1e3:.3f} ms; {len(set_aside)} disturbed by the "
          f"machine set aside; the control's fixed work: median "
          f"{percentile(control, 0.5) * 1e3:.3f} ms, longest {max(control) * 1e3:.3f} ms")
    order = {id(h): index for index, h in enumerate(everything)}
    nth: dict[int, int] = {}
    seen: dict[str, int] = {}
    for h in everything:
        seen[h.label] = seen.get(h.label, 0) + 1
        nth[id(h)] = seen[h.label]
    worst = sorted((h for h in entries if not h.disturbed), key=lambda h: -h.held)[:5]
    print("longest undisturbed entries (ms: held, wall, cpu, of it the garbage collector; "
          "which of its label, when):")
    for h in worst:
        print(f"  {h.label:25s} {h.held * 1e3:7.3f} {h.wall * 1e3:7.3f} {h.cpu * 1e3:7.3f}"
              f" {h.collecting * 1e3:6.2f}"
              f"  #{nth[id(h)]} at entry {order[id(h)]}/{len(everything)}"
              f"{'  blocked' if h.blocked else ''}")
    held = {name: _held(holds.of(name)) for name in {h.label for h in entries}}
    label, longest = max(held.items(), key=lambda item: item[1])
    undisturbed = [h.wall for h in entries if not h.disturbed]
    drawn = held["draw: overlay callback"]
    ok = longest <= GOAL_S and drawn <= OVERLAY_GOAL_S and import_ratio < IMPORT_RATIO_MAX
    print(f"overlay draw callback: longest hold {drawn * 1e3:.3f} ms (goal <= "
          f"{OVERLAY_GOAL_S * 1e3:.0f} ms)")
    print(f"longest hold {longest * 1e3:.3f} ms ({label}); 99th percentile "
          f"{percentile(undisturbed, 0.99) * 1e3:.3f} ms; goal <= {GOAL_S * 1e3:.0f} ms "
          f"({longest / FRAME_60FPS_S:.2f} of a 60 fps frame): {'OK' if ok else 'FAIL'}")
    if worst and worst[0].held > longest:
        # Said next to the verdict, so a single outlier the percentile set aside is not hidden.
        print(f"not in the verdict: one {worst[0].label} entry held "
              f"{worst[0].held * 1e3:.3f} ms, {worst[0].collecting * 1e3:.2f} ms of it a pass "
              "of Python's garbage collector over the whole process")
    print(f"ratio longest hold / synchronous add-on: {longest / ref_longest:.5f}")
    sys.stdout.flush()
    return 0 if ok else 1


if __name__ == "__main__":
    code = main()
    os._exit(code)  # bpy 4.2's module segfaults at interpreter exit after timers were used
