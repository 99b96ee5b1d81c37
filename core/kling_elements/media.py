"""Local media preparation: reference images (Pillow) and video probing (PyAV, optional).

Images are the one input Kling cannot fix for us: a 12 MB PNG or a 4000x200 banner is
refused after upload. ``prepare_image`` turns what the caller has (a path, bytes, a PIL
image) into the raw base64 Kling wants, re-encoding or downscaling when that makes it
comply, and refuses with a precise message when nothing can (too small, wrong aspect).
"""

from __future__ import annotations

import base64
import functools
import io
import os
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from .errors import ValidationError
from .validate import (
    IMAGE_FORMATS,
    IMAGE_MAX_BYTES,
    IMAGE_MIN_SIDE,
    VideoInfo,
    image_geometry,
)

__all__ = ["ImageInput", "mp4_frame_count", "mp4_frame_rate", "prepare_image", "probe"]

ImageInput = str | os.PathLike | bytes | Image.Image

_MAX_ENCODE_SIDE = 4096


def _load(source: ImageInput, label: str) -> tuple[Image.Image, bytes | None]:
    """Open the image; also return its original bytes when they may be sent unchanged."""
    if isinstance(source, Image.Image):
        return source, None
    if isinstance(source, (bytes, bytearray)):
        data = bytes(source)
        if data[:5] == b"data:":
            raise ValidationError(
                f"{label} is a data: URL; pass the raw image bytes (or a file path) instead"
            )
    else:
        if isinstance(source, str) and source[:5].lower() == "data:":
            raise ValidationError(
                f"{label} is a data: URL; pass the raw image bytes (or a file path) instead"
            )
        path = Path(source)
        try:
            is_file = path.is_file()  # a long base64 string raises ENAMETOOLONG here
        except OSError:
            is_file = False
        if not is_file:
            # The end of a long path names the file; a long base64 string is cut either way.
            text = str(path)
            shown = text if len(text) <= 80 else "…" + text[-79:]
            raise ValidationError(f"{label} {shown!r} does not exist or is not a file")
        data = path.read_bytes()
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise ValidationError(
            f"{label} is not a readable image ({exc.__class__.__name__}): use a JPEG or PNG file"
        ) from None
    return image, data


def _encode(image: Image.Image) -> bytes:
    """Re-encode to JPEG (opaque) or PNG (with alpha), shrinking until under the size limit."""
    has_alpha = image.mode in ("RGBA", "LA") or "transparency" in image.info
    image = image.convert("RGBA" if has_alpha else "RGB")
    if max(image.size) > _MAX_ENCODE_SIDE:
        image.thumbnail((_MAX_ENCODE_SIDE, _MAX_ENCODE_SIDE), Image.Resampling.LANCZOS)
    while True:
        buffer = io.BytesIO()
        if has_alpha:
            image.save(buffer, "PNG")  # optimize=True takes seconds on dithered images
        else:
            image.save(buffer, "JPEG", quality=92)
        data = buffer.getvalue()
        if len(data) <= IMAGE_MAX_BYTES:
            return data
        w, h = image.size
        scale = 0.8
        if min(w, h) * scale < IMAGE_MIN_SIDE:
            raise ValidationError(
                f"image cannot be brought under {IMAGE_MAX_BYTES // 2**20} MB while keeping "
                f"{IMAGE_MIN_SIDE} px sides: simplify or crop it"
            )
        image = image.resize((int(w * scale), int(h * scale)), Image.Resampling.LANCZOS)


def prepare_image(source: ImageInput, *, label: str = "image") -> str:
    """Raw base64 (no ``data:`` prefix) of a compliant JPEG/PNG, or a ValidationError.

    The original bytes are sent unchanged when they already comply; otherwise the image is
    re-encoded (other formats, over 10 MB) and downscaled if needed. Geometry problems that
    only a human can fix (too small, extreme aspect) are refused, never silently cropped.
    """
    image, original = _load(source, label)
    image_geometry(*image.size, label=label)
    if original is not None and image.format in IMAGE_FORMATS and len(original) <= IMAGE_MAX_BYTES:
        data = original
    else:
        data = _encode(image)
    return base64.b64encode(data).decode("ascii")


def probe(path: str | os.PathLike) -> VideoInfo:
    """Read container, duration, size, fps and frame count of a local clip with PyAV.

    Needs the ``video`` extra (``pip install kling-elements[video]``). Duration is taken from
    the frame count and rate when the stream knows them (container durations are often off by
    a frame), else from the container.
    """
    try:
        import av
    except ImportError:  # pragma: no cover - depends on the installed extras
        raise ImportError(
            "probing a video needs PyAV: pip install 'kling-elements[video]'"
        ) from None
    path = Path(path)
    if not path.is_file():
        raise ValidationError(
            f"video {str(path)!r} does not exist or is not a file: check the path"
        )
    if path.stat().st_size == 0:
        raise ValidationError(f"video {str(path)!r} is an empty file: export it again")
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError) as exc:
        raise ValidationError(
            f"video {str(path)!r} cannot be read ({exc.__class__.__name__}): it is damaged or "
            "not a video; export it again as .mp4 or .mov"
        ) from None
    with container:
        if not container.streams.video:
            raise ValidationError(
                f"{str(path)!r} has no video stream (audio only?): use a clip with a video "
                "track, .mp4 or .mov"
            )
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        fps = float(rate) if rate else 0.0
        frames = stream.frames or None
        if frames and fps:
            duration = frames / fps
        elif stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        else:
            duration = (container.duration or 0) / 1_000_000
        if not frames and fps:
            frames = round(duration * fps)
        width, height = stream.codec_context.width, stream.codec_context.height
    suffix = path.suffix.lower().lstrip(".")
    return VideoInfo(
        container=suffix or "unknown",
        duration_s=duration,
        width=width,
        height=height,
        fps=fps,
        frame_count=frames,
    )


_CONTAINER_BOXES = {b"moov", b"trak", b"mdia", b"minf", b"stbl"}


def _boxes(data: bytes, start: int, end: int):
    """(type, payload_start, payload_end) of the ISO-BMFF boxes in ``data[start:end]``."""
    pos = start
    while pos + 8 <= end:
        size = int.from_bytes(data[pos:pos + 4], "big")
        kind = data[pos + 4:pos + 8]
        header = 8
        if size == 1:
            size = int.from_bytes(data[pos + 8:pos + 16], "big")
            header = 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            return
        yield kind, pos + header, pos + size
        pos += size


def _find_moov(handle) -> bytes | None:
    handle.seek(0, os.SEEK_END)
    length = handle.tell()
    pos = 0
    while pos + 8 <= length:
        handle.seek(pos)
        header = handle.read(16)
        size = int.from_bytes(header[:4], "big")
        kind = header[4:8]
        if size == 1:
            size = int.from_bytes(header[8:16], "big")
        elif size == 0:
            size = length - pos
        if size < 8:
            return None
        if kind == b"moov":
            handle.seek(pos)
            return handle.read(size)
        pos += size
    return None


def mp4_frame_rate(path: str | os.PathLike) -> float | None:
    """Average frame rate of the first video track of an MP4/MOV, read from its index.

    Pure Python and cheap (reads only the ``moov`` box), so it runs where PyAV is absent,
    e.g. inside Blender. None when the file is not ISO-BMFF or has no video track.
    """
    timing = _video_track_timing(path)
    return timing[0] * timing[2] / timing[1] if timing else None


def mp4_frame_count(path: str | os.PathLike) -> int | None:
    """Frames of the first video track of an MP4/MOV, from its index (no decoding).

    None when the file is not ISO-BMFF or has no video track.
    """
    timing = _video_track_timing(path)
    return timing[0] if timing else None


def _video_track_timing(path: str | os.PathLike) -> tuple[int, int, int] | None:
    """``(samples, duration, timescale)`` of the first video track with a usable index.

    Cached per file version (path, modification time, size): the panel asks on every
    redraw, and a file rewritten in place is read again. This is the one cache of these
    numbers; callers need none of their own.
    """
    try:
        info = os.stat(path)
    except OSError:
        return None
    return _timing_of(os.fspath(path), info.st_mtime_ns, info.st_size)


@functools.lru_cache(maxsize=256)
def _timing_of(path: str, mtime_ns: int, size: int) -> tuple[int, int, int] | None:
    try:
        with open(path, "rb") as handle:
            moov = _find_moov(handle)
    except OSError:
        return None
    if moov is None:
        return None
    for kind, start, end in _boxes(moov, 8, len(moov)):
        if kind == b"trak":
            timing = _track_timing(moov, start, end)
            if timing:
                return timing
    return None


def _track_timing(data: bytes, start: int, end: int) -> tuple[int, int, int] | None:
    found: dict[bytes, tuple[int, int]] = {}

    def walk(a: int, b: int) -> None:
        for kind, s, e in _boxes(data, a, b):
            if kind in _CONTAINER_BOXES:
                walk(s, e)
            elif kind in (b"hdlr", b"mdhd", b"stts"):
                found[kind] = (s, e)

    walk(start, end)
    if not all(k in found for k in (b"hdlr", b"mdhd", b"stts")):
        return None
    s, _ = found[b"hdlr"]
    if data[s + 8:s + 12] != b"vide":
        return None
    s, _ = found[b"mdhd"]
    offset = 20 if data[s] == 1 else 12
    timescale = int.from_bytes(data[s + offset:s + offset + 4], "big")
    s, _ = found[b"stts"]
    entries = int.from_bytes(data[s + 4:s + 8], "big")
    samples = duration = 0
    for i in range(entries):
        base = s + 8 + 8 * i
        count = int.from_bytes(data[base:base + 4], "big")
        samples += count
        duration += count * int.from_bytes(data[base + 4:base + 8], "big")
    if not samples or not duration or not timescale:
        return None
    return samples, duration, timescale
