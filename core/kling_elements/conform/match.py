"""Back to the source's terms: a result re-timed and re-scaled to drop over the original plate.

Kling's result is at the conformed clip's rate and size. :func:`match_source` writes a copy
with the source's own frame times (its time base and presentation timestamps, so a 29.97 fps
or variable-rate plate gets exactly its own timing back), its size, and the span of the
source the conformed clip covered: source frames ``first_frame`` onwards, for as long as the
conformed clip lasts. Source frame ``s`` at ``t = time(s) - time(first_frame)`` shows the
result's frame nearest to ``t`` (a tie to the later one). An editor places it at the span's
start over the plate, 1:1, in any NLE. Same write guarantees as ``render``.
"""

from __future__ import annotations

import math
import os
from fractions import Fraction
from pathlib import Path

from .plan import ConformCancelled, ConformError, ConformPlan
from .render import CancelCheck, ProgressCallback, cancel_check, encoder_options, write_aside
from .source import SourceMedia, import_av, probe_source

__all__ = ["match_source", "matched_frames"]


def matched_frames(plan: ConformPlan, media: SourceMedia, result_fps: float,
                   result_frames: int) -> list[tuple[int, int]]:
    """``(source frame, result frame)`` for every frame of the matched clip, in order."""
    t0 = media.times[plan.first_frame]
    pairs = []
    for s in range(plan.first_frame, media.frame_count):
        t = media.times[s] - t0
        if t >= plan.duration_s - 1e-6:
            break
        k = min(math.floor(t * result_fps + 0.5), result_frames - 1)
        pairs.append((s, k))
    return pairs


def _even(value: int) -> int:
    return value + value % 2


def match_source(result: str | os.PathLike, plan: ConformPlan, output: str | os.PathLike, *,
                 media: SourceMedia | None = None, on_progress: ProgressCallback | None = None,
                 cancel: CancelCheck = None) -> Path:
    """Write ``output``: ``result`` (made from ``plan``'s clip) in the source's terms.

    A side of odd length is written one pixel larger (H.264 4:2:0 needs even sides).
    """
    av = import_av()
    media = media or probe_source(plan.source)
    result_media = probe_source(result)
    pairs = matched_frames(plan, media, result_media.fps, result_media.frame_count)
    width, height = _even(media.width), _even(media.height)
    output = Path(output)
    cancelled = cancel_check(cancel)
    time_base = media.time_base
    base_pts = media.pts[plan.first_frame] if media.pts is not None else None

    def pts_of(s: int) -> int:
        if base_pts is not None and media.pts is not None:
            return media.pts[s] - base_pts
        return round((media.times[s] - media.times[plan.first_frame]) / time_base)

    def write(tmp: str) -> None:
        rate = _rate(media)
        with av.open(str(result)) as source, av.open(tmp, mode="w", format="mp4") as sink:
            stream = source.streams.video[0]
            stream.thread_type = "AUTO"
            out = sink.add_stream("libx264", rate=rate)
            out.width, out.height, out.pix_fmt = width, height, "yuv420p"
            out.options = encoder_options(plan)
            out.codec_context.time_base = time_base
            j = 0
            for k, frame in enumerate(source.decode(stream)):
                if cancelled():
                    raise ConformCancelled("matching cancelled")
                if j == len(pairs):
                    break
                if pairs[j][1] != k:
                    continue
                picture = frame.reformat(width, height, "yuv420p", interpolation="BICUBIC")
                while j < len(pairs) and pairs[j][1] == k:
                    picture.pts = pts_of(pairs[j][0])
                    picture.time_base = time_base
                    sink.mux(out.encode(picture))
                    j += 1
                    if on_progress is not None:
                        on_progress(j, len(pairs))
            if j < len(pairs):
                raise ConformError(f"the result {str(result)!r} ended at frame {k}, before "
                                   f"the frame the source's f{pairs[j][0]} needs: download it "
                                   "again")
            sink.mux(out.encode(None))

    write_aside(output, write)
    return output


def _rate(media: SourceMedia) -> Fraction:
    """The stream's nominal rate (30000/1001 for 29.97); its frames keep their own times."""
    return Fraction(media.fps).limit_denominator(1001)
