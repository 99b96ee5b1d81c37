"""Test media: tiny, fast clips and images for the bad-input corpus, and decoding checks.

Kling's rules force real sizes (720-2160 px), so clips are kept cheap instead: flat grey
frames (they compress to almost nothing) and libx264's fastest preset. Odd sides need a
chroma format without subsampling (yuv444p); everything else is plain yuv420p H.264.
"""

from __future__ import annotations

import hashlib
import io
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

from kling_elements.sandbox.video import fps_fraction

__all__ = ["audio_only", "decode", "frame_count", "image_bytes", "sha256", "write_clip"]


def write_clip(
    path: Path,
    width: int = 720,
    height: int = 720,
    fps: float = 24,
    seconds: float = 2.0,
    *,
    container: str | None = None,
    codec: str = "libx264",
) -> Path:
    """A flat clip of ``round(seconds * fps)`` frames at exactly ``fps`` (NTSC rates exact)."""
    rate = fps_fraction(fps)
    odd = width % 2 or height % 2
    frame = np.full((height, width, 3), 96, np.uint8)
    with av.open(str(path), mode="w", format=container) as out:
        stream = out.add_stream(codec, rate=rate)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv444p" if odd and codec == "libx264" else "yuv420p"
        if codec == "libx264":
            stream.options = {"preset": "ultrafast", "crf": "40"}
        stream.codec_context.time_base = Fraction(1) / rate
        for index in range(round(seconds * float(rate))):
            video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
            video_frame.pts = index
            video_frame.time_base = Fraction(1) / rate
            out.mux(stream.encode(video_frame))
        out.mux(stream.encode(None))
    return path


def audio_only(path: Path, seconds: float = 2.0) -> Path:
    """An MP4 holding one AAC track and no video stream."""
    with av.open(str(path), mode="w", format="mp4") as out:
        stream = out.add_stream("aac", rate=44100)
        stream.layout = "mono"
        samples = int(44100 * seconds)
        pts = 0
        for start in range(0, samples, 1024):
            count = min(1024, samples - start)
            frame = av.AudioFrame.from_ndarray(
                np.zeros((1, count), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 44100, pts
            pts += count
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def image_bytes(width: int, height: int, fmt: str = "PNG", *, noise: bool = False,
                seed: int = 0) -> bytes:
    """An encoded ``width x height`` image; ``noise`` makes it incompressible (for size tests)."""
    if noise:
        pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), np.uint8)
    else:
        pixels = np.zeros((height, width, 3), np.uint8)
        pixels[..., 0] = np.linspace(0, 255, width, dtype=np.uint8)[None, :]
        pixels[..., 2] = 180
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, fmt)
    return buffer.getvalue()


def decode(path: Path, keep: tuple[int, ...] = ()) -> tuple[int, dict[int, np.ndarray]]:
    """Decode every frame of ``path`` with PyAV (which raises on a damaged file): the frame
    count, and the frames numbered in ``keep`` as RGB arrays."""
    count, kept = 0, {}
    with av.open(str(path)) as container:
        for count, frame in enumerate(container.decode(video=0), start=1):
            if count - 1 in keep:
                kept[count - 1] = frame.to_ndarray(format="rgb24")
    return count, kept


def frame_count(path: Path) -> int:
    """Frames decoded by PyAV (which raises on a damaged file)."""
    return decode(path)[0]


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
