"""A source clip as PyAV sees it: size, rate, and when each frame is on screen.

``probe_source`` reads the container's packets (no decoding) to learn every frame's
presentation time, so a frame number means the same thing everywhere: frame ``i`` is the
``i``-th picture in display order, counted from 0, whatever the container's time base, its
B-frame reordering or its rate. A clip whose frames stray from a constant-rate grid by more
than a quarter frame (phones record a variable rate) keeps their times, and the plan then
picks frames by time. ``Mark`` is a user's time (``2.5``, seconds) or frame (``f60``).

Needs the ``video`` extra (PyAV); imported only by the code that reads media.
"""

from __future__ import annotations

import bisect
import math
import os
import re
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from ..validate import VideoInfo
from .plan import ConformError, SourceClip

__all__ = ["Mark", "SourceMedia", "VideoExtraMissing", "import_av", "probe_source",
           "source_clip"]

_VFR_SLACK = 0.25  # of a frame: further from the constant-rate grid is a variable rate


class VideoExtraMissing(ConformError, ImportError):
    """PyAV is not installed (both a ConformError for the CLI and an ImportError)."""


def import_av():
    """PyAV, or :class:`VideoExtraMissing` saying how to install it."""
    try:
        import av
    except ImportError:  # pragma: no cover - depends on the installed extras
        raise VideoExtraMissing("conforming a clip needs PyAV: pip install "
                                "'kling-elements[video]'") from None
    return av


@dataclass(frozen=True)
class SourceMedia:
    """What a probe learnt about a clip; frame ``i`` is shown from ``times[i]`` seconds.

    ``pts`` are the frames' presentation timestamps (stream time base) in display order, or
    None when the container does not give them (then frames are only counted, never sought).
    ``times`` are relative to frame 0. ``variable_rate`` is true when they stray from the
    grid ``i / fps`` (see the module).
    """

    path: str
    container: str
    codec: str
    width: int
    height: int
    fps: float
    frame_count: int
    time_base: Fraction
    stamp: tuple[int, int]
    times: tuple[float, ...] = field(repr=False)
    pts: tuple[int, ...] | None = field(default=None, repr=False)
    variable_rate: bool = False

    @property
    def duration_s(self) -> float:
        """From frame 0 to the end of the last frame."""
        return self.times[-1] + 1 / self.fps

    def info(self) -> VideoInfo:
        """Kling's view of the whole clip (what ``validate.video_problems`` checks)."""
        return VideoInfo(self.container, self.duration_s, self.width, self.height, self.fps,
                         self.frame_count)

    def frame_index(self, pts: int | None) -> int | None:
        """The display index of the frame with presentation timestamp ``pts`` (nearest)."""
        if pts is None or self.pts is None:
            return None
        i = bisect.bisect_left(self.pts, pts)
        if i == len(self.pts) or (i > 0 and pts - self.pts[i - 1] < self.pts[i] - pts):
            i -= 1
        return i

    def frame_at(self, seconds: float) -> int:
        """The frame on screen at ``seconds`` (the last one starting at or before it)."""
        return max(0, bisect.bisect_right(self.times, seconds + 1e-6) - 1)

    def frame_from(self, seconds: float) -> int:
        """The first frame starting at or after ``seconds`` (an exclusive end)."""
        return bisect.bisect_left(self.times, seconds - 1e-6)


def _describe(path: Path) -> str:
    return repr(str(path))


def probe_source(path: str | os.PathLike) -> SourceMedia:
    """Read a clip's geometry and frame times; ConformError naming the problem and the fix.

    Refused: a missing, empty or unreadable file, one FFmpeg cannot open as media, one with
    no video stream or no frames.
    """
    av = import_av()
    path = Path(path)
    if not path.exists():
        raise ConformError(f"source {_describe(path)} does not exist: check the path")
    if not path.is_file():
        raise ConformError(f"source {_describe(path)} is not a file: give a video file")
    stat = path.stat()
    if stat.st_size == 0:
        raise ConformError(f"source {_describe(path)} is an empty file (0 bytes): export "
                           "the clip again")
    try:
        container = av.open(str(path))
    except PermissionError:
        raise ConformError(f"source {_describe(path)} cannot be read (permission denied): "
                           "check the file's permissions") from None
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise ConformError(
            f"source {_describe(path)} is not a video FFmpeg can read ({exc.__class__.__name__})"
            ": give a movie file (.mp4, .mov, .mkv...) or export it again") from None
    with container:
        if not container.streams.video:
            kinds = sorted({s.type for s in container.streams}) or ["no streams"]
            raise ConformError(f"source {_describe(path)} has no video stream (it holds "
                               f"{', '.join(kinds)}): give a clip with a picture")
        stream = container.streams.video[0]
        codec = stream.codec_context.name
        width, height = stream.codec_context.width, stream.codec_context.height
        time_base = stream.time_base or Fraction(1, 90000)
        stamps: list[int | None] = []
        try:
            for packet in container.demux(stream):
                if packet.size == 0 or packet.is_discard:
                    continue
                stamps.append(packet.pts if packet.pts is not None else packet.dts)
        except (av.FFmpegError, OSError) as exc:
            raise ConformError(f"source {_describe(path)} is damaged ({exc.__class__.__name__}"
                               " while reading it): export the clip again") from None
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    if not stamps:
        raise ConformError(f"source {_describe(path)} has a video stream without frames: "
                           "export the clip again")
    count = len(stamps)
    pts: tuple[int, ...] | None = None
    if all(s is not None for s in stamps) and len(set(stamps)) == count:
        pts = tuple(sorted(stamps))  # type: ignore[arg-type]
        times = tuple(float((p - pts[0]) * time_base) for p in pts)
        span = times[-1]
        fps = float(rate) if rate else (count - 1) / span if span > 0 else 0.0
        if not (math.isfinite(fps) and fps > 0):
            fps = (count - 1) / span if span > 0 else 0.0
        variable = fps > 0 and max(abs(t - i / fps) for i, t in enumerate(times)) > \
            _VFR_SLACK / fps
        if variable and count > 1:
            fps = (count - 1) / span  # the average rate the frames really have
    else:
        fps = float(rate) if rate else 0.0
        times = tuple(i / fps for i in range(count)) if fps > 0 else (0.0,) * count
        variable = False
    if not (math.isfinite(fps) and fps > 0):
        raise ConformError(f"source {_describe(path)} has no usable frame rate: export the "
                           "clip again with a constant frame rate")
    return SourceMedia(
        path=str(path.resolve()), container=path.suffix.lower().lstrip(".") or "unknown",
        codec=codec, width=width, height=height, fps=fps, frame_count=count,
        time_base=Fraction(time_base), stamp=(stat.st_size, stat.st_mtime_ns), times=times,
        pts=pts, variable_rate=variable)


# ------------------------------------------------------------------ the user's range

_MARK = re.compile(r"\s*(?:f(\d+)|(\d+(?:\.\d*)?|\.\d+)\s*s?)\s*", re.IGNORECASE)


@dataclass(frozen=True)
class Mark:
    """A point of the source given by the user: seconds (``2.5``) or a frame (``f60``)."""

    text: str
    seconds: float | None = None
    frame: int | None = None

    @classmethod
    def parse(cls, text: str) -> Mark:
        match = _MARK.fullmatch(str(text))
        if not match:
            raise ConformError(f"time {text!r} must be seconds (e.g. 2.5) or a source frame "
                               "(e.g. f60, the 61st frame, counted from f0)")
        if match.group(1) is not None:
            return cls(str(text), frame=int(match.group(1)))
        return cls(str(text), seconds=float(match.group(2)))

    @classmethod
    def of(cls, value: object) -> Mark:
        """From a manifest value: a number of seconds or a string (``"f60"``, ``"2.5"``)."""
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ConformError(f"time {value!r} must be seconds (a number) or a source frame "
                               "such as \"f60\"")
        if isinstance(value, (int, float)):
            if not math.isfinite(value) or value < 0:
                raise ConformError(f"time {value!r} must be a number of seconds, 0 or more")
            return cls(f"{value:g}", seconds=float(value))
        return cls.parse(value)

    def start_frame(self, media: SourceMedia, what: str = "--start") -> int:
        """The first frame of a range starting here; ConformError past the clip's end."""
        if self.frame is not None:
            if self.frame >= media.frame_count:
                raise ConformError(
                    f"{what} {self.text} is past the clip's last frame f{media.frame_count - 1}"
                    f" ({media.duration_s:.2f} s): choose a frame below f{media.frame_count}")
            return self.frame
        assert self.seconds is not None
        if self.seconds >= media.duration_s - 1e-6:
            raise ConformError(f"{what} {self.text} s is past the clip's end "
                               f"({media.duration_s:.2f} s): choose "
                               f"{'a start' if what == '--start' else 'a time'} below "
                               f"{media.duration_s:.2f} s")
        return media.frame_at(self.seconds)

    def end_frame(self, media: SourceMedia, what: str = "--end") -> int:
        """The frame a range ending here stops before (exclusive); ConformError past the end."""
        if self.frame is not None:
            if self.frame > media.frame_count:
                raise ConformError(
                    f"{what} {self.text} is past the clip's end f{media.frame_count} "
                    f"({media.duration_s:.2f} s): choose at most f{media.frame_count}")
            return self.frame
        assert self.seconds is not None
        if self.seconds > media.duration_s + 1e-3:
            raise ConformError(f"{what} {self.text} s is past the clip's end "
                               f"({media.duration_s:.2f} s): choose at most "
                               f"{media.duration_s:.2f} s, or leave it out")
        return min(media.frame_from(self.seconds), media.frame_count)


def source_clip(media: SourceMedia, start: Mark | None = None, end: Mark | None = None,
                *, name: str | None = None) -> SourceClip:
    """The plan's view of ``media`` between ``start`` (inclusive) and ``end`` (exclusive).

    Without ``start``/``end``: the whole clip (the plan then keeps its start and cuts it to
    Kling's length). ConformError for a range outside the clip or one that is empty.
    """
    first = start.start_frame(media) if start else 0
    stop = end.end_frame(media) if end else media.frame_count
    if stop <= first:
        where = f"{start.text if start else '0'}..{end.text if end else 'end'}"
        raise ConformError(f"the range {where} is empty (source frames f{first} to "
                           f"f{stop}): --end must come after --start")
    return SourceClip(
        path=media.path, width=media.width, height=media.height, fps=media.fps,
        first_frame=first, frame_count=stop - first, name=name or Path(media.path).stem,
        file_frames=media.frame_count, stamp=media.stamp,
        frame_times=media.times if media.variable_rate else None)
