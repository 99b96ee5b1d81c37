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
from collections.abc import Callable, Iterator
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
        from blender_addon.props import load_selection

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
        from blender_addon import geometry, mapping

        vx, vy = geometry.normalized_to_view(self.scene, self.strip, x, y)
        rx, ry = mapping.view_to_region(cur(self.view), self.view.width, self.view.height,
                                        vx, vy)
        return self.view.x + rx, self.view.y + ry

    def projected(self, mask: np.ndarray) -> np.ndarray:
        """``mask`` (source pixels) as it should cover the Preview region's pixels, y up."""
        from blender_addon import geometry

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
        from blender_addon import geometry
        from blender_addon.props import load_selection
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
        from blender_addon.props import load_selection

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
        run.results["pass"] = run.ok and passed == len(SCENARIOS)
        Path(CONFIG["results"]).write_text(json.dumps(run.results, indent=2))
        say(f"{'PASS' if run.results['pass'] else 'FAIL'}: {passed}/{len(SCENARIOS)} click "
            "scenarios passed")
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
