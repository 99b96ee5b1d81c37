"""Video and image file I/O for the sandbox (PyAV for MP4, Pillow for JPEG).

Frames are always ``(h, w, 3)`` uint8 RGB; a video is ``(n, h, w, 3)``. Every writer is
atomic: the file is encoded under a temporary name in the destination directory and
renamed into place only when complete, so a reader (the HTTP server serving a result URL)
never sees a half-written file.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

__all__ = ["atomic_path", "fps_fraction", "read_frames", "write_jpeg", "write_mp4"]

_DEFAULT_FPS = 30.0
_NTSC_DENOMINATOR = 1001


def fps_fraction(fps: float) -> Fraction:
    """Return the exact rational frame rate for ``fps``.

    Integer rates (24, 30, 60) stay integers and NTSC-like rates (29.97, 59.94, 23.976) become
    ``k*1000/1001``, so a clip written at 29.97 reads back as 30000/1001, not 2997/100.
    """
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    nearest = round(fps)
    if abs(fps - nearest) < 1e-3:
        return Fraction(nearest, 1)
    ntsc = round(fps * _NTSC_DENOMINATOR / 1000)
    if abs(fps - ntsc * 1000 / _NTSC_DENOMINATOR) < 1e-3:
        return Fraction(ntsc * 1000, _NTSC_DENOMINATOR)
    return Fraction(fps).limit_denominator(_NTSC_DENOMINATOR)


def _target_size(width: int, height: int, max_long_side: int | None) -> tuple[int, int] | None:
    """Size to scale to so the long side is ``max_long_side`` (even sides), or None to keep."""
    if max_long_side is None or max(width, height) <= max_long_side:
        return None
    scale = max_long_side / max(width, height)

    def even(value: float) -> int:
        return max(2, round(value / 2) * 2)

    return even(width * scale), even(height * scale)


def _stream_fps(stream: av.video.stream.VideoStream) -> float:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate:
            return float(rate)
    return _DEFAULT_FPS


def read_frames(
    path: str | os.PathLike, max_long_side: int | None = None
) -> tuple[np.ndarray, float]:
    """Decode every frame of the first video stream as ``(n, h, w, 3)`` uint8 RGB, plus fps.

    With ``max_long_side``, frames larger than it are downscaled (Pillow, antialiased
    bilinear) so the long side equals it (rounded to even sides), keeping the aspect ratio.
    The buffer is preallocated from the container's frame count, so peak memory stays close
    to the size of the result.
    """
    with av.open(os.fspath(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        fps = _stream_fps(stream)
        expected = int(stream.frames or 0)
        if expected <= 0 and stream.duration and stream.time_base:
            expected = int(float(stream.duration * stream.time_base) * fps) + 1
        buffer: np.ndarray | None = None
        count = 0
        for frame in container.decode(stream):
            image = _decode_frame(frame, max_long_side)
            if buffer is None:
                buffer = np.empty((max(expected, 1), *image.shape), np.uint8)
            elif count == len(buffer):
                buffer = _grow(buffer)
            buffer[count] = image
            count += 1
    if buffer is None:
        raise ValueError(f"{os.fspath(path)!r} contains no decodable video frames")
    frames = buffer[:count] if count == len(buffer) else buffer[:count].copy()
    return frames, fps


def _decode_frame(frame: av.VideoFrame, max_long_side: int | None) -> np.ndarray:
    size = _target_size(frame.width, frame.height, max_long_side)
    if size is None:
        return frame.to_ndarray(format="rgb24")
    image = frame.to_image().resize(size, Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.uint8)


def _grow(buffer: np.ndarray) -> np.ndarray:
    bigger = np.empty((len(buffer) + max(16, len(buffer) // 4), *buffer.shape[1:]), np.uint8)
    bigger[: len(buffer)] = buffer
    return bigger


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str) -> Iterator[str]:
    """Yield a temporary file name next to ``path``; rename it onto ``path`` on success."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=f".tmp{suffix}", dir=final.parent)
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _even_frame(frame: np.ndarray) -> np.ndarray:
    """yuv420p needs even sides: replicate the last row/column when a side is odd."""
    h, w = frame.shape[:2]
    if h % 2 == 0 and w % 2 == 0:
        return frame
    return np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")


def write_mp4(
    path: str | os.PathLike, frames: np.ndarray | Iterable[np.ndarray], fps: float
) -> None:
    """Encode frames as H.264 (libx264, yuv420p, crf 20, preset veryfast) into an MP4.

    ``frames`` is an ``(n, h, w, 3)`` uint8 array or any iterable of ``(h, w, 3)`` frames
    (a generator avoids holding a whole synthetic clip in memory). Guarantees: every frame
    given is one frame in the file, the stream's frame rate is exactly ``fps_fraction(fps)``,
    odd sides are padded by one replicated pixel, and ``path`` appears only once complete.
    """
    rate = fps_fraction(fps)
    with atomic_path(path, ".mp4") as tmp, av.open(tmp, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "20", "preset": "veryfast"}
        stream.codec_context.time_base = Fraction(1) / rate
        count = 0
        for index, raw in enumerate(frames):
            frame = _even_frame(_as_rgb(raw))
            if index == 0:
                stream.height, stream.width = frame.shape[:2]
            video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
            video_frame.pts = index
            video_frame.time_base = Fraction(1) / rate
            container.mux(stream.encode(video_frame))
            count += 1
        if count == 0:
            raise ValueError("write_mp4 needs at least one frame")
        container.mux(stream.encode(None))


def _as_rgb(frame: np.ndarray) -> np.ndarray:
    array = np.asarray(frame)
    if array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"expected an (h, w, 3) RGB frame, got shape {array.shape}")
    if array.dtype != np.uint8:
        array = np.clip(array, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(array)


def write_jpeg(path: str | os.PathLike, frame: np.ndarray, quality: int = 90) -> None:
    """Write one ``(h, w, 3)`` RGB frame as a JPEG; ``path`` appears only once complete."""
    image = Image.fromarray(_as_rgb(frame))
    with atomic_path(path, ".jpg") as tmp:
        image.save(tmp, format="JPEG", quality=quality)
