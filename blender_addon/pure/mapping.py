"""Pure math between the sequencer preview, a movie strip's source frame and Kling's clip.

No ``bpy`` here: the operators read plain numbers from Blender and pass them in, so every
formula is unit-tested without Blender. Two chains are modelled:

Space: region pixel -> preview *view* coordinates -> source-image pixel -> Kling (x, y).
Time: scene frame -> source-file frame -> frame index of Kling's normalized video.

Conventions established from Blender's source (file names as in ``blender/blender``; the
same formulas hold in 3.4, 4.2, 4.5 and 5.x unless a note says otherwise):

* **View space** (the preview region's View2D). ``sequencer_preview_draw.cc`` (4.x/5.x;
  ``sequencer_draw.c`` in 3.4), ``preview_draw_begin``/``sequencer_display_size``: the
  ``tot`` rect is ``round(resolution_x * pixel_aspect_x / pixel_aspect_y)`` by
  ``resolution_y`` and, the preview View2D being ``V2D_ALIGN_FREE`` (``space_sequencer.cc``),
  centred on 0. So view (0, 0) is the canvas centre, y points up and one view unit is one
  scene pixel at **100 %**: ``resolution_percentage`` and proxies change only how many
  pixels are rendered, never view coordinates (``render.cc``: offsets are multiplied by the
  preview scale factor, and ``get_strip_screen_quad`` scales the view-space quad by it).
* **Strip image placement** (``strip_transform.cc``: ``image_transform_quad_get``,
  ``image_transform_matrix_get``; 3.4: ``SEQ_image_transform_quad_get`` in
  ``strip_transform.c``). In image-centred pixels ``c`` (y up) of the *uncropped* source
  image of size ``orig_width x orig_height``::

      pivot = size * origin - size / 2          # origin is 0..1 of the UNCROPPED image
      canvas = pivot + offset + R(rotation) @ S(scale) @ (c - pivot)
      view = (mirror_x * pixel_aspect * canvas.x, mirror_y * canvas.y)

  ``R`` is counter-clockwise (``from_loc_rot_scale``), ``from_origin_transform`` pivots about
  ``pivot``. Flips mirror the *whole transformed result about the canvas centre* (the
  render flips the finished canvas buffer after transforming, ``input_preprocess`` in
  ``render.cc``), so a flipped strip's offset is mirrored too. The visible part is the crop
  rectangle, in source pixels from each edge (``StripCrop.min_x/max_x/min_y/max_y`` =
  left/right/bottom/top), applied before the transform (``IMB_TRANSFORM_MODE_CROP_SRC``).
  3.4's outline quad ignores pixel aspect; its render does not (the canvas texture is drawn
  stretched over ``tot``), so the aspect is applied for every version.
* **Fit method** is not a render-time setting in any supported version (2.92 still scaled
  to fit while rendering): ``SEQ_set_scale_to_fit`` (``utils.cc``) writes
  ``transform.scale_x/_y`` once when the strip is added, against the scene's 100 %
  resolution. The transform alone therefore places the image; ``fit_scale`` reproduces it.
* **Sub-pixel caveat**: the render centres the image with an *integer* shift
  ``(canvas - image) // 2`` (``calc_strip_transform_matrix``, on purpose, to avoid
  resampling), so when canvas and image sizes differ by an odd number of pixels the
  picture sits up to 0.5 px (times scale) from the exact quad modelled here, which is the
  one Blender itself uses for outlines, selection and the transform gizmo.
* **Region to view** (``view2d.cc``: ``UI_view2d_region_to_view``, ``view2d_masks``): the
  mask spans pixels ``0 .. width - 1`` (``/* -1 yes! masks are pixels */``), no 0.5 is added:
  ``view = cur.min + (cur.max - cur.min) * px / (width - 1)``. The preview region has no
  scroll bars, so its mask is the whole region. bpy's ``View2D.view_to_region`` returns
  *truncated ints* (``UI_view2d_view_to_region[_clip]``); ``view_to_region`` here returns
  the exact float.
* **Scene frame to source frame** (``strip_time.cc``: ``give_frame_index``; ``render.cc``:
  ``seq_render_movie_strip_view``). A movie strip shows, at scene frame ``t``, file frame
  ``round_half_up(clamp((t - frame_start) * rate, 0, len - 1)) + animation_offset_start``,
  where ``rate`` is ``movie_fps / scene_fps`` when the strip carries
  ``SEQ_AUTO_PLAYBACK_RATE`` and 1 otherwise (3.3+, D14962). The flag is set by the add-movie
  operator's "Adjust Playback Rate" option (default on) but not by
  ``strips.new_movie``/``sequences.new_movie``, and RNA does not expose it:
  ``infer_auto_playback_rate`` recovers it from the strip's length. Retiming keys (4.0+),
  ``speed_factor`` other than 1 (3.3-3.6), strobe and reversed playback are not modelled.
* **Kling's clip**: its frames are mapped to source frames by time (Kling may re-encode at
  another frame rate), nearest frame start, clamped into the clip.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = [
    "FIT_METHODS",
    "SessionTiming",
    "StripGeometry",
    "StripTiming",
    "fit_scale",
    "image_quad_in_view",
    "image_quad_uv",
    "image_to_normalized",
    "image_to_view",
    "infer_auto_playback_rate",
    "normalized_to_image",
    "normalized_to_view",
    "normalized_visible",
    "region_to_view",
    "scene_to_session_frame",
    "scene_to_source_frame",
    "session_to_scene_frame",
    "session_to_source_frame",
    "source_to_scene_frame",
    "source_to_session_frame",
    "view_to_image",
    "view_to_normalized",
    "view_to_region",
]

Point = tuple[float, float]

FIT_METHODS = ("FIT", "FILL", "STRETCH", "ORIGINAL")

# Points this close (in source pixels, relative to the image size) to the crop border count
# as inside, so that a corner sent through image_to_view and back is not rejected.
_EDGE_TOLERANCE = 1e-9


def _require_finite(name: str, *values: float) -> None:
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"{name} must be finite numbers, got {values}")


def _round_half_up(value: float) -> int:
    """Blender's ``round_fl_to_int``: halves go up (``floor(x + 0.5)``)."""
    return math.floor(value + 0.5)


# --------------------------------------------------------------------------------------
# Space
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StripGeometry:
    """Where a movie strip's source image lies in the preview, as Blender stores it.

    Sizes and offsets are in pixels; ``crop`` is (left, right, bottom, top) = Blender's
    ``crop.min_x, max_x, min_y, max_y``, in source pixels from each edge; ``origin`` is
    ``transform.origin`` (0..1 of the uncropped image, (0, 0) bottom-left); ``rotation`` is
    radians counter-clockwise; ``canvas_w/_h`` are ``render.resolution_x/_y`` *without* the
    percentage; ``pixel_aspect`` is ``pixel_aspect_x / pixel_aspect_y``.

    Construction raises ValueError on a geometry that cannot be inverted or shows nothing,
    so every function below can rely on a valid one.
    """

    image_w: float
    image_h: float
    canvas_w: float
    canvas_h: float
    crop: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    offset: Point = (0.0, 0.0)
    scale: Point = (1.0, 1.0)
    rotation: float = 0.0
    origin: Point = (0.5, 0.5)
    flip_x: bool = False
    flip_y: bool = False
    pixel_aspect: float = 1.0

    def __post_init__(self) -> None:
        _require_finite("image size", self.image_w, self.image_h)
        if self.image_w <= 0 or self.image_h <= 0:
            raise ValueError(
                f"the strip's image is {self.image_w}x{self.image_h} px: Blender has not read "
                "the movie yet (or it is missing); reload the strip"
            )
        _require_finite("canvas size", self.canvas_w, self.canvas_h)
        if self.canvas_w <= 0 or self.canvas_h <= 0:
            raise ValueError(f"the scene resolution {self.canvas_w}x{self.canvas_h} is empty")
        _require_finite("crop", *self.crop)
        left, right, bottom, top = self.crop
        if min(self.crop) < 0:
            raise ValueError(f"crop values must be >= 0 px, got {self.crop}")
        if left + right >= self.image_w or bottom + top >= self.image_h:
            raise ValueError(
                f"the crop {self.crop} leaves nothing of the {self.image_w}x{self.image_h} image"
            )
        _require_finite("offset", *self.offset)
        _require_finite("scale", *self.scale)
        if self.scale[0] == 0 or self.scale[1] == 0:
            raise ValueError(f"the strip's scale {self.scale} is zero: the image is invisible")
        _require_finite("rotation", self.rotation)
        _require_finite("origin", *self.origin)
        _require_finite("pixel aspect", self.pixel_aspect)
        if self.pixel_aspect <= 0:
            raise ValueError(f"pixel aspect must be > 0, got {self.pixel_aspect}")

    @property
    def visible_rect(self) -> tuple[float, float, float, float]:
        """The crop rectangle in source pixels, top-left origin: (x0, x1, y0, y1)."""
        left, right, bottom, top = self.crop
        return left, self.image_w - right, top, self.image_h - bottom

    def _pivot(self) -> Point:
        return (
            self.image_w * self.origin[0] - self.image_w / 2,
            self.image_h * self.origin[1] - self.image_h / 2,
        )

    def _view_factor(self) -> Point:
        return (
            (-1.0 if self.flip_x else 1.0) * self.pixel_aspect,
            -1.0 if self.flip_y else 1.0,
        )


def image_to_view(geom: StripGeometry, px: float, py: float) -> Point:
    """Source pixel (top-left origin, y down; any point, cropped or not) -> view coordinates.

    Exact inverse of ``view_to_image`` on the visible crop.
    """
    cx, cy = px - geom.image_w / 2, geom.image_h / 2 - py
    pvx, pvy = geom._pivot()
    dx, dy = (cx - pvx) * geom.scale[0], (cy - pvy) * geom.scale[1]
    cos, sin = math.cos(geom.rotation), math.sin(geom.rotation)
    x = pvx + geom.offset[0] + cos * dx - sin * dy
    y = pvy + geom.offset[1] + sin * dx + cos * dy
    fx, fy = geom._view_factor()
    return x * fx, y * fy


def _view_to_image_unclipped(geom: StripGeometry, vx: float, vy: float) -> Point:
    fx, fy = geom._view_factor()
    pvx, pvy = geom._pivot()
    dx, dy = vx / fx - pvx - geom.offset[0], vy / fy - pvy - geom.offset[1]
    cos, sin = math.cos(geom.rotation), math.sin(geom.rotation)
    cx = pvx + (cos * dx + sin * dy) / geom.scale[0]
    cy = pvy + (-sin * dx + cos * dy) / geom.scale[1]
    return cx + geom.image_w / 2, geom.image_h / 2 - cy


def view_to_image(geom: StripGeometry, vx: float, vy: float) -> Point | None:
    """Preview view coordinates -> source pixel (top-left origin, y down), or None.

    None when the point falls outside the visible (cropped) image. A returned point always
    lies inside ``geom.visible_rect`` (edges included).
    """
    _require_finite("view point", vx, vy)
    px, py = _view_to_image_unclipped(geom, vx, vy)
    if not _in_crop(geom, px, py):
        return None
    x0, x1, y0, y1 = geom.visible_rect
    return min(max(px, x0), x1), min(max(py, y0), y1)


def _in_crop(geom: StripGeometry, px: float, py: float) -> bool:
    x0, x1, y0, y1 = geom.visible_rect
    tol = _EDGE_TOLERANCE * max(geom.image_w, geom.image_h)
    return x0 - tol <= px <= x1 + tol and y0 - tol <= py <= y1 + tol


def image_to_normalized(geom: StripGeometry, px: float, py: float) -> Point:
    """Source pixel -> Kling's (x, y), both in [0, 1], (0, 0) = top-left of the frame.

    Raises ValueError for a point outside the image (more than rounding noise away).
    """
    _require_finite("image point", px, py)
    tol = _EDGE_TOLERANCE * max(geom.image_w, geom.image_h)
    if not (-tol <= px <= geom.image_w + tol and -tol <= py <= geom.image_h + tol):
        raise ValueError(
            f"({px:g}, {py:g}) is outside the {geom.image_w:g}x{geom.image_h:g} source image"
        )
    return min(max(px / geom.image_w, 0.0), 1.0), min(max(py / geom.image_h, 0.0), 1.0)


def normalized_to_image(geom: StripGeometry, x: float, y: float) -> Point:
    """Kling's (x, y) in [0, 1] -> source pixel; ValueError outside [0, 1]."""
    _require_finite("normalized point", x, y)
    if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
        raise ValueError(f"normalized point ({x:g}, {y:g}) must lie in [0, 1]")
    return x * geom.image_w, y * geom.image_h


def view_to_normalized(geom: StripGeometry, vx: float, vy: float) -> Point | None:
    """Preview view coordinates -> Kling's (x, y), or None outside the visible image."""
    point = view_to_image(geom, vx, vy)
    return None if point is None else image_to_normalized(geom, *point)


def normalized_to_view(geom: StripGeometry, x: float, y: float) -> Point:
    """Kling's (x, y) -> preview view coordinates (where to draw a point's dot)."""
    return image_to_view(geom, *normalized_to_image(geom, x, y))


def normalized_visible(geom: StripGeometry, x: float, y: float) -> bool:
    """Whether Kling's (x, y) lies in the visible crop (edges included), i.e. is on screen
    where ``normalized_to_view`` puts it rather than in a cropped-away border."""
    return _in_crop(geom, *normalized_to_image(geom, x, y))


def _crop_corners(geom: StripGeometry) -> list[Point]:
    x0, x1, y0, y1 = geom.visible_rect
    return [(x0, y1), (x1, y1), (x1, y0), (x0, y0)]


def image_quad_in_view(geom: StripGeometry) -> list[Point]:
    """Corners of the visible (cropped) image in view coordinates.

    Order: the image's own bottom-left, bottom-right, top-right, top-left (after flips or
    rotation they need not be on screen in that order). Pair them with ``image_quad_uv``.
    """
    return [image_to_view(geom, px, py) for px, py in _crop_corners(geom)]


def image_quad_uv(geom: StripGeometry) -> list[Point]:
    """Kling (x, y) of the same four corners: the texture coordinates of a full-frame mask.

    A mask uploaded row 0 first (top row of the frame, as Kling's masks come) has its
    texture v equal to Kling's y, so these pairs are (u, v) directly.
    """
    return [image_to_normalized(geom, px, py) for px, py in _crop_corners(geom)]


def fit_scale(method: str, image_w: float, image_h: float, canvas_w: float, canvas_h: float
              ) -> Point:
    """The (scale_x, scale_y) Blender writes when a strip is added with ``fit_method``."""
    if min(image_w, image_h, canvas_w, canvas_h) <= 0:
        raise ValueError("image and canvas sizes must be > 0")
    sx, sy = canvas_w / image_w, canvas_h / image_h
    if method == "FIT":
        return min(sx, sy), min(sx, sy)
    if method == "FILL":
        return max(sx, sy), max(sx, sy)
    if method == "STRETCH":
        return sx, sy
    if method == "ORIGINAL":
        return 1.0, 1.0
    raise ValueError(f"fit method must be one of {FIT_METHODS}, got {method!r}")


def _check_view2d(cur: tuple[float, float, float, float], region_w: int, region_h: int) -> None:
    _require_finite("View2D cur", *cur)
    xmin, xmax, ymin, ymax = cur
    if not (xmax > xmin and ymax > ymin):
        raise ValueError(f"View2D cur {cur} is empty (expected xmin, xmax, ymin, ymax)")
    if region_w < 2 or region_h < 2:
        raise ValueError(f"the region is {region_w}x{region_h} px: too small to map")


def region_to_view(cur: tuple[float, float, float, float], region_w: int, region_h: int,
                   rx: float, ry: float) -> Point:
    """Region pixel -> view coordinates, exactly as ``View2D.region_to_view``.

    ``cur`` is (xmin, xmax, ymin, ymax). bpy hides ``cur``; it equals
    ``region_to_view(0, 0)`` and ``region_to_view(width - 1, height - 1)``.
    """
    _check_view2d(cur, region_w, region_h)
    xmin, xmax, ymin, ymax = cur
    return (xmin + (xmax - xmin) * rx / (region_w - 1),
            ymin + (ymax - ymin) * ry / (region_h - 1))


def view_to_region(cur: tuple[float, float, float, float], region_w: int, region_h: int,
                   vx: float, vy: float) -> Point:
    """View coordinates -> region pixel (float; bpy's version truncates to int)."""
    _check_view2d(cur, region_w, region_h)
    xmin, xmax, ymin, ymax = cur
    return ((vx - xmin) / (xmax - xmin) * (region_w - 1),
            (vy - ymin) / (ymax - ymin) * (region_h - 1))


# --------------------------------------------------------------------------------------
# Time
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StripTiming:
    """When a movie strip shows which frame of its file, as Blender stores it.

    ``frame_start`` is where file frame ``animation_offset_start`` sits on the timeline;
    ``frame_final_start``/``frame_final_end`` are the handles (end exclusive); fps are
    ``render.fps / render.fps_base`` and the movie strip's ``fps``; ``content_frames`` is the
    strip's content length in file frames (Blender's ``len``: the file's frames minus both
    animation offsets), used to clamp like Blender does; None skips the clamp.
    """

    frame_start: float
    frame_final_start: int
    frame_final_end: int
    scene_fps: float
    source_fps: float
    auto_playback_rate: bool = False
    animation_offset_start: int = 0
    content_frames: int | None = None

    def __post_init__(self) -> None:
        _require_finite("frame_start", self.frame_start)
        if self.frame_final_end <= self.frame_final_start:
            raise ValueError(
                f"the strip shows no frame: final range [{self.frame_final_start}, "
                f"{self.frame_final_end}) is empty"
            )
        _require_finite("frame rates", self.scene_fps, self.source_fps)
        if self.scene_fps <= 0 or self.source_fps <= 0:
            raise ValueError(
                f"frame rates must be > 0 (scene {self.scene_fps}, movie {self.source_fps})"
            )
        if self.animation_offset_start < 0:
            raise ValueError(f"animation_offset_start must be >= 0, got "
                             f"{self.animation_offset_start}")
        if self.content_frames is not None and self.content_frames < 1:
            raise ValueError(f"content_frames must be >= 1, got {self.content_frames}")

    @property
    def playback_rate(self) -> float:
        """File frames advanced per scene frame."""
        return self.source_fps / self.scene_fps if self.auto_playback_rate else 1.0


@dataclass(frozen=True)
class SessionTiming:
    """How Kling's normalized video relates to the source file.

    ``fps``/``total_frames`` are what ``init-selection`` reported; ``source_fps`` is the
    file's rate; ``source_start_frame`` is the file frame at the clip's time 0 (0 when the
    whole file was sent, the first conformed frame otherwise).
    """

    fps: float
    total_frames: int
    source_fps: float
    source_start_frame: int = 0

    def __post_init__(self) -> None:
        _require_finite("frame rates", self.fps, self.source_fps)
        if self.fps <= 0 or self.source_fps <= 0:
            raise ValueError(
                f"frame rates must be > 0 (session {self.fps}, source {self.source_fps})"
            )
        if self.total_frames < 1:
            raise ValueError(f"the session's video has {self.total_frames} frames")
        if self.source_start_frame < 0:
            raise ValueError(f"source_start_frame must be >= 0, got {self.source_start_frame}")


def infer_auto_playback_rate(frame_duration: int, content_frames: int, source_fps: float,
                             scene_fps: float) -> bool:
    """Whether Blender retimes the strip, read from its length (RNA hides the flag).

    ``frame_duration`` is the strip's ``frame_duration`` (``len / rate``, truncated);
    ``content_frames`` its ``len`` (the file's frame count minus both animation offsets).
    False when the rates match (no difference to make). ValueError when the length fits
    neither (a retimed or speed-changed strip, which this module does not model).
    """
    if content_frames < 1 or frame_duration < 1:
        raise ValueError("frame counts must be >= 1")
    if math.isclose(source_fps, scene_fps, rel_tol=1e-6):
        return False
    if abs(frame_duration - content_frames * scene_fps / source_fps) <= 1:
        return True
    if abs(frame_duration - content_frames) <= 1:
        return False
    raise ValueError(
        f"the strip lasts {frame_duration} frames, which fits neither {content_frames} file "
        f"frames at 1:1 nor at {source_fps:g}->{scene_fps:g} fps: remove retiming/speed changes"
    )


def _shown_frame(timing: StripTiming, scene_frame: int) -> int:
    index = max((scene_frame - timing.frame_start) * timing.playback_rate, 0.0)
    if timing.content_frames is not None:
        index = min(index, timing.content_frames - 1)
    return _round_half_up(index) + timing.animation_offset_start


def _visible(timing: StripTiming, scene_frame: int) -> bool:
    return timing.frame_final_start <= scene_frame < timing.frame_final_end


def scene_to_source_frame(timing: StripTiming, scene_frame: int) -> int | None:
    """The file frame (0-based) the strip shows at ``scene_frame``; None outside its handles."""
    return _shown_frame(timing, scene_frame) if _visible(timing, scene_frame) else None


def source_to_scene_frame(timing: StripTiming, source_frame: int) -> int | None:
    """The first scene frame showing ``source_frame``, or None if the handles hide it.

    When the strip skips file frames (playback rate > 1) and never shows this one exactly,
    the scene frame showing the nearest file frame (earliest on a tie) is returned.
    """
    first = _shown_frame(timing, timing.frame_final_start)
    last = _shown_frame(timing, timing.frame_final_end - 1)
    if not first <= source_frame <= last:
        return None
    if source_frame == first:
        return timing.frame_final_start
    # Scene frames whose content index rounds to this frame lie in [index - 0.5, index + 0.5)
    # divided by the rate; one more on each side finds the nearest when none does.
    index = source_frame - timing.animation_offset_start
    rate = timing.playback_rate
    lo = max(timing.frame_final_start, math.floor(timing.frame_start + (index - 0.5) / rate) - 1)
    hi = min(timing.frame_final_end - 1, math.ceil(timing.frame_start + (index + 0.5) / rate) + 1)
    return min(range(lo, hi + 1),
               key=lambda t: (abs(_shown_frame(timing, t) - source_frame), t))


def source_to_session_frame(session: SessionTiming, source_frame: int) -> int | None:
    """The normalized video's frame index at the time of ``source_frame``, or None.

    None when that time falls outside the clip, [0, total_frames / fps); otherwise the
    nearest frame start, clamped into [0, total_frames - 1].
    """
    seconds = (source_frame - session.source_start_frame) / session.source_fps
    if seconds < 0 or seconds >= session.total_frames / session.fps:
        return None
    return min(_round_half_up(seconds * session.fps), session.total_frames - 1)


def session_to_source_frame(session: SessionTiming, index: int) -> int:
    """The file frame nearest to the start of the normalized video's frame ``index``."""
    if not 0 <= index < session.total_frames:
        raise ValueError(
            f"frame index {index} is outside the session's 0..{session.total_frames - 1}"
        )
    return session.source_start_frame + _round_half_up(index * session.source_fps / session.fps)


def scene_to_session_frame(timing: StripTiming, session: SessionTiming, scene_frame: int
                           ) -> int | None:
    """Scene frame -> normalized video's frame index, or None where there is none."""
    source = scene_to_source_frame(timing, scene_frame)
    return None if source is None else source_to_session_frame(session, source)


def session_to_scene_frame(timing: StripTiming, session: SessionTiming, index: int
                           ) -> int | None:
    """Normalized video's frame index -> a scene frame showing it ("jump to marked frame").

    Guarantee: when some visible scene frame maps to ``index``, the result is one of them
    (the one showing the file frame nearest to the index's time); otherwise the scene frame
    nearest to it, or None when the strip's handles hide that time.
    """
    nearest = session_to_source_frame(session, index)
    exact = session.source_start_frame + index * session.source_fps / session.fps
    span = session.source_fps / session.fps
    sources = range(math.floor(exact - span) - 1, math.ceil(exact + span) + 2)
    for source in sorted(sources, key=lambda s: (abs(s - exact), s)):
        if source < 0:
            continue
        frame = source_to_scene_frame(timing, source)
        if frame is not None and scene_to_session_frame(timing, session, frame) == index:
            return frame
    return source_to_scene_frame(timing, nearest)
