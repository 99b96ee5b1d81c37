"""The add-on's UI smoke run inside Debian's Blender 3.4 under Xvfb (started by ui_smoke.sh).

``blender --factory-startup -noaudio --window-geometry 0 0 1600 900
--python scripts/ui_smoke_blender.py -- CONFIG.json``

One generator driven by a ``bpy.app.timers`` callback does everything, so Blender keeps
running its event loop (drawing, the add-on's worker drain, X input) between steps: enable
the add-on as a legacy add-on, point it at the sandbox, build a sequencer scene with the
sample clip, switch to the Video Editing workspace, open the Kling tab of the Preview's
sidebar, start a session, then for each scenario (zoom, strip transform, frame) invoke the
real modal tool ``kling.select_points`` and let xdotool click where the add-on's own
mapping puts the ball's centre on screen. Each click must store a point on the ball and a
mask with IoU >= 0.9 against the ground truth, and screenshots taken before and after must
show the overlay exactly over that mask, the point's dot under the click, and (so that the
mapping is not only checked against itself) the orange ball Blender draws where the
mapping puts the ground truth.
Then the Edit and Tasks steps: fill in the Edit panel (Remove, Kling's template with its
blank filled in), invoke the real ``kling.generate`` and click the button of its
confirmation popup, let the add-on's own timer poll the task, download the result and
import it; check the imported strip (one channel above the source, same frames, Kling's
video id), that the Preview shows the result (the ball gone, the rest unchanged), and
photograph the Edit panel, the Tasks panel and the timeline with both strips.
Prints ``ui-smoke:`` lines, writes RESULTS.json, exits 0 only when everything passed.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

import bpy

CONFIG = json.loads(Path(sys.argv[sys.argv.index("--") + 1]).read_text())
sys.path[:0] = [CONFIG["deps"], CONFIG["core"]]
bpy.context.preferences.view.show_splash = False

import numpy as np  # noqa: E402  (Debian's python3-numpy, the one Blender's Python sees)
from PIL import Image  # noqa: E402

ADDON = "blender_addon"
IOU_MIN = 0.9  # stored mask vs ground truth, in image pixels
SCREEN_IOU_MIN = 0.9  # drawn overlay vs stored mask projected to the screen
OVERLAY_OFFSET_MAX_PX = 1.0  # between their centroids, in screen pixels
BALL_IOU_MIN = 0.85  # orange pixels Blender draws vs ground truth projected to the screen
# Looser: a colour threshold finds the ball's anti-aliased edge unevenly (it depends on what
# lies behind, wall or floor tiles, and on Blender's view transform), worth up to ~1 px.
BALL_OFFSET_MAX_PX = 1.5
DOT_RADIUS_PX = 8  # the point's dot is 9 px; this much is left out of the overlay check
TIMEOUT_S = 240.0
DOCS_WIDTH = 1200
DOCS_OVERLAY_SCENARIO = "zoom-2x"
DOCS_MAX_BYTES = 300_000  # a bigger docs screenshot is saved with a 256-colour palette
EDIT_FILL = "the orange ball"  # what goes into the template's [x]
EDIT_FRAME = 15  # scene frame of the result checks; unmarked, so no overlay is drawn there
TASK_TIMEOUT_S = 90.0  # Generate's click to the result imported (the sandbox takes ~1 s)
RESULT_WINDOW_PX = (1024, 720)  # the window's size for the result screenshot
RESULT_TIMELINE_PX = 250  # the timeline's height in the result screenshot
HEADER_GREY = 61  # sub-panel headers' colour in the factory theme (their bodies: 54)
BALL_GONE_MAX = 0.05  # orange share of the ball's mask the result may keep
RESULT_DIFF_MAX = 8.0  # mean |result - source| off the ball, 0-255 (video coding noise)


@dataclass(frozen=True)
class Scenario:
    name: str
    frame: int  # scene frame; the strip starts at 1, so session frame = frame - 1
    zoom: float | None  # sequencer.view_zoom_ratio; None: fit the image (view_all_preview)
    offset: tuple[float, float] = (0.0, 0.0)
    scale: tuple[float, float] = (1.0, 1.0)
    rotation: float = 0.0  # radians
    centre_view: bool = False  # pan so the ball is in the middle of the Preview


SCENARIOS = (
    Scenario("fit", frame=1, zoom=None),
    Scenario("zoom-2x", frame=59, zoom=2.0, centre_view=True),
    Scenario("moved-scaled", frame=30, zoom=1.0, offset=(200.0, -60.0), scale=(0.6, 0.75)),
    Scenario("rotated", frame=45, zoom=1.0, offset=(-150.0, 40.0), scale=(0.8, 0.8),
             rotation=0.3),
)


class Failed(Exception):
    """A step could not be done; the run stops and reports it."""


def say(text: str) -> None:
    print(f"ui-smoke: {text}", flush=True)


# ------------------------------------------------------------------------------ plumbing


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> Iterator[float]:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise Failed(f"timed out after {timeout:g} s waiting for {what}")
        yield 0.05


def xdo(*args: object) -> Iterator[float]:
    """Run one xdotool command without blocking Blender's event loop; returns its stdout."""
    proc = subprocess.Popen(["xdotool", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    yield from wait_for(lambda: proc.poll() is not None, 10, f"xdotool {args}")
    out, err = proc.communicate()
    if proc.returncode:
        raise Failed(f"xdotool {args} failed: {err.strip()}")
    return out


class Screen:
    """The Blender window on the X display: window pixels (y up) to xdotool's (y down)."""

    def __init__(self, window: bpy.types.Window, xid: str) -> None:
        self.window, self.xid = window, xid

    def client(self, wx: float, wy: float) -> tuple[int, int]:
        return round(wx), self.window.height - 1 - round(wy)

    def move(self, wx: float, wy: float) -> Iterator[float]:
        yield from xdo("mousemove", "--window", self.xid, *self.client(wx, wy))
        yield 0.1

    def click(self, wx: float, wy: float, button: int = 1) -> Iterator[float]:
        yield from self.move(wx, wy)
        yield from xdo("click", button)

    def drag(self, start: tuple[float, float], end: tuple[float, float]) -> Iterator[float]:
        yield from self.move(*start)
        yield from xdo("mousedown", 1)
        yield 0.1
        for f in (0.5, 1.0):
            yield from self.move(start[0] + f * (end[0] - start[0]),
                                 start[1] + f * (end[1] - start[1]))
        yield from xdo("mouseup", 1)
        yield 0.3

    def screenshot(self, path: Path) -> Iterator[float]:
        """The whole window, as the user sees it after the next redraw."""
        for area in self.window.screen.areas:
            area.tag_redraw()
        yield 0.4
        with bpy.context.temp_override(window=self.window, screen=self.window.screen,
                                       area=self.window.screen.areas[0]):
            if bpy.ops.screen.screenshot(filepath=str(path)) != {"FINISHED"}:
                raise Failed(f"screenshot {path} failed")
        yield from wait_for(path.exists, 5, f"screenshot {path}")


def region(area: bpy.types.Area, kind: str) -> bpy.types.Region:
    return next(r for r in area.regions if r.type == kind)


def sequencer_area(window: bpy.types.Window, view_type: str) -> bpy.types.Area | None:
    for area in window.screen.areas:
        if area.type == "SEQUENCE_EDITOR" and area.spaces.active.view_type == view_type:
            return area
    return None


def cur(view: bpy.types.Region) -> tuple[float, float, float, float]:
    """The View2D's visible rect (xmin, xmax, ymin, ymax); bpy hides ``cur`` itself."""
    x0, y0 = view.view2d.region_to_view(0, 0)
    x1, y1 = view.view2d.region_to_view(view.width - 1, view.height - 1)
    return x0, x1, y0, y1


def load_truth(path: str) -> tuple[np.ndarray, np.ndarray, int, int]:
    data = np.load(path)
    width, height = int(data["width"]), int(data["height"])
    masks = np.unpackbits(data["masks"], axis=-1)[..., :width].astype(bool)
    return masks, data["centers"], width, height


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


# ------------------------------------------------------------------------------ the run


class Run:
    def __init__(self) -> None:
        self.out = Path(CONFIG["out"])
        self.out.mkdir(parents=True, exist_ok=True)
        self.docs = Path(CONFIG["docs"]) if CONFIG.get("docs") else None
        self.truth, self.centers, self.width, self.height = load_truth(CONFIG["truth"])
        self.results: dict = {"blender": bpy.app.version_string, "scenarios": [],
                              "checks": {}, "screenshots": {}}
        self.ok = True

    def check(self, name: str, ok: bool, detail: str = "") -> bool:
        self.results["checks"][name] = {"ok": bool(ok), "detail": detail}
        self.ok &= bool(ok)
        say(f"{'ok  ' if ok else 'FAIL'} {name}{': ' + detail if detail else ''}")
        return ok

    # --- setup -------------------------------------------------------------------------

    def enable_addon(self) -> None:
        import addon_utils

        mod = addon_utils.enable(ADDON, default_set=True, handle_error=None)
        if mod is None or not hasattr(bpy.types, "KLING_PT_main"):
            raise Failed("the add-on did not register")
        self.check("add-on enabled", True,
                   f"{mod.bl_info['name']} (legacy add-on) from {Path(mod.__file__).parent}")
        prefs = bpy.context.preferences.addons[ADDON].preferences
        prefs.region = "custom"
        prefs.custom_url = CONFIG["base_url"]
        prefs.auth_mode = "keys"
        prefs.access_key = CONFIG["access_key"]
        prefs.secret_key = CONFIG["secret_key"]

    def build_scene(self) -> None:
        from blender_addon import compat

        scene = bpy.context.scene
        render = scene.render
        render.resolution_x, render.resolution_y, render.resolution_percentage = 1280, 720, 100
        render.fps, render.fps_base = 30, 1.0
        scene.frame_start, scene.frame_end = 1, 60
        editor = scene.sequence_editor_create()
        strip = compat.new_movie(editor, "plate", CONFIG["clip"], 2, 1)
        editor.active_strip = strip
        strip.select = True
        self.scene, self.strip = scene, strip

    def layout(self) -> Iterator[float]:
        """Video Editing workspace; a bigger Preview with its sidebar open."""
        self.window = bpy.context.window_manager.windows[0]
        template = next((path for base in bpy.utils.app_template_paths()
                         if (path := Path(base, "Video_Editing", "startup.blend")).exists()),
                        None)
        if template is None:
            raise Failed("Blender's Video Editing template is missing")
        with bpy.context.temp_override(window=self.window, screen=self.window.screen,
                                       area=self.window.screen.areas[0]):
            bpy.ops.workspace.append_activate(idname="Video Editing", filepath=str(template))
        yield from wait_for(lambda: sequencer_area(self.window, "PREVIEW") is not None
                            and region(sequencer_area(self.window, "PREVIEW"),
                                       "PREVIEW").width > 100,
                            10, "the Video Editing workspace")
        xid = (yield from xdo("search", "--onlyvisible", "--pid", os.getpid())).split()
        if not xid:
            raise Failed("xdotool finds no Blender window")
        self.screen = Screen(self.window, xid[0])
        preview = sequencer_area(self.window, "PREVIEW")
        timeline = sequencer_area(self.window, "SEQUENCER")
        # The timeline below keeps ~220 px; the file browser on the left shrinks to ~120 px.
        edge_y = preview.y - 1
        yield from self.screen.drag((preview.x + preview.width / 2, edge_y),
                                    (preview.x + preview.width / 2,
                                     edge_y - max(timeline.height - 220, 0)))
        edge_x = preview.x - 1
        yield from self.screen.drag((edge_x, preview.y + preview.height / 2),
                                    (min(edge_x, 120), preview.y + preview.height / 2))
        preview.spaces.active.show_region_ui = True
        yield from wait_for(lambda: region(preview, "UI").width > 100, 5, "the sidebar")
        with bpy.context.temp_override(window=self.window, area=timeline,
                                       region=region(timeline, "WINDOW")):
            bpy.ops.sequencer.view_all()
        self.area, self.view = preview, region(preview, "PREVIEW")
        yield 0.3
        self.results["preview_region"] = [self.view.width, self.view.height]
        say(f"Preview region {self.view.width}x{self.view.height} px at "
            f"({self.view.x}, {self.view.y}); sidebar {region(preview, 'UI').width} px")

    def open_kling_tab(self) -> Iterator[float]:
        """Turn the mouse wheel over the sidebar's tabs until the Kling panel is drawn."""
        panel = bpy.types.KLING_PT_main
        original, drawn = panel.draw, []

        def counting_draw(self, context):
            drawn.append(1)
            return original(self, context)

        panel.draw = counting_draw
        try:
            sidebar = region(self.area, "UI")
            tabs = (sidebar.x + sidebar.width - 11, sidebar.y + sidebar.height - 40)
            for button in [None] + [5] * 8 + [4] * 16:  # 5: next tab, 4: previous tab
                if button is not None:
                    yield from self.screen.click(*tabs, button=button)
                drawn.clear()
                self.area.tag_redraw()
                yield 0.3
                if drawn:
                    break
        finally:
            panel.draw = original
        if not self.check("Kling tab open in the Preview's sidebar", bool(drawn)):
            raise Failed("the Kling tab could not be opened")

    def start_session(self) -> Iterator[float]:
        from blender_addon.bridge.props import load_selection

        runtime = bpy.context.window_manager.kling
        with bpy.context.temp_override(window=self.window, area=self.area, region=self.view):
            started = bpy.ops.kling.start_session()
        if started != {"FINISHED"}:
            raise Failed(f"kling.start_session returned {started}")
        yield from wait_for(lambda: self.strip.kling.selection_json or runtime.error, 60,
                            "the session")
        state = load_selection(self.strip)
        if not self.check("session started", state is not None and not runtime.error,
                          runtime.error or f"{state.session_id[:12]}…, "
                          f"{state.total_frames} frames at {state.fps:g} fps"):
            raise Failed("no session")

    # --- one click ---------------------------------------------------------------------

    def to_window(self, x: float, y: float) -> tuple[float, float]:
        """Kling's normalized (x, y) -> window pixel, through the add-on's own mapping."""
        from blender_addon.bridge import geometry
        from blender_addon.pure import mapping

        vx, vy = geometry.normalized_to_view(self.scene, self.strip, x, y)
        rx, ry = mapping.view_to_region(cur(self.view), self.view.width, self.view.height,
                                        vx, vy)
        return self.view.x + rx, self.view.y + ry

    def projected(self, mask: np.ndarray) -> np.ndarray:
        """``mask`` (source pixels) as it should cover the Preview region's pixels, y up."""
        from blender_addon.bridge import geometry

        def view(x: float, y: float) -> np.ndarray:
            return np.array(geometry.normalized_to_view(self.scene, self.strip, x, y))

        origin = view(0.0, 0.0)
        basis = np.column_stack([view(1.0, 0.0) - origin, view(0.0, 1.0) - origin])
        w, h = self.view.width, self.view.height
        # Pixel centres, as the GPU rasterizes: View2D's ortho matrix maps cur onto [0, w].
        rx, ry = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
        xmin, xmax, ymin, ymax = cur(self.view)
        vx = xmin + (xmax - xmin) * rx / w
        vy = ymin + (ymax - ymin) * ry / h
        nx, ny = np.linalg.solve(basis, np.stack([vx.ravel() - origin[0],
                                                  vy.ravel() - origin[1]]))
        col = np.floor(nx * mask.shape[1]).astype(int)
        row = np.floor(ny * mask.shape[0]).astype(int)
        inside = (col >= 0) & (col < mask.shape[1]) & (row >= 0) & (row < mask.shape[0])
        out = np.zeros(w * h, bool)
        out[inside] = mask[row[inside], col[inside]]
        return out.reshape(h, w)

    def region_pixels(self, path: Path) -> np.ndarray:
        """The Preview region's pixels from a window screenshot, row 0 at the bottom."""
        image = np.asarray(Image.open(path).convert("RGB")).astype(np.int16)
        top = self.window.height - (self.view.y + self.view.height)
        crop = image[top:top + self.view.height, self.view.x:self.view.x + self.view.width]
        return crop[::-1]

    def compare(self, found: np.ndarray, expected: np.ndarray, click: tuple[int, int],
                picture: Path) -> tuple[float, tuple[float, float]]:
        """IoU and centroid offset (x, y; screen px, y up) of two masks of the Preview region.

        Compared near ``expected`` only (other UI bits may redraw elsewhere) and without the
        point's dot; writes ``picture`` (white: both, red: found only, blue: expected only).
        """
        ry, rx = np.mgrid[0:self.view.height, 0:self.view.width]
        near = np.zeros_like(expected)
        if expected.any():
            where = np.argwhere(expected)
            (y0, x0), (y1, x1) = where.min(axis=0), where.max(axis=0)
            margin = max(y1 - y0, x1 - x0) // 4 + 10
            near[max(y0 - margin, 0):y1 + margin + 1, max(x0 - margin, 0):x1 + margin + 1] = True
        near &= (rx - click[0]) ** 2 + (ry - click[1]) ** 2 > DOT_RADIUS_PX**2
        found, expected = found & near, expected & near
        image = np.zeros((*found.shape, 3), np.uint8)
        image[found & expected] = (255, 255, 255)
        image[found & ~expected] = (255, 0, 0)
        image[expected & ~found] = (0, 96, 255)
        Image.fromarray(image[::-1]).save(picture)
        if not (found.any() and expected.any()):
            return 0.0, (math.inf, math.inf)
        dy, dx = np.argwhere(found).mean(axis=0) - np.argwhere(expected).mean(axis=0)
        return iou(found, expected), (float(dx), float(dy))

    def click_scenario(self, index: int, sc: Scenario) -> Iterator[float]:
        from blender_addon.bridge import geometry
        from blender_addon.bridge.props import load_selection
        from kling_elements import rle

        runtime = bpy.context.window_manager.kling
        self.scene.frame_set(sc.frame)
        transform = self.strip.transform
        transform.offset_x, transform.offset_y = sc.offset
        transform.scale_x, transform.scale_y = sc.scale
        transform.rotation = sc.rotation
        override = {"window": self.window, "area": self.area, "region": self.view}
        with bpy.context.temp_override(**override):
            bpy.ops.sequencer.view_all_preview()
            if sc.zoom is not None:
                bpy.ops.sequencer.view_zoom_ratio(ratio=sc.zoom)
        yield 0.3
        frame = geometry.session_frame(self.scene, self.strip, load_selection(self.strip),
                                       sc.frame)
        if frame is None:
            raise Failed(f"{sc.name}: scene frame {sc.frame} has no session frame")
        target = tuple(float(v) for v in self.centers[frame])
        if sc.centre_view:
            wx, wy = self.to_window(*target)
            with bpy.context.temp_override(**override):
                bpy.ops.view2d.pan(
                    deltax=round(wx - self.view.x - (self.view.width - 1) / 2),
                    deltay=round(wy - self.view.y - (self.view.height - 1) / 2))
            yield 0.3
        xmin, xmax, _, _ = cur(self.view)
        zoom = (self.view.width - 1) / (xmax - xmin)
        wx, wy = (round(v) for v in self.to_window(*target))
        if not (self.view.x + 10 <= wx < self.view.x + self.view.width - 10
                and self.view.y + 10 <= wy < self.view.y + self.view.height - 10):
            raise Failed(f"{sc.name}: the ball's centre ({wx}, {wy}) is off the Preview")

        before = self.out / f"{index:02d}-{sc.name}-before.png"
        yield from self.screen.screenshot(before)
        with bpy.context.temp_override(**override):
            invoked = bpy.ops.kling.select_points("INVOKE_DEFAULT")
        if invoked != {"RUNNING_MODAL"}:
            raise Failed(f"{sc.name}: kling.select_points returned {invoked}")
        yield 0.2
        yield from self.screen.click(wx, wy)
        yield from wait_for(
            lambda: runtime.error or frame in load_selection(self.strip).points, 30,
            f"{sc.name}: the point on frame {frame}")
        if runtime.error:
            raise Failed(f"{sc.name}: {runtime.error}")
        state = load_selection(self.strip)
        shot = self.out / f"{index:02d}-{sc.name}.png"
        yield 0.3
        yield from self.screen.screenshot(shot)
        yield from xdo("key", "Escape")
        yield 0.2

        x, y = state.points[frame][-1]
        truth = self.truth[frame]
        col, row = round(x * (self.width - 1)), round(y * (self.height - 1))
        on_ball = bool(truth[row, col])
        error_px = math.hypot((x - target[0]) * (self.width - 1),
                              (y - target[1]) * (self.height - 1))
        masks = [rle.decode(m["counts"], tuple(m["size"])) for m in state.masks[frame]]
        union = np.maximum.reduce(masks).astype(bool)
        mask_iou = iou(union, truth)

        # Independent of the add-on: the orange ball as Blender itself draws the strip must be
        # where the add-on's mapping puts the ground truth (clicks and overlay rely on it).
        click = (wx - self.view.x, wy - self.view.y)
        r, g, b = np.moveaxis(self.region_pixels(before), 2, 0)
        orange = (r > 170) & (r - g > 70) & (b < 60)
        ball_iou, ball_offset = self.compare(
            orange, self.projected(truth), click,
            self.out / f"{index:02d}-{sc.name}-ball-check.png")
        # The overlay: what the click changed on screen must be the stored mask, projected.
        changed = np.abs(self.region_pixels(shot) - self.region_pixels(before)).max(axis=2) > 12
        screen_iou, overlay_offset = self.compare(
            changed, self.projected(union), click,
            self.out / f"{index:02d}-{sc.name}-overlay-check.png")
        dot_rgb = self.region_pixels(shot)[click[1], click[0]]
        dot_ok = bool(dot_rgb[0] > 200 and dot_rgb[1] > 170 and dot_rgb[2] < 90)

        passed = (on_ball and mask_iou >= IOU_MIN and dot_ok
                  and ball_iou >= BALL_IOU_MIN
                  and math.hypot(*ball_offset) <= BALL_OFFSET_MAX_PX
                  and screen_iou >= SCREEN_IOU_MIN
                  and math.hypot(*overlay_offset) <= OVERLAY_OFFSET_MAX_PX)
        self.ok &= passed
        before.unlink()
        result = {
            "name": sc.name, "scene_frame": sc.frame, "session_frame": frame,
            "zoom": round(zoom, 4), "transform": {"offset": sc.offset, "scale": sc.scale,
                                                  "rotation": sc.rotation},
            "target": target, "click_window_px": [wx, wy],
            "click_screen_px": list(self.screen.client(wx, wy)),
            "stored_point": [x, y], "click_error_src_px": round(error_px, 3),
            "on_ball": on_ball, "mask_iou": round(mask_iou, 4),
            "ball_on_screen_iou": round(ball_iou, 4),
            "ball_on_screen_offset_px": [round(v, 3) for v in ball_offset],
            "overlay_screen_iou": round(screen_iou, 4),
            "overlay_offset_px": [round(v, 3) for v in overlay_offset],
            "dot_rgb": [int(v) for v in dot_rgb],
            "dot_ok": dot_ok, "screenshot": str(shot), "pass": passed,
        }
        self.results["scenarios"].append(result)
        say(f"{'PASS' if passed else 'FAIL'} {sc.name:<13} scene frame {sc.frame:>2} -> #"
            f"{frame:<2} zoom {zoom:.2f}  click ({wx}, {wy}) -> ({x:.5f}, {y:.5f}) "
            f"[{error_px:.2f} src px from the centre], on ball: {'yes' if on_ball else 'NO'}, "
            f"mask IoU {mask_iou:.3f}; on screen: ball IoU {ball_iou:.3f} offset "
            f"({ball_offset[0]:+.2f}, {ball_offset[1]:+.2f}) px, overlay IoU {screen_iou:.3f} "
            f"offset ({overlay_offset[0]:+.2f}, {overlay_offset[1]:+.2f}) px, "
            f"dot {'yes' if dot_ok else 'NO'}")
        if sc.name == DOCS_OVERLAY_SCENARIO:  # the Preview with its header, not the sidebar
            self.save_docs(shot, "overlay", (self.area.x, self.view.y,
                                             self.view.x + self.view.width - self.area.x,
                                             self.area.y + self.area.height - self.view.y))

    def esc_ends_the_tool(self) -> Iterator[float]:
        """After Esc a click in the Preview must not mark anything."""
        from blender_addon.bridge.props import load_selection

        before = self.strip.kling.selection_json
        last = self.results["scenarios"][-1]["click_window_px"]
        yield from self.screen.click(*last)
        yield 1.5
        self.check("Esc ends the tool (a later click marks nothing)",
                   self.strip.kling.selection_json == before and len(
                       load_selection(self.strip).frames()) == len(SCENARIOS))

    def panel_shot(self) -> Iterator[float]:
        """Give the sidebar room (drag two edges) and photograph the Kling panels."""
        timeline = sequencer_area(self.window, "SEQUENCER")
        edge_y, x = self.area.y - 1, self.area.x + self.area.width / 2
        yield from self.screen.drag((x, edge_y), (x, edge_y - max(timeline.height - 60, 0)))
        sidebar = region(self.area, "UI")
        mid = sidebar.y + sidebar.height / 2
        yield from self.screen.drag((sidebar.x + 1, mid), (sidebar.x - 110, mid))
        yield from self.screen.move(self.view.x + 40, self.view.y + 40)
        shot = self.out / "panel.png"
        yield from self.screen.screenshot(shot)
        sidebar = region(self.area, "UI")
        self.save_docs(shot, "panel", (sidebar.x, sidebar.y, sidebar.width, sidebar.height))

    # --- Edit, Generate, Tasks, the result ----------------------------------------------

    def scroll_sidebar(self) -> Iterator[float]:
        """Turn the mouse wheel over the sidebar until it scrolls no further down."""
        sidebar = region(self.area, "UI")
        yield from self.screen.move(sidebar.x + 12, sidebar.y + sidebar.height / 2)
        last = None
        for _ in range(20):
            top = sidebar.view2d.region_to_view(0, sidebar.height - 1)
            if top == last:
                return
            last = top
            yield from xdo("click", "--repeat", 5, "--delay", 40, 5)
            yield 0.3
        raise Failed("the sidebar kept scrolling")

    def sidebar_panels(self, shot: Path) -> dict[str, tuple[int, int]]:
        """Kling sub-panels seen in the sidebar: name -> (bottom, top) rows, window px y up.

        Found by their header rows (the theme's header grey at both margins), named in
        registration order from the last one, so the sidebar must be scrolled to the bottom.
        A panel ends where the next header begins (the last one at the region's bottom).
        """
        from blender_addon.ui import panels as ui

        sidebar = region(self.area, "UI")
        image = np.asarray(Image.open(shot).convert("L")).astype(int)
        top = self.window.height - (sidebar.y + sidebar.height)
        crop = image[top:top + sidebar.height, sidebar.x:sidebar.x + sidebar.width]
        margins = crop[:, [10, 14, sidebar.width - 37, sidebar.width - 35]]
        header = (np.abs(margins - HEADER_GREY) <= 2).all(axis=1)
        spans, start = [], None
        for row, on in enumerate([*header, False]):
            if on and start is None:
                start = row
            elif not on and start is not None:
                spans.append((start, row))
                start = None
        # Adjacent headers (a closed panel over the next one) make one span: split it.
        whole = [end - start for start, end in spans if start > 0 and 18 <= end - start <= 40]
        unit = min(whole, default=26)
        starts = []
        for start, end in spans:
            if start == 0 and end - start <= unit + 2:  # cut off by the region's top
                starts.append(start)
                continue
            count = round((end - start) / unit)
            if 1 <= count <= 6 and abs(end - start - count * unit) <= 2 * count:
                starts += [start + i * (end - start) // count for i in range(count)]
        names = [cls.bl_label for cls in ui.classes if getattr(cls, "bl_parent_id", "")]
        starts = starts[-len(names):]
        found: dict[str, tuple[int, int]] = {}
        window_top = sidebar.y + sidebar.height  # crop row r is window row window_top - r
        for index, (name, first) in enumerate(
                zip(names[len(names) - len(starts):], starts, strict=True)):
            following = starts[index + 1] if index + 1 < len(starts) else sidebar.height
            found[name] = (window_top - following, window_top - first)
        return found

    def save_panel(self, shot: Path, name: str, panel: str) -> None:
        """Save the sidebar's ``panel`` for the docs (the whole sidebar if it is not found)."""
        sidebar = region(self.area, "UI")
        found = self.sidebar_panels(shot)
        self.results.setdefault("sidebar_panels", {})[name] = found
        if panel in found:
            bottom, top = found[panel]
            # Without the tab bar on the right (~28 px): the panel and its margins only.
            rect = (sidebar.x + 4, bottom, sidebar.width - 32, top - bottom + 4)
        else:
            say(f"(the {panel} panel was not found in {shot.name}: the whole sidebar is saved)")
            rect = (sidebar.x, sidebar.y, sidebar.width, sidebar.height)
        self.save_docs(shot, name, rect)

    def edit_settings(self) -> Iterator[float]:
        """Fill in the Edit panel: Remove, Kling's prompt template with its [x] filled in."""
        from blender_addon.ops.edit import edit_problems_for
        from kling_elements import prompts

        transform = self.strip.transform  # the clip as imported again, for the result checks
        transform.offset_x = transform.offset_y = 0.0
        transform.scale_x = transform.scale_y = 1.0
        transform.rotation = 0.0
        self.scene.frame_set(EDIT_FRAME)
        edit = self.strip.kling.edit
        edit.edit_mode = "removal"
        sidebar = region(self.area, "UI")
        with bpy.context.temp_override(window=self.window, area=self.area, region=sidebar):
            used = bpy.ops.kling.prompt_template()
        template = edit.prompt
        edit.prompt = template.replace("[x]", EDIT_FILL)
        problems = edit_problems_for(self.strip)
        self.results["edit"] = {"edit_mode": edit.edit_mode, "template": template,
                                "prompt": edit.prompt, "problems": problems}
        self.check("Edit settings: Remove, the template's prompt filled in",
                   used == {"FINISHED"} and template == prompts.template("removal")
                   and prompts.placeholders_left(edit.prompt) == 0 and not problems,
                   f"kling.prompt_template {sorted(used)} gave {template!r}; prompt "
                   f"{edit.prompt!r}; Generate's problems: {problems or 'none'}")
        yield from self.scroll_sidebar()
        shot = self.out / "edit.png"
        yield from self.screen.screenshot(shot)
        self.save_panel(shot, "edit", "Edit")

    def generate(self) -> Iterator[float]:
        """Invoke Generate as its button does; click the confirmation popup's button."""
        tasks = self.strip.kling.tasks
        sidebar = region(self.area, "UI")
        spot = (sidebar.x + sidebar.width * 0.45, sidebar.y + sidebar.height * 0.4)
        yield from self.screen.move(*spot)
        with bpy.context.temp_override(window=self.window, area=self.area, region=sidebar):
            invoked = bpy.ops.kling.generate("INVOKE_DEFAULT")
        yield 0.5
        asked = len(tasks) == 0  # the popup waits for the click; nothing is sent yet
        popup = self.out / "generate-popup.png"
        yield from self.screen.screenshot(popup)
        # The popup opens with its button under the mouse; nudge the mouse and click it.
        yield from self.screen.click(spot[0] + 3, spot[1])
        yield from wait_for(lambda: len(tasks) > 0, 10, "a task record after the popup's click")
        self.clicked = time.monotonic()
        record = tasks[-1]
        self.results["edit"].update(invoke=sorted(invoked), popup_screenshot=str(popup),
                                    external_task_id=record.external_task_id)
        self.check("Generate: its confirmation popup's button sends the task",
                   asked and len(tasks) == 1 and record.status != "not_sent",
                   f"invoke {sorted(invoked)}; no task before the click, "
                   f"{len(tasks)} after ({record.external_task_id}, {record.status})")

    def wait_for_result(self) -> Iterator[float]:
        """The add-on's timer polls, downloads and imports; only the event loop runs here."""
        from blender_addon import compat

        seen: list[str] = []

        def finished() -> bool:
            record = self.strip.kling.tasks[-1]
            if not seen or seen[-1] != record.status:
                seen.append(record.status)
            return record.status in ("failed", "not_sent") or bool(
                record.status == "succeed" and record.imported_strip)

        yield from wait_for(finished, TASK_TIMEOUT_S, "the task to finish and be imported")
        seconds = time.monotonic() - self.clicked
        self.imported_at = time.monotonic()
        record = self.strip.kling.tasks[-1]
        path = bpy.path.abspath(record.result_path)
        result = compat.strip_by_name(self.scene, record.imported_strip)
        self.result = result
        self.results["edit"].update(
            statuses=seen, task_id=record.task_id, seconds_to_import=round(seconds, 2),
            result_path=path, imported_strip=record.imported_strip, video_id=record.video_id)
        if not self.check("task succeeded; the add-on's timer downloaded and imported it",
                          record.status == "succeed" and os.path.isfile(path)
                          and result is not None,
                          f"task {record.task_id}: {' -> '.join(seen)} in {seconds:.1f} s "
                          f"after the click; {os.path.basename(path)} "
                          f"({os.path.getsize(path) if os.path.isfile(path) else 0} bytes) "
                          f"as strip {record.imported_strip!r}; message {record.message!r}"):
            raise Failed("no imported result")
        src = self.strip
        self.results["edit"].update(
            source={"channel": src.channel, "frames": [src.frame_final_start,
                                                       src.frame_final_end]},
            result={"channel": result.channel, "frames": [result.frame_final_start,
                                                          result.frame_final_end],
                    "video_id": result.kling.video_id, "task_id": result.kling.task_id})
        self.check("result strip on the channel above the source",
                   result.type == "MOVIE" and result.channel == src.channel + 1,
                   f"{result.name!r} ({result.type}) on channel {result.channel}, the source "
                   f"on {src.channel}")
        self.check("result strip has the source's frame range",
                   (result.frame_final_start, result.frame_final_end)
                   == (src.frame_final_start, src.frame_final_end),
                   f"frames {result.frame_final_start}-{result.frame_final_end}, the source "
                   f"{src.frame_final_start}-{src.frame_final_end}")
        self.check("result strip carries Kling's video id and task id",
                   result.kling.video_id == record.video_id != ""
                   and result.kling.task_id == record.task_id,
                   f"video id {result.kling.video_id!r} (task's {record.video_id!r}), "
                   f"task id {result.kling.task_id!r}")

    def tasks_shot(self) -> Iterator[float]:
        """The Tasks panel with the finished task (Re-import and Open Folder show then)."""
        panel = bpy.types.KLING_PT_tasks
        original, drawn = panel.draw, []

        def watching_draw(self, context):
            strip = context.scene.sequence_editor.active_strip
            drawn.append([(r.status, bool(r.result_path)) for r in strip.kling.tasks])
            return original(self, context)

        panel.draw = watching_draw
        try:
            yield from self.scroll_sidebar()
            shot = self.out / "tasks.png"
            yield from self.screen.screenshot(shot)
        finally:
            panel.draw = original
        self.save_panel(shot, "tasks", "Tasks")
        self.check("Tasks panel shows the finished task with its file",
                   bool(drawn) and drawn[-1] == [("succeed", True)],
                   f"drawn {len(drawn)} times, last with {drawn[-1] if drawn else None}")

    def preview_shot(self, path: Path) -> Generator[float, None, np.ndarray]:
        """Screenshot the window; the Preview region's pixels (row 0 at the bottom)."""
        yield from self.screen.screenshot(path)
        return self.region_pixels(path)

    def result_shot(self) -> Iterator[float]:
        """Timeline and Preview with both strips; the Preview must show the result."""
        from blender_addon.bridge import geometry
        from blender_addon.bridge.props import load_selection

        # A smaller window (docs show it near its size), then only the Preview over the
        # timeline: close the file browser and the Properties editor beside the Preview (it
        # takes their room), hide both sidebars, give the timeline room.
        yield from xdo("windowsize", self.screen.xid, *RESULT_WINDOW_PX)
        yield from wait_for(lambda: (self.window.width, self.window.height)
                            == RESULT_WINDOW_PX, 10, "the window to shrink")
        yield 0.5
        for area in [a for a in self.window.screen.areas if a.type in ("FILE_BROWSER",
                                                                      "PROPERTIES")]:
            with bpy.context.temp_override(window=self.window, screen=self.window.screen,
                                           area=area):
                bpy.ops.screen.area_close()
            yield 0.3
        timeline = sequencer_area(self.window, "SEQUENCER")
        x, edge_y = self.area.x + self.area.width / 2, self.area.y - 1
        yield from self.screen.drag((x, edge_y), (x, edge_y + max(
            RESULT_TIMELINE_PX - timeline.height, 0)))
        self.area.spaces.active.show_region_ui = False
        space = timeline.spaces.active
        space.show_region_ui = False
        space.timeline_overlay.show_strip_source = False  # long temporary paths
        yield 0.3
        with bpy.context.temp_override(window=self.window, area=timeline,
                                       region=region(timeline, "WINDOW")):
            bpy.ops.sequencer.view_all()
        with bpy.context.temp_override(window=self.window, area=self.area, region=self.view):
            bpy.ops.sequencer.view_all_preview()
        yield from self.screen.move(self.view.x + 20, self.view.y + 20)
        yield 0.6  # view_all animates

        frame = geometry.session_frame(self.scene, self.strip, load_selection(self.strip),
                                       self.scene.frame_current)
        ball = self.projected(self.truth[frame])
        image = self.projected(np.ones_like(self.truth[frame]))
        where = np.argwhere(ball)
        (y0, x0), (y1, x1) = where.min(axis=0) - 12, where.max(axis=0) + 12
        off_ball = image.copy()
        off_ball[max(y0, 0):y1 + 1, max(x0, 0):x1 + 1] = False

        def orange(pixels: np.ndarray) -> float:
            r, g, b = np.moveaxis(pixels, 2, 0)
            return float(((r > 170) & (r - g > 70) & (b < 60))[ball].mean())

        self.result.mute = True
        source = yield from self.preview_shot(self.out / "result-muted.png")
        self.result.mute = False
        shot = self.out / "result.png"
        shown = yield from self.preview_shot(shot)
        before, after = orange(source), orange(shown)
        diff = float(np.abs(shown - source).max(axis=2)[off_ball].mean())
        self.results["edit"].update(ball_orange_source=round(before, 4),
                                    ball_orange_result=round(after, 4),
                                    off_ball_mean_diff=round(diff, 3), result_frame=frame)
        self.check("Preview shows the result: the ball is gone, the rest unchanged",
                   before >= BALL_IOU_MIN and after <= BALL_GONE_MAX
                   and diff <= RESULT_DIFF_MAX,
                   f"scene frame {self.scene.frame_current} (#{frame}): orange in the ball's "
                   f"mask {before:.3f} with the result muted, {after:.3f} with it shown; off "
                   f"the ball mean |difference| {diff:.2f}/255")
        timeline = sequencer_area(self.window, "SEQUENCER")
        top = self.area.y + self.area.height
        self.results["result_layout"] = {"timeline": [timeline.x, timeline.y, timeline.width,
                                                      timeline.height],
                                         "preview_area": [self.area.x, self.area.y,
                                                          self.area.width, self.area.height]}
        self.save_docs(shot, "result", (timeline.x, timeline.y, timeline.width,
                                        top - timeline.y))

    def imported_once(self) -> Iterator[float]:
        """Later poll rounds must not import the result again."""
        from blender_addon import compat
        from blender_addon.ops import tasks as ops_tasks

        later = self.imported_at + 2 * ops_tasks.POLL_INTERVAL_S + 0.5
        yield from wait_for(lambda: time.monotonic() >= later, 30, "two more poll rounds")
        task_id = self.strip.kling.tasks[-1].task_id
        copies = [s.name for s in compat.strips(self.scene.sequence_editor)
                  if s.kling.task_id == task_id]
        self.check("imported once (two more poll rounds later)", len(copies) == 1,
                   f"strips of task {task_id}: {copies}; pending records: "
                   f"{len(ops_tasks.pending_records())}")

    def save_docs(self, shot: Path, name: str, rect: tuple[int, int, int, int]) -> None:
        """Crop ``rect`` (x, y, width, height; window pixels, y up) out of a screenshot."""
        x, y, w, h = rect
        top = self.window.height - (y + h)
        image = Image.open(shot).convert("RGB").crop((x, top, x + w, top + h))
        if image.width > DOCS_WIDTH:
            image = image.resize((DOCS_WIDTH, round(image.height * DOCS_WIDTH / image.width)),
                                 Image.Resampling.LANCZOS)
        path = self.out / f"blender-addon-{name}.png"
        image.save(path, optimize=True)
        if path.stat().st_size > DOCS_MAX_BYTES:  # video frames: 256 colours are plenty
            image = image.quantize(256, dither=Image.Dither.FLOYDSTEINBERG)
            image.save(path, optimize=True)
        self.results["screenshots"][name] = str(path)
        if self.docs is not None:
            self.docs.mkdir(parents=True, exist_ok=True)
            image.save(self.docs / path.name, optimize=True)
            self.results["screenshots"][name] = str(self.docs / path.name)

    def steps(self) -> Iterator[float]:
        yield 0.5
        self.enable_addon()
        self.build_scene()
        yield from self.layout()
        yield from self.open_kling_tab()
        yield from self.start_session()
        for index, sc in enumerate(SCENARIOS):
            yield from self.click_scenario(index, sc)
        yield from self.esc_ends_the_tool()
        yield from self.panel_shot()
        yield from self.edit_settings()
        yield from self.generate()
        yield from self.wait_for_result()
        yield from self.tasks_shot()
        yield from self.result_shot()
        yield from self.imported_once()


def main() -> None:
    run = Run()
    steps = run.steps()
    started = time.monotonic()

    def finish(error: str = "") -> None:
        if error:
            run.ok = False
            run.results["error"] = error
            say(f"FAIL {error}")
        passed = sum(s["pass"] for s in run.results["scenarios"])
        checks = run.results["checks"].values()
        run.results["pass"] = run.ok and passed == len(SCENARIOS)
        run.results["seconds"] = round(time.monotonic() - started, 1)
        Path(CONFIG["results"]).write_text(json.dumps(run.results, indent=2))
        say(f"{'PASS' if run.results['pass'] else 'FAIL'}: {passed}/{len(SCENARIOS)} click "
            f"scenarios and {sum(c['ok'] for c in checks)}/{len(checks)} checks passed in "
            f"{run.results['seconds']:g} s")
        sys.stdout.flush()
        sys.stderr.flush()
        # Leave at once: no teardown of the worker thread, timers or the GPU context.
        os._exit(0 if run.results["pass"] else 1)

    def tick() -> float | None:
        try:
            if time.monotonic() - started > TIMEOUT_S:
                raise Failed(f"the run took more than {TIMEOUT_S:g} s")
            return next(steps)
        except StopIteration:
            finish()
        except Failed as exc:
            finish(str(exc))
        except Exception:
            traceback.print_exc()
            finish("unexpected error (traceback above)")
        return None

    bpy.app.timers.register(tick, first_interval=0.5)


main()
