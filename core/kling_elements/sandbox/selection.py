"""The selection endpoints' work: init (fetch, check, normalize), points, masks, preview.

Guarantees: a request that is refused changes nothing (checks and segmentation happen before
the session is updated); points are stored exactly as received, and a delete matches them
bit for bit (``struct.pack("<d")``, so ``-0.0`` is not ``0.0``); a frame whose last point is
deleted stops counting toward the 10-frame limit; the preview is computed once per selection
version and reused (also by the render worker); previews of the same clip and key masks in
other sessions are copies of the first one's files (the drawing is deterministic).
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import shutil
import struct
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

from .. import media, rle, validate
from ..errors import ValidationError
from . import video, vision
from .config import ApiError, SandboxConfig
from .fetch import MAX_VIDEO_BYTES, download, loopback_url, url_suffix
from .state import Normalized, Preview, Session, State, file_digest

__all__ = [
    "add_points", "clear_points", "copy_file", "delete_points", "init_session", "parse_points",
    "preview", "tracking",
]


def _invalid(exc: ValidationError, prefix: str = "") -> ApiError:
    return ApiError(1201, f"{prefix}{exc}")


def _source(state: State, body: dict) -> tuple[Path, bool, bool]:
    """The local file to read, whether it is a temporary download to delete afterwards, and
    whether it is one of the sandbox's own results (``video_id``)."""
    video_id, video_url = body.get("video_id"), body.get("video_url")
    for name, value in (("video_id", video_id), ("video_url", video_url)):
        if value is not None and not isinstance(value, str):
            raise ApiError(1201, f"{name} must be a string, got {type(value).__name__}")
    try:
        field, value = validate.video_source(video_url or None, video_id or None)
    except ValidationError as exc:
        raise _invalid(exc) from None
    if field == "video_id":
        return state.video(value).path, False, True
    url = loopback_url("video_url", value)
    incoming = state.data_dir / "incoming"
    incoming.mkdir(parents=True, exist_ok=True)
    partial = incoming / f"{state.new_session_id()}.part"
    content_type = download(url, partial, field="video_url", max_bytes=MAX_VIDEO_BYTES)
    final = partial.with_suffix(url_suffix(url, content_type) or ".bin")
    os.replace(partial, final)
    return final, True, False


def _normalize(state: State, config: SandboxConfig, source: Path, key: str) -> Normalized:
    """Decode ``source`` at the size bound and write the normalized copy (not yet served)."""
    try:
        frames, fps = video.read_frames(source, max_long_side=config.max_long_side)
    except Exception as exc:
        raise ApiError(1201, f"video cannot be decoded ({exc.__class__.__name__})") from None
    path = state.data_dir / "normalized" / f"{key.replace('/', '-')}.mp4"
    video.write_mp4(path, frames, fps)
    return Normalized(path, fps, len(frames), frames.shape[1] + frames.shape[1] % 2,
                      frames.shape[2] + frames.shape[2] % 2)


def init_session(state: State, config: SandboxConfig, body: dict, base_url: str) -> dict:
    """Check the video against Kling's rules, write the normalized copy, open a session.

    Sources with the same bytes (shots of one plate) are normalized once: each session gets
    a copy of that file, as a second decode and encode would make the same bytes. A result
    of the sandbox's (``video_id``) may run a few frames over its duration range, as Kling's
    do (``validate.RESULT_OVERRUN_S``). ``original_duration`` is sent in milliseconds (the
    docs give no unit; clients must not rely on it).
    """
    source, temporary, generated = _source(state, body)
    try:
        try:
            info = media.probe(source)
        except ValidationError as exc:
            raise _invalid(exc, "video cannot be read: ") from None
        problems = validate.video_problems(info, generated=generated)
        if problems:
            raise ApiError(1201, "video breaks Kling's rules: " + "; ".join(problems))
        key = f"{file_digest(source)}/{config.max_long_side}"
        known = state.normalized.get(key, lambda: _normalize(state, config, source, key))
    finally:
        if temporary:
            with contextlib.suppress(OSError):
                os.unlink(source)
    session_id = state.new_session_id()
    name, path = state.new_file(f"sessions/{session_id}", ".mp4", "normalized.mp4")
    shutil.copyfile(known.path, path)
    session = Session(
        id=session_id, created_at=state.clock.now(), video_path=path, video_name=name,
        fps=known.fps, width=known.width, height=known.height, total_frame=known.frames,
        duration_s=info.duration_s, original_duration=round(info.duration_s * 1000),
    )
    state.add_session(session)
    answer = {
        "status": 0, "session_id": session_id, "fps": known.fps,
        "original_duration": session.original_duration, "width": known.width,
        "height": known.height,
        "total_frame": session.total_frame, "normalized_video": state.file_url(name, base_url),
    }
    if not config.init_frame_size:
        del answer["width"], answer["height"]
    return answer


def parse_points(raw: object) -> list[tuple[float, float]]:
    """``[{"x": float, "y": float}, ...]`` checked by ``validate.points``, kept as received."""
    if not isinstance(raw, list):
        raise ApiError(1201, 'points must be a list of {"x": float, "y": float}')
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or set(item) != {"x", "y"}:
            raise ApiError(1201, f'points[{i}] must be an object {{"x": float, "y": float}}')
    try:
        validate.points(raw)
    except ValidationError as exc:
        raise _invalid(exc, "points: ") from None
    return [(float(p["x"]), float(p["y"])) for p in raw]


def _bits(point: tuple[float, float]) -> bytes:
    return struct.pack("<dd", *point)


def _png_base64(mask: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(mask.astype(np.uint8) * 255, mode="L").save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _res(frame_index: int, masks: list[np.ndarray], size_order: str = "hw") -> dict:
    """The answer of add/delete; ``size_order`` "wh" writes ``size`` as ``[w, h]``, as the
    docs' own example does (the counts are the same: they run down the frame's columns)."""
    items = []
    for i, mask in enumerate(masks):
        encoded = rle.encode(mask)
        size = [int(mask.shape[0]), int(mask.shape[1])]
        if size_order == "wh":
            size.reverse()
        items.append({
            "object_id": i,
            "rle_mask": {"size": size, "counts": encoded["counts"]},
            "png_mask": {"size": list(size), "base64": _png_base64(mask)},
        })
    return {"status": 0, "res": {"frame_index": frame_index, "rle_mask_list": items}}


SEGMENTATIONS_AT_ONCE = max(1, os.cpu_count() or 1)
_SEGMENTING = threading.BoundedSemaphore(SEGMENTATIONS_AT_ONCE)
"""At most one cut per core at a time (all sessions and sandboxes of the process): a burst
of clicks waits its turn for a core instead of every click, and every other request of the
server (a task poll, a download), slowing down together. Points already cut on a frame are
looked up without waiting (``vision.segment``'s ``gate``)."""


class _Turn:
    """``_SEGMENTING`` as one request takes it, point by point: how long it waited."""

    def __init__(self) -> None:
        self.waited = 0.0

    def __enter__(self) -> None:
        started = time.perf_counter()
        _SEGMENTING.acquire()
        self.waited += time.perf_counter() - started

    def __exit__(self, *exc: object) -> None:
        _SEGMENTING.release()


def _segment(state: State, session: Session, index: int, points: list,
             timings: dict[str, float] | None = None) -> list[np.ndarray]:
    """The frame's masks; ``timings["seg"]`` gets the seconds the segmentation took and
    ``timings["segq"]`` those it waited for a free core (``_SEGMENTING``)."""
    if not points:
        return []
    frames, _ = state.frames.get(session.video_path)
    turn = _Turn()
    started = time.perf_counter()
    masks = vision.segment(frames[index], list(points), context=frames, gate=turn)
    if timings is not None:
        timings["segq"] = turn.waited
        timings["seg"] = time.perf_counter() - started - turn.waited
    return [np.asarray(mask, dtype=bool) for mask in masks]


def _commit(session: Session, index: int, points: list, masks: list[np.ndarray]) -> None:
    if points:
        session.points[index] = points
        union = np.logical_or.reduce(masks) if masks else np.zeros(
            (session.height, session.width), bool)
        session.masks[index] = union
    else:
        session.points.pop(index, None)
        session.masks.pop(index, None)
    session.version += 1


def _frame(session: Session, value: object) -> int:
    try:
        return validate.frame_index(value, session.total_frame)
    except ValidationError as exc:
        raise _invalid(exc) from None


def add_points(state: State, session: Session, frame_index: object, raw: object,
               size_order: str = "hw", timings: dict[str, float] | None = None) -> dict:
    """Add points to one frame (limits: 10 per frame, 10 frames) and segment it again.

    ``timings`` (if given) gets ``seg``, the segmentation's seconds (``Server-Timing``)."""
    index = _frame(session, frame_index)
    new = parse_points(raw)
    with session.lock:
        current = session.points.get(index, [])
        if index not in session.points and len(session.points) >= validate.MAX_FRAMES_PER_SESSION:
            raise ApiError(
                1201,
                f"frame {index} would be a marked frame beyond the limit of "
                f"{validate.MAX_FRAMES_PER_SESSION} frames per session: mark points on frames "
                f"already used ({sorted(session.points)}) or delete a frame's points first",
            )
        if len(current) + len(new) > validate.MAX_POINTS_PER_FRAME:
            raise ApiError(
                1201,
                f"frame {index} would have {len(current) + len(new)} points, over the limit of "
                f"{validate.MAX_POINTS_PER_FRAME} points per frame: delete some first",
            )
        points = current + new
        masks = _segment(state, session, index, points, timings)
        _commit(session, index, points, masks)
        return _res(index, masks, size_order)


def delete_points(state: State, session: Session, frame_index: object, raw: object,
                  size_order: str = "hw", timings: dict[str, float] | None = None) -> dict:
    """Remove bit-identical points from one frame and segment what remains (``timings``:
    as for :func:`add_points`)."""
    index = _frame(session, frame_index)
    gone = parse_points(raw)
    with session.lock:
        remaining = list(session.points.get(index, []))
        for point in gone:
            key = _bits(point)
            found = next((i for i, p in enumerate(remaining) if _bits(p) == key), None)
            if found is None:
                raise ApiError(
                    1201,
                    f"point ({point[0]!r}, {point[1]!r}) is not selected on frame {index}; send "
                    "exactly the coordinates used in add-selection",
                )
            del remaining[found]
        masks = _segment(state, session, index, remaining, timings)
        _commit(session, index, remaining, masks)
        return _res(index, masks, size_order)


def clear_points(session: Session) -> dict:
    """Forget every point of every frame."""
    with session.lock:
        session.points.clear()
        session.masks.clear()
        session.version += 1
    return {"status": 0, "session_id": session.id}


def tracking(
    state: State, session: Session, key_masks: dict[int, np.ndarray], version: int
) -> np.ndarray:
    """The ``(n, h, w)`` tracked masks for ``key_masks``; the preview's when it is current."""
    cached = session.preview
    if cached is not None and cached.version == version:
        return cached.masks()
    frames, _ = state.frames.get(session.video_path)
    return np.asarray(vision.track(frames, dict(key_masks)), dtype=bool)


def copy_file(source: Path, target: Path) -> None:
    """Copy under a temporary name, then rename: ``target`` is never seen half-written."""
    partial = target.with_name(target.name + ".part")
    shutil.copyfile(source, partial)
    os.replace(partial, target)


def _write_tracking(path: Path, masks: np.ndarray) -> None:
    partial = path.with_name(path.name + ".part")
    with open(partial, "w", encoding="ascii") as out:
        for i, mask in enumerate(masks):
            encoded = rle.encode(mask)
            out.write(json.dumps({"frame_index": i, "size": list(encoded["size"]),
                                  "counts": encoded["counts"]}) + "\n")
    os.replace(partial, path)


def preview(state: State, session: Session, base_url: str) -> dict:
    """Track the marked frames through the clip; write the preview MP4, cover and masks."""
    with session.lock:
        if not session.points:
            raise ApiError(
                1201, "nothing is selected: add-selection at least one point before previewing"
            )
        cached = session.preview
        if cached is None or cached.version != session.version:
            key_masks, version = dict(session.masks), session.version
            video_key = state.frames.key(session.video_path)
            # Shared with the render worker and with sessions of the same clip and clicks.
            masks = state.tracks.get(video_key, key_masks,
                                     lambda: tracking(state, session, key_masks, version))
            folder = f"sessions/{session.id}"
            stem = f"preview-v{session.version}"
            video_name, video_path = state.new_file(folder, ".mp4", f"{stem}.mp4")
            cover_name, cover_path = state.new_file(folder, ".jpg", f"{stem}.jpg")
            track_name, track_path = state.new_file(folder, ".jsonl", f"{stem}.jsonl")
            paths = (video_path, cover_path, track_path)
            key = f"preview:{state.tracks.key(video_key, key_masks)}:{min(session.points)}"
            made = state.outputs.get(key)
            if made is not None:
                for source, target in zip(made[0], paths, strict=True):
                    copy_file(source, target)
            else:
                frames, fps = state.frames.get(session.video_path)
                drawn = vision.draw_masks(frames, masks, color=(40, 230, 110))
                video.write_mp4(video_path, drawn, fps)
                video.write_jpeg(cover_path, drawn[min(session.points)])
                _write_tracking(track_path, masks)
                state.outputs.put(key, paths)
            cached = Preview.of(session.version, masks, video_name, cover_name, track_name)
            session.preview = cached
    return {"status": 0, "res": {
        "video": state.file_url(cached.video, base_url),
        "video_cover": state.file_url(cached.cover, base_url),
        "tracking_output": state.file_url(cached.tracking, base_url),
    }}
