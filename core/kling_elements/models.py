"""Frozen dataclasses for what the API returns.

Kling's wire names (``rle_mask_list``, ``task_status_msg``, ``total_frame``) stop here:
each ``from_api`` reads the documented fields, ignores unknown extras, and raises
:class:`ResponseFormatError` naming the field when a documented one is missing or of the
wrong type, so a malformed answer fails loudly at the boundary instead of deep inside a
caller. Fields the docs call unused or give no unit (init's ``width``, ``height`` and
``original_duration``) are read when usable and never fail an answer (docs/kling-api.md).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

import numpy as np

from . import rle
from .cost import Cost, parse_amount
from .errors import ResponseFormatError, error_for

__all__ = [
    "STATUS_RANK",
    "TERMINAL_STATUSES",
    "AccountCosts",
    "InitResult",
    "Mask",
    "PreviewResult",
    "ResourcePack",
    "SelectionResult",
    "Task",
    "TaskVideo",
]

log = logging.getLogger("kling_elements")

TERMINAL_STATUSES = frozenset({"succeed", "failed"})
# Where a status stands in a task's life (callbacks and polls never move a task backwards);
# a status word not listed here counts as 1, "under way".
STATUS_RANK = {"submitted": 0, "processing": 1, "succeed": 2, "failed": 2}
# Larger than any video Kling accepts (2160 px a side): a mask beyond it can only be a broken
# answer, and decoding it would allocate h * w bytes.
MAX_MASK_SIDE = 4096
_MISSING = object()


def _positive(value: float, where: str, *, zero_ok: bool = False) -> float:
    """``value`` if finite and > 0 (>= 0 with ``zero_ok``); JSON allows NaN and Infinity."""
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero_ok):
        raise ResponseFormatError(
            f"{where} is {value!r}, expected a finite number {'>=' if zero_ok else '>'} 0"
        )
    return value


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
    """A selection session on Kling's normalized copy of the video (valid 24 h).

    The input's length is ``total_frames / fps``: the docs give ``original_duration`` no
    unit, and their own example (1000 beside 300 frames at 30 fps) contradicts
    milliseconds, so it is kept as sent (``original_duration``) and only cross-checked.
    ``width`` and ``height`` are documented as "currently unused": ``0`` when absent.
    """

    session_id: str
    fps: float
    total_frames: int
    width: int = 0
    height: int = 0
    normalized_video_url: str = ""
    original_duration: float | None = None
    cost: Cost = field(default_factory=Cost)

    @property
    def duration_s(self) -> float:
        """The input's length in seconds, from the frame count and rate."""
        return self.total_frames / self.fps

    @property
    def frame_size(self) -> tuple[int, int] | None:
        """``(height, width)`` of the normalized video, ``None`` when Kling did not say."""
        return (self.height, self.width) if self.height and self.width else None

    @classmethod
    def from_api(cls, data: Any) -> InitResult:
        w = "data"
        session_id = _get(data, "session_id", str, w)
        if not session_id:
            raise ResponseFormatError("data.session_id is empty")
        fps = _positive(float(_get(data, "fps", (int, float), w)), "data.fps")
        result = cls(
            session_id=session_id,
            fps=fps,
            total_frames=int(_positive(_get(data, "total_frame", int, w), "data.total_frame")),
            width=_optional_side(data, "width"),
            height=_optional_side(data, "height"),
            normalized_video_url=_get(data, "normalized_video", str, w, ""),
            cost=Cost.from_api(data),
            original_duration=_optional_number(data, "original_duration"),
        )
        result._cross_check()
        return result

    def _cross_check(self) -> None:
        """Note at DEBUG when ``original_duration`` fits neither ms nor s; never fails."""
        raw = self.original_duration
        if raw is None:
            return
        frame = 1.0 / self.fps
        if not any(abs(raw * scale - self.duration_s) <= frame + 1e-6 for scale in (0.001, 1.0)):
            log.debug(
                "session %s: original_duration %g matches neither %.3f s nor %.0f ms "
                "(%d frames at %g fps); using the frame count", self.session_id, raw,
                self.duration_s, self.duration_s * 1000, self.total_frames, self.fps,
            )


def _optional_side(data: dict, key: str) -> int:
    """A documented-but-unused size field: its value when a usable int, else 0."""
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_MASK_SIDE:
        if value is not None:
            log.debug("init answer: ignoring data.%s = %r", key, value)
        return 0
    return value


def _optional_number(data: dict, key: str) -> float | None:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


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
        """A checked mask: ``counts`` decode to runs covering exactly ``size`` (else
        :class:`ResponseFormatError`), so ``to_array`` cannot fail or allocate without bound."""
        w = "rle_mask_list[]"
        rle_mask = _get(item, "rle_mask", dict, w)
        size = _get(rle_mask, "size", list, f"{w}.rle_mask")
        if len(size) != 2 or not all(
            isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_MASK_SIDE
            for v in size
        ):
            raise ResponseFormatError(
                f"{w}.rle_mask.size {size!r} is not [height, width] with sides of "
                f"1-{MAX_MASK_SIDE} px"
            )
        png = item.get("png_mask") if isinstance(item.get("png_mask"), dict) else {}
        object_id = _get(item, "object_id", int, w)
        counts = _get(rle_mask, "counts", str, f"{w}.rle_mask")
        try:
            rle.area(counts, size)
        except (ValueError, TypeError) as exc:
            raise ResponseFormatError(
                f"the mask of object {object_id} is not a valid COCO RLE of size {size}: {exc}"
            ) from None
        return cls(
            object_id=object_id,
            size=(size[0], size[1]),
            counts=counts,
            png_base64=png.get("base64") or "",
        )


@dataclass(frozen=True)
class SelectionResult:
    """The masks of one frame after an add/delete: every object marked on that frame."""

    frame_index: int
    masks: tuple[Mask, ...]
    cost: Cost = field(default_factory=Cost)

    @classmethod
    def from_api(cls, data: Any) -> SelectionResult:
        res = _get(data, "res", dict, "data")
        items = _get(res, "rle_mask_list", list, "data.res", [])
        frame_index = _get(res, "frame_index", int, "data.res")
        masks = tuple(Mask.from_api(item) for item in items)
        sizes = sorted({m.size for m in masks})
        if len(sizes) > 1:  # one frame, one size: masks of different sizes cannot be overlaid
            raise ResponseFormatError(
                f"the masks of frame {frame_index} have different sizes {sizes}: the answer is "
                "inconsistent; try the selection again"
            )
        return cls(frame_index=frame_index, masks=masks, cost=Cost.from_api(data))

    def fit_frame(self, frame_size: tuple[int, int] | None) -> SelectionResult:
        """These masks with each ``size`` read the way the session's frame calls for.

        ``frame_size`` is the session video's ``(height, width)`` (``None``: unknown, the
        sizes are taken as ``[h, w]``). The docs' own example gives ``[w, h]``, and Kling's
        sample decoder ignores ``size`` and decodes with the video's height and width. The
        counts run down columns of the real frame, so a transposed size is replaced by the
        frame's ``(h, w)`` (decoding with the transposed shape would scramble the mask, not
        flip it); likewise a same-aspect smaller mask whose size is given the other way
        round. A size that fits neither order of the frame cannot be drawn on it without
        stretching: :class:`ResponseFormatError`.
        """
        if frame_size is None:
            return self
        fitted = tuple(
            replace(mask, size=_oriented(mask, frame_size)) for mask in self.masks
        )
        return replace(self, masks=fitted)


def _oriented(mask: Mask, frame_size: tuple[int, int]) -> tuple[int, int]:
    height, width = frame_size
    h, w = mask.size
    if (h, w) == (height, width):
        return h, w
    if (w, h) == (height, width):
        return height, width
    slack = max(height, width)  # one pixel of rounding at the mask's scale
    if abs(h * width - w * height) <= slack:
        return h, w
    if abs(w * width - h * height) <= slack:
        return w, h
    raise ResponseFormatError(
        f"the mask of object {mask.object_id} is {w}x{h} px but the video's frame "
        f"is {width}x{height}: it cannot be drawn on the frame without stretching; "
        "report it to Kling with the request id"
    )


@dataclass(frozen=True)
class PreviewResult:
    """Files showing the selection tracked through the whole video."""

    video_url: str
    cover_url: str
    tracking_output_url: str
    cost: Cost = field(default_factory=Cost)

    @classmethod
    def from_api(cls, data: Any) -> PreviewResult:
        res = _get(data, "res", dict, "data")
        return cls(
            video_url=_get(res, "video", str, "data.res"),
            cover_url=_get(res, "video_cover", str, "data.res", ""),
            tracking_output_url=_get(res, "tracking_output", str, "data.res", ""),
            cost=Cost.from_api(data),
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
    """An edit task as Kling last reported it; ``cost`` is its deduction so far (Kling
    calls it final; before the task ends it may be absent or partial)."""

    task_id: str
    status: str
    status_msg: str = ""
    external_task_id: str = ""
    created_at: int = 0
    updated_at: int = 0
    videos: tuple[TaskVideo, ...] = ()
    cost: Cost = field(default_factory=Cost)

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
        task_id = str(_get(data, "task_id", (str, int), w))
        if not task_id:
            raise ResponseFormatError("data.task_id is empty")
        return cls(
            task_id=task_id,
            status=_get(data, "task_status", str, w),
            status_msg=_get(data, "task_status_msg", str, w, ""),
            external_task_id=str(info.get("external_task_id") or ""),
            created_at=int(_get(data, "created_at", (int, float), w, 0)),
            updated_at=int(_get(data, "updated_at", (int, float), w, 0)),
            videos=tuple(TaskVideo.from_api(v) for v in videos),
            cost=Cost.from_api(data),
        )


@dataclass(frozen=True)
class ResourcePack:
    """One resource pack of the account (``GET /account/costs``).

    ``remaining`` may lag the real balance by up to 12 h (Kling's note), so it can be above
    what the deductions of the last hours leave. Times are Unix milliseconds (0: not given).
    """

    name: str
    pack_id: str
    pack_type: str  # "decreasing_total" or "constant_period"
    total: Decimal | None
    remaining: Decimal | None
    status: str  # "toBeOnline", "online", "expired" or "runOut"
    purchase_time: int = 0
    effective_time: int = 0
    invalid_time: int = 0

    @property
    def usable(self) -> bool:
        return self.status == "online"

    @classmethod
    def from_api(cls, item: Any) -> ResourcePack:
        w = "data.resource_pack_subscribe_infos[]"

        def millis(key: str) -> int:
            value = _get(item, key, (int, float), w, 0)
            return int(value) if math.isfinite(value) else 0

        return cls(
            name=_get(item, "resource_pack_name", str, w, ""),
            pack_id=str(_get(item, "resource_pack_id", (str, int), w, "")),
            pack_type=_get(item, "resource_pack_type", str, w, ""),
            total=parse_amount(item.get("total_quantity")),
            remaining=parse_amount(item.get("remaining_quantity")),
            status=_get(item, "status", str, w, ""),
            purchase_time=millis("purchase_time"),
            effective_time=millis("effective_time"),
            invalid_time=millis("invalid_time"),
        )


@dataclass(frozen=True)
class AccountCosts:
    """The account's resource packs, and what the usable ones have left."""

    packs: tuple[ResourcePack, ...]

    @property
    def remaining(self) -> Decimal:
        """Units left in the packs in effect (``online``), as Kling last counted them."""
        return sum((p.remaining or Decimal(0) for p in self.packs if p.usable), Decimal(0))

    @classmethod
    def from_api(cls, data: Any) -> AccountCosts:
        """``data`` of ``/account/costs``; its own inner ``code``, when non-zero, is a
        refusal, raised as the exception that business code calls for."""
        inner = _get(data, "code", int, "data", 0)
        if inner:
            raise error_for(inner, f"the account query was refused (data.code {inner}: "
                                   f"{_get(data, 'msg', str, 'data', '') or 'no message'})")
        items = _get(data, "resource_pack_subscribe_infos", list, "data", [])
        return cls(packs=tuple(ResourcePack.from_api(item) for item in items))
