"""Frozen dataclasses for what the API returns.

Kling's wire names (``rle_mask_list``, ``task_status_msg``, ``total_frame``) stop here:
each ``from_api`` reads the documented fields, ignores unknown extras, and raises
:class:`ResponseFormatError` naming the field when a documented one is missing or of the
wrong type, so a malformed answer fails loudly at the boundary instead of deep inside a
caller.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import rle
from .errors import ResponseFormatError

__all__ = [
    "TERMINAL_STATUSES",
    "InitResult",
    "Mask",
    "PreviewResult",
    "SelectionResult",
    "Task",
    "TaskVideo",
]

TERMINAL_STATUSES = frozenset({"succeed", "failed"})
_MISSING = object()


def _get(data: Any, key: str, kind: type | tuple[type, ...], where: str, default: Any = _MISSING):
    if not isinstance(data, dict):
        raise ResponseFormatError(f"{where} is not a JSON object")
    value = data.get(key, _MISSING)
    if value is _MISSING or value is None:
        if default is not _MISSING:
            return default
        raise ResponseFormatError(f"the answer lacks {where}.{key}")
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise ResponseFormatError(f"{where}.{key} is a boolean, expected {kind}")
    if not isinstance(value, kind):
        raise ResponseFormatError(
            f"{where}.{key} is {type(value).__name__}, expected "
            f"{getattr(kind, '__name__', kind)}"
        )
    return value


@dataclass(frozen=True)
class InitResult:
    """A selection session on Kling's normalized copy of the video (valid 24 h)."""

    session_id: str
    fps: float
    duration_ms: int
    width: int
    height: int
    total_frames: int
    normalized_video_url: str

    @property
    def duration_s(self) -> float:
        return self.duration_ms / 1000.0

    @classmethod
    def from_api(cls, data: Any) -> InitResult:
        w = "data"
        return cls(
            session_id=_get(data, "session_id", str, w),
            fps=float(_get(data, "fps", (int, float), w)),
            duration_ms=int(_get(data, "original_duration", (int, float), w)),
            width=_get(data, "width", int, w),
            height=_get(data, "height", int, w),
            total_frames=_get(data, "total_frame", int, w),
            normalized_video_url=_get(data, "normalized_video", str, w, ""),
        )


@dataclass(frozen=True)
class Mask:
    """One object's mask on one frame, as COCO compressed RLE plus Kling's PNG copy."""

    object_id: int
    size: tuple[int, int]
    counts: str
    png_base64: str = field(default="", repr=False)

    def to_array(self) -> np.ndarray:
        """The mask as a (h, w) uint8 array of 0/1, indexed ``[y, x]``."""
        return rle.decode(self.counts, self.size)

    @classmethod
    def from_api(cls, item: Any) -> Mask:
        w = "rle_mask_list[]"
        rle_mask = _get(item, "rle_mask", dict, w)
        size = _get(rle_mask, "size", list, f"{w}.rle_mask")
        if len(size) != 2 or not all(isinstance(v, int) and v >= 0 for v in size):
            raise ResponseFormatError(f"{w}.rle_mask.size {size!r} is not [height, width]")
        png = item.get("png_mask") if isinstance(item.get("png_mask"), dict) else {}
        return cls(
            object_id=_get(item, "object_id", int, w),
            size=(size[0], size[1]),
            counts=_get(rle_mask, "counts", str, f"{w}.rle_mask"),
            png_base64=png.get("base64") or "",
        )


@dataclass(frozen=True)
class SelectionResult:
    """The masks of one frame after an add/delete: every object marked on that frame."""

    frame_index: int
    masks: tuple[Mask, ...]

    @classmethod
    def from_api(cls, data: Any) -> SelectionResult:
        res = _get(data, "res", dict, "data")
        items = _get(res, "rle_mask_list", list, "data.res", [])
        return cls(
            frame_index=_get(res, "frame_index", int, "data.res"),
            masks=tuple(Mask.from_api(item) for item in items),
        )


@dataclass(frozen=True)
class PreviewResult:
    """Files showing the selection tracked through the whole video."""

    video_url: str
    cover_url: str
    tracking_output_url: str

    @classmethod
    def from_api(cls, data: Any) -> PreviewResult:
        res = _get(data, "res", dict, "data")
        return cls(
            video_url=_get(res, "video", str, "data.res"),
            cover_url=_get(res, "video_cover", str, "data.res", ""),
            tracking_output_url=_get(res, "tracking_output", str, "data.res", ""),
        )


@dataclass(frozen=True)
class TaskVideo:
    """A result video; its ``id`` can start a new session (chained edits) for 30 days."""

    id: str
    url: str
    watermark_url: str = ""
    duration: str = ""
    session_id: str = ""

    @classmethod
    def from_api(cls, item: Any) -> TaskVideo:
        w = "task_result.videos[]"
        duration = _get(item, "duration", (str, int, float), w, "")
        return cls(
            id=str(_get(item, "id", (str, int), w)),
            url=_get(item, "url", str, w),
            watermark_url=_get(item, "watermark_url", str, w, ""),
            duration=str(duration),
            session_id=_get(item, "session_id", str, w, ""),
        )


@dataclass(frozen=True)
class Task:
    """An edit task as Kling last reported it."""

    task_id: str
    status: str
    status_msg: str = ""
    external_task_id: str = ""
    created_at: int = 0
    updated_at: int = 0
    videos: tuple[TaskVideo, ...] = ()

    @property
    def done(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def succeeded(self) -> bool:
        return self.status == "succeed"

    @classmethod
    def from_api(cls, data: Any) -> Task:
        w = "data"
        info = _get(data, "task_info", dict, w, {})
        result = _get(data, "task_result", dict, w, {})
        videos = _get(result, "videos", list, "data.task_result", [])
        return cls(
            task_id=str(_get(data, "task_id", (str, int), w)),
            status=_get(data, "task_status", str, w),
            status_msg=_get(data, "task_status_msg", str, w, ""),
            external_task_id=str(info.get("external_task_id") or ""),
            created_at=int(_get(data, "created_at", (int, float), w, 0)),
            updated_at=int(_get(data, "updated_at", (int, float), w, 0)),
            videos=tuple(TaskVideo.from_api(v) for v in videos),
        )
