"""Generated source clips whose every frame shows its own number, made once per session.

Each frame carries its display index as ten large black/white cells (bit 0 on the left)
across the middle of the picture, which survive scaling and H.264 4:2:0 compression; a
frame read back from a conformed clip therefore says which source frame it is, and the
tests compare that with the record. Clips are small and short unless the case is about size.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

av = pytest.importorskip("av")

BITS = 10


def has_encoder(name: str) -> bool:
    try:
        av.codec.Codec(name, "w")
    except Exception:
        return False
    return True


@dataclass(frozen=True)
class Source:
    """A generated clip: frame ``i`` is shown from ``times[i]`` seconds and reads ``i``."""

    path: Path
    width: int
    height: int
    fps: float
    times: tuple[float, ...]

    @property
    def frame_count(self) -> int:
        return len(self.times)


def coded_frame(index: int, width: int, height: int) -> np.ndarray:
    """An RGB frame showing ``index`` in binary cells over a textured grey background."""
    rows = np.linspace(60, 110, height, dtype=np.float32)[:, None]
    cols = np.linspace(0, 40, width, dtype=np.float32)[None, :]
    grey = (rows + cols).astype(np.uint8)
    frame = np.repeat(grey[..., None], 3, axis=2)
    top, bottom = int(height * 0.3), int(height * 0.7)
    cell = width / BITS
    for bit in range(BITS):
        left, right = int(bit * cell), int((bit + 1) * cell)
        frame[top:bottom, left:right] = 235 if index >> bit & 1 else 16
    return frame


def read_code(frame: av.VideoFrame) -> int:
    """The index a decoded frame shows (see ``coded_frame``)."""
    grey = frame.to_ndarray(format="gray").astype(np.float32)
    height, width = grey.shape
    top, bottom = int(height * 0.4), int(height * 0.6)
    cell = width / BITS
    value = 0
    for bit in range(BITS):
        left, right = int((bit + 0.3) * cell), int((bit + 0.7) * cell)
        if grey[top:bottom, left:right].mean() > 128:
            value |= 1 << bit
    return value


def write_source(path: Path, *, width: int, height: int, fps: float, seconds: float = 0.0,
                 times: tuple[float, ...] | None = None, codec: str = "libx264") -> Source:
    """Encode a coded clip; ``times`` (seconds) gives a variable rate, else ``i / fps``."""
    from kling_elements.sandbox.video import fps_fraction

    rate = fps_fraction(fps)
    if times is None:
        times = tuple(float(i / rate) for i in range(round(seconds * fps)))
    tick = Fraction(1, 90000)
    fmt = "mov" if path.suffix == ".mov" else "mp4"
    pix = {"prores_ks": "yuv422p10le"}.get(codec, "yuv420p")
    if width % 2 or height % 2:
        pix = "yuv444p"  # 4:2:0 needs even sides; odd-sized sources exist (old cameras, crops)
    options = {"libx264": {"preset": "ultrafast", "crf": "16"},
               "libx265": {"preset": "ultrafast", "crf": "18", "x265-params": "log-level=error"},
               "prores_ks": {"profile": "0"}}.get(codec, {})
    with av.open(str(path), mode="w", format=fmt) as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, pix
        stream.options = options
        stream.codec_context.time_base = tick
        for index, t in enumerate(times):
            frame = av.VideoFrame.from_ndarray(coded_frame(index, width, height), format="rgb24")
            frame.pts = round(t / tick)
            frame.time_base = tick
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return Source(path, width, height, fps, tuple(times))


def phone_times(seconds: float, fps: float = 30.0) -> tuple[float, ...]:
    """A variable rate like a phone's: frames late, early, doubled, around ``fps``."""
    pattern = (1.0, 1.3, 0.7, 1.0, 1.6, 0.4)
    times, t, i = [], 0.0, 0
    while t < seconds - 1e-9:
        times.append(round(t, 5))
        t += pattern[i % len(pattern)] / fps
        i += 1
    return tuple(times)


@pytest.fixture(scope="session")
def sources(tmp_path_factory) -> Callable[..., Source]:
    """``sources(name, **write_source options)``: a clip made on first use, then reused."""
    folder = tmp_path_factory.mktemp("conform-sources")
    made: dict[str, Source] = {}

    def get(name: str, **options) -> Source:
        if name not in made:
            made[name] = write_source(folder / name, **options)
        return made[name]

    return get
