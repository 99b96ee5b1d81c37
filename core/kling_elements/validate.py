"""Every documented limit of the Multi-Elements API, checked before anything is sent.

This module is the one place the limits live: the client, the CLI, the add-on and the
sandbox all read these constants. Each check raises :class:`ValidationError` whose message
names the offending value, the limit and the fix, so a user can act on it without reading
the API docs. Nothing here performs I/O.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .errors import ValidationError

__all__ = [
    "DURATION_CHOICES",
    "EDIT_MODES",
    "IMAGE_ASPECT_RANGE",
    "IMAGE_COUNTS",
    "IMAGE_FORMATS",
    "IMAGE_MAX_BYTES",
    "IMAGE_MIN_SIDE",
    "MAX_FRAMES_PER_SESSION",
    "MAX_POINTS_PER_FRAME",
    "MODEL_NAMES",
    "MODES",
    "PAGE_NUM_RANGE",
    "PAGE_SIZE_RANGE",
    "PROMPT_MAX_CHARS",
    "RESULT_OVERRUN_S",
    "RESULT_TTL_S",
    "SELECTION_EDIT_MODES",
    "SESSION_TTL_S",
    "VIDEO_CONTAINERS",
    "VIDEO_DURATION_RANGES_S",
    "VIDEO_FPS",
    "VIDEO_SIDE_RANGE",
    "TaskProblem",
    "VideoInfo",
    "duration_for",
    "edit_mode",
    "fps_problem",
    "frame_index",
    "image_count",
    "image_geometry",
    "mode",
    "page",
    "points",
    "prompt",
    "prompt_advice",
    "task",
    "video",
    "video_problems",
    "video_source",
]

VIDEO_CONTAINERS = ("mp4", "mov")
VIDEO_DURATION_RANGES_S = ((2.0, 5.0), (7.0, 10.0))
VIDEO_SIDE_RANGE = (720, 2160)
VIDEO_FPS = (24, 30, 60)
FPS_TOLERANCE = 0.01
DURATION_TOLERANCE_S = 0.001
# Kling's results run a few frames over the duration asked for (a "5" task may give 5.1 s).
# Such a video, edited again by ``video_id``, still counts as that duration. Any margin under
# the 2 s gap between the ranges (5 < d < 7) is unambiguous; 1 s leaves room on both sides.
RESULT_OVERRUN_S = 1.0
# How far over a range an uploaded file may be for its refusal to suggest it is a Kling
# result to edit by video id instead (results run a few frames long, well under this).
RESULT_HINT_S = 0.5
# NTSC rates are not in the docs' list (24, 30, 60): we conform them to the integer rate.
_NTSC = {23.976: 24, 29.97: 30, 59.94: 60}
SESSION_TTL_S = 24 * 3600
RESULT_TTL_S = 30 * 24 * 3600

MAX_FRAMES_PER_SESSION = 10
MAX_POINTS_PER_FRAME = 10

EDIT_MODES = ("addition", "swap", "removal")
# The edits that act on a marked element: Kling refuses them on a session without points.
SELECTION_EDIT_MODES = ("swap", "removal")
IMAGE_COUNTS = {"addition": (1, 2), "swap": (1, 1), "removal": (0, 0)}
MODES = ("std", "pro")
DURATION_CHOICES = ("5", "10")
PROMPT_MAX_CHARS = 2500

MODEL_NAMES = ("kling-v1-6",)
IMAGE_FORMATS = ("JPEG", "PNG")
IMAGE_MAX_BYTES = 10 * 1024 * 1024
IMAGE_MIN_SIDE = 300
IMAGE_ASPECT_RANGE = (1 / 2.5, 2.5)

PAGE_NUM_RANGE = (1, 1000)
PAGE_SIZE_RANGE = (1, 500)

_PLACEHOLDER = re.compile(r"<<<(video|image)_(\d+)>>>")


@dataclass(frozen=True)
class VideoInfo:
    """What Kling's rules look at in a clip (filled by ``media.probe`` or by hand)."""

    container: str
    duration_s: float
    width: int
    height: int
    fps: float
    frame_count: int | None = None


def video_problems(info: VideoInfo, *, generated: bool = False) -> list[str]:
    """All of Kling's video rules that ``info`` breaks, each with its fix; ``[]`` if none.

    ``generated``: the video is one of Kling's own results (used by ``video_id``), which may
    run up to ``RESULT_OVERRUN_S`` over the upper end of each duration range.
    """
    problems = []
    container = info.container.lower().lstrip(".")
    if container not in VIDEO_CONTAINERS:
        problems.append(
            f"container {info.container!r} is not accepted (allowed: .mp4, .mov): "
            "conform the clip to MP4"
        )
    d = info.duration_s
    over = RESULT_OVERRUN_S if generated else 0.0
    if not any(lo - DURATION_TOLERANCE_S <= d <= hi + over + DURATION_TOLERANCE_S
               for lo, hi in VIDEO_DURATION_RANGES_S):
        problem = (
            f"duration {d:.3f} s is outside 2-5 s and 7-10 s: trim the clip to at most 5 s "
            "(or 7-10 s)" if d > 5 else
            f"duration {d:.3f} s is outside 2-5 s and 7-10 s: use a clip of at least 2 s"
        )
        if not generated and any(hi < d < hi + RESULT_HINT_S
                                 for _, hi in VIDEO_DURATION_RANGES_S):
            # Kling's own results run a few frames long: the downloaded file is refused as
            # an upload, while the same video by its id is not. A clip further over is
            # most likely the user's own (a 6 s take): no hint there.
            problem += ("; if it is a Kling result, edit it again by its video id "
                        "(video_id) instead of uploading the file")
        problems.append(problem)
    lo, hi = VIDEO_SIDE_RANGE
    for name, side in (("width", info.width), ("height", info.height)):
        if not lo <= side <= hi:
            fix = "upscale" if side < lo else "downscale"
            problems.append(f"{name} {side} px is outside {lo}-{hi} px: {fix} the clip")
    if not any(abs(info.fps - allowed) <= FPS_TOLERANCE for allowed in VIDEO_FPS):
        problems.append(fps_problem(info.fps))
    return problems


def fps_problem(fps: float) -> str:
    """Why ``fps`` is refused and the rate to conform to.

    Kling lists exact rates; NTSC rates (23.976, 29.97, 59.94) are not read as 24/30/60
    but conformed to them (resampled at the content's real speed), as the message says.
    """
    nearest = min(VIDEO_FPS, key=lambda a: abs(a - fps))
    ntsc = next((rate for rate in _NTSC if abs(fps - rate) < 0.01), None)
    if ntsc is not None:
        return (
            f"frame rate {fps:g} fps (NTSC) is not 24, 30 or 60: Kling lists exact rates, "
            f"so conform the clip to {_NTSC[ntsc]} fps"
        )
    return f"frame rate {fps:g} fps is not 24, 30 or 60: conform the clip to {nearest} fps"


def video(info: VideoInfo) -> VideoInfo:
    """Raise one :class:`ValidationError` listing every broken video rule; return ``info``."""
    problems = video_problems(info)
    if problems:
        raise ValidationError("video breaks Kling's rules: " + "; ".join(problems))
    return info


def video_source(video_url: str | None, video_id: str | None) -> tuple[str, str]:
    """Exactly one of ``video_url`` / ``video_id``; return ``(field, value)`` to send."""
    given = [(k, v) for k, v in (("video_url", video_url), ("video_id", video_id)) if v]
    if len(given) != 1:
        raise ValidationError(
            "give exactly one of video_url or video_id "
            f"(got {'both' if given else 'neither'}): pass a URL Kling can download, or the "
            "id of a video Kling generated"
        )
    field, value = given[0]
    if not isinstance(value, str):
        raise ValidationError(f"{field} must be a string, got {type(value).__name__}")
    if field == "video_url" and not value.lower().startswith(("http://", "https://")):
        raise ValidationError(
            f"video_url {value[:80]!r} is not an http(s) URL: publish the file first "
            "(see hosting) or pass video_id"
        )
    return field, value


def frame_index(value: object, total_frames: int | None = None) -> int:
    """A frame index of the normalized video: a non-negative int below ``total_frames``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValidationError(f"frame_index {value!r} must be an integer frame number")
    value = int(value)
    if value < 0:
        raise ValidationError(f"frame_index {value} is negative: frames count from 0")
    if total_frames is not None and value >= total_frames:
        raise ValidationError(
            f"frame_index {value} is past the video's last frame {total_frames - 1}: "
            "pick a frame of the normalized video"
        )
    return value


def _coordinate(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValidationError(f"point {name}={value!r} must be a number in [0, 1]")
    number = float(value)
    if not math.isfinite(number) or not 0.0 <= number <= 1.0:
        raise ValidationError(
            f"point {name}={number!r} is outside [0, 1]: coordinates are fractions of the "
            "frame's width/height, (0, 0) being the top-left corner"
        )
    return number + 0.0  # -0.0 becomes 0.0, so what is sent is what is remembered


def points(values: Iterable[object]) -> list[tuple[float, float]]:
    """1-10 points ``(x, y)`` in [0, 1], normalised to plain floats exactly as they will be sent.

    Accepts pairs or mappings with ``x``/``y``. The returned floats are the ones to remember
    for a later delete: the API demands bit-identical coordinates.
    """
    if isinstance(values, (str, bytes)):
        raise ValidationError("points must be a list of (x, y) pairs, got a string")
    result = []
    for item in values:
        if isinstance(item, dict):
            x, y = item.get("x"), item.get("y")
        elif not isinstance(item, (str, bytes)) and hasattr(item, "__len__") and len(item) == 2:
            x, y = item[0], item[1]
        else:
            raise ValidationError(f"point {item!r} must be an (x, y) pair of numbers in [0, 1]")
        result.append((_coordinate("x", x), _coordinate("y", y)))
    if not result:
        raise ValidationError("no points given: click at least one point on the frame")
    if len(result) > MAX_POINTS_PER_FRAME:
        raise ValidationError(
            f"{len(result)} points in one call is over the limit of {MAX_POINTS_PER_FRAME} "
            "per frame: remove some"
        )
    return result


def edit_mode(value: str) -> str:
    if value not in EDIT_MODES:
        raise ValidationError(
            f"edit_mode {value!r} is not one of {', '.join(EDIT_MODES)}"
        )
    return value


def image_count(mode_name: str, count: int) -> None:
    lo, hi = IMAGE_COUNTS[edit_mode(mode_name)]
    if not lo <= count <= hi:
        need = "no images" if hi == 0 else (
            f"exactly {lo} image" if lo == hi else f"{lo}-{hi} images"
        )
        raise ValidationError(
            f"{mode_name} takes {need}, got {count}: "
            + ("drop the images" if hi == 0 else "give reference image(s) of the element")
        )


def image_geometry(width: int, height: int, label: str = "image") -> None:
    """Refuse a reference image a human must fix: a side under 300 px or an extreme aspect."""
    if min(width, height) < IMAGE_MIN_SIDE:
        raise ValidationError(
            f"{label} is {width}x{height} px; both sides must be at least {IMAGE_MIN_SIDE} px: "
            "use a larger image of the element"
        )
    lo, hi = IMAGE_ASPECT_RANGE
    if not lo <= width / height <= hi:
        raise ValidationError(
            f"{label} aspect ratio {width / height:.2f}:1 is outside 1:2.5-2.5:1: crop it "
            "closer to the element"
        )


def prompt(text: object, image_total: int, *, field: str = "prompt",
           placeholders: bool = True) -> str:
    """Prompt length and placeholders: no image or video beyond those given.

    A prompt without ``<<<video_1>>>`` is not refused: Kling's docs recommend the placeholder
    but do not require it (see :func:`prompt_advice`). ``placeholders=False`` checks only
    what Kling documents (present, at most 2500 characters): the sandbox's reading, since
    Kling does not say it refuses a reference to an input that was not given; the client
    refuses one (it can only be a mistake).
    """
    if not isinstance(text, str) or not text.strip():
        raise ValidationError(f"{field} is required: describe the edit, e.g. "
                              "'Delete the cup from <<<video_1>>>'")
    if len(text) > PROMPT_MAX_CHARS:
        raise ValidationError(
            f"{field} has {len(text)} characters, over the limit of {PROMPT_MAX_CHARS}: "
            "shorten it"
        )
    refs = _PLACEHOLDER.findall(text) if placeholders else []
    for kind, number in refs:
        n = int(number)
        if kind == "video" and n != 1:
            raise ValidationError(f"{field} refers to <<<video_{n}>>>: only <<<video_1>>> exists")
        if kind == "image" and not 1 <= n <= image_total:
            have = f"<<<image_1>>>..<<<image_{image_total}>>>" if image_total else "no images"
            raise ValidationError(
                f"{field} refers to <<<image_{n}>>> but {image_total} image(s) were given "
                f"({have}): add the image or fix the reference"
            )
    return text


def prompt_advice(text: str) -> list[str]:
    """Advice, not errors: what Kling's docs recommend that ``text`` does not do."""
    if ("video", "1") in _PLACEHOLDER.findall(text):
        return []
    return ["the prompt does not mention <<<video_1>>>; Kling's templates refer to the video "
            "that way, e.g. 'Delete the cup from <<<video_1>>>'"]


def negative_prompt(text: str | None) -> str | None:
    if text is None or text == "":
        return None
    if not isinstance(text, str):
        raise ValidationError(f"negative_prompt must be a string, got {type(text).__name__}")
    if len(text) > PROMPT_MAX_CHARS:
        raise ValidationError(
            f"negative_prompt has {len(text)} characters, over the limit of "
            f"{PROMPT_MAX_CHARS}: shorten it"
        )
    return text


def mode(value: str) -> str:
    if value not in MODES:
        raise ValidationError(f"mode {value!r} is not 'std' or 'pro'")
    return value


def duration_for(duration_s: float) -> str:
    """The task ``duration`` an input of ``duration_s`` seconds calls for ("5" or "10").

    The shortest choice that covers the input within ``RESULT_OVERRUN_S``: a result of a "5"
    task that runs a few frames over 5 s is edited again as "5", not as "10".
    """
    if duration_s <= VIDEO_DURATION_RANGES_S[0][1] + RESULT_OVERRUN_S + DURATION_TOLERANCE_S:
        return "5"
    return "10"


def duration(value: object, session_duration_s: float | None = None) -> str | None:
    """``"5"``/``"10"`` (ints accepted); must agree with the session's input when known.

    ``None`` only when neither is known: the caller must then ask (Kling would apply its
    default of "5", cutting a 7-10 s input).
    """
    if value is None:
        return duration_for(session_duration_s) if session_duration_s is not None else None
    text = str(value)
    if isinstance(value, bool) or text not in DURATION_CHOICES:
        raise ValidationError(
            f"duration {value!r} must be '5' (input 2-5 s) or '10' (input 7-10 s)"
        )
    if session_duration_s is not None and text != duration_for(session_duration_s):
        raise ValidationError(
            f"duration {text!r} does not match the session's {session_duration_s:.2f} s input: "
            f"use {duration_for(session_duration_s)!r} or leave it out"
        )
    return text


def page(page_num: object, page_size: object) -> tuple[int, int]:
    for name, value, (lo, hi) in (
        ("page", page_num, PAGE_NUM_RANGE), ("page_size", page_size, PAGE_SIZE_RANGE)
    ):
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise ValidationError(f"{name} {value!r} must be an integer in {lo}-{hi}")
    return page_num, page_size  # type: ignore[return-value]


# The checks under names that ``task``'s parameters do not hide.
_check_edit_mode, _check_prompt, _check_negative = edit_mode, prompt, negative_prompt
_check_mode, _check_duration = mode, duration


@dataclass(frozen=True)
class TaskProblem:
    """One broken rule of a create request: ``field`` names what to fix (``edit_mode``,
    ``images``, ``prompt``, ``negative_prompt``, ``mode``, ``duration``, ``selection``,
    ``callback_url``, ``external_task_id``, ``session_length``), ``message`` says how.

    A front end may word its own fix for a field (the add-on says which panel to open);
    the rule itself lives only in :func:`task`.
    """

    field: str
    message: str

    def __str__(self) -> str:
        return self.message


def _problem(problems: list[TaskProblem], name: str, check: object, *args: object,
             **kwargs: object) -> object:
    """``check(*args, **kwargs)``, its ``ValidationError`` recorded as a problem of ``name``."""
    try:
        return check(*args, **kwargs)  # type: ignore[operator]
    except ValidationError as exc:
        problems.append(TaskProblem(name, str(exc)))
        return None


def _is_url(value: object, schemes: tuple[str, ...]) -> bool:
    return isinstance(value, str) and value.lower().startswith(schemes)


def task(
    *,
    edit_mode: str,
    prompt: object,
    images: Sequence[object] = (),
    negative_prompt: str | None = None,
    mode: str = "std",
    duration: object = None,
    session_duration_s: float | None = None,
    marked_frames: int | None = None,
    callback_url: str | None = None,
    external_task_id: object = None,
    session_id: str = "",
    duration_later: bool = False,
) -> list[TaskProblem]:
    """Every rule a create request breaks, in the order a user should fix them; ``[]`` if none.

    ``session_duration_s`` and ``marked_frames`` are what is known of the session (``None``:
    unknown, so not checked). Without a ``duration``, the session's length decides it; when
    that is unknown too, ``session_length`` is a problem unless ``duration_later`` (the
    session will be started before the body is built). Image files are checked when they are
    read (``media.prepare_image``); here only their count and the URL forms.
    """
    problems: list[TaskProblem] = []
    mode_ok = _problem(problems, "edit_mode", _check_edit_mode, edit_mode) is not None
    images = list(images)
    if mode_ok:
        _problem(problems, "images", image_count, edit_mode, len(images))
    _problem(problems, "prompt", _check_prompt, prompt, len(images))
    negative = _problem(problems, "negative_prompt", _check_negative, negative_prompt)
    if negative:
        _problem(problems, "negative_prompt", _check_prompt, negative, len(images),
                 field="negative_prompt")
    _problem(problems, "mode", _check_mode, mode)
    chosen = _problem(problems, "duration", _check_duration, duration, session_duration_s)
    if mode_ok and edit_mode in SELECTION_EDIT_MODES and marked_frames == 0:
        problems.append(TaskProblem(
            "selection", f"{edit_mode} needs a marked selection: add points on the element "
                         "first"))
    for number, image in enumerate(images, start=1):
        if _is_url(image, ("data:",)):
            problems.append(TaskProblem(
                "images", f"image {number} is a data: URL; pass a file path, bytes or an "
                          "http(s) URL"))
    if callback_url and not _is_url(callback_url, ("http://", "https://")):
        problems.append(TaskProblem("callback_url",
                                    f"callback_url {callback_url!r} is not an http(s) URL"))
    if external_task_id is not None and (
        not isinstance(external_task_id, str) or "/" in external_task_id
    ):
        problems.append(TaskProblem(
            "external_task_id",
            f"external_task_id {external_task_id!r} must be a string without '/': the task is "
            "looked up by it if an answer is lost"))
    if (chosen is None and not duration_later
            and not any(p.field == "duration" for p in problems)):
        problems.append(TaskProblem(
            "session_length",
            f"the length of session {session_id!r} is unknown to this client: pass duration "
            "'5' (input 2-5 s) or '10' (input 7-10 s); Kling defaults to 5 s and would cut a "
            "7-10 s clip"))
    return problems
