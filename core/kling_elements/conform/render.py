"""Render a conform plan with PyAV: decode the source, write the H.264 MP4 Kling accepts.

Guarantees of :func:`render`:

* Output frame ``k`` is the picture of source frame ``plan.source_frame(k)``, found by its
  presentation time (not by counting decoded frames after a seek), scaled to the plan's
  size (swscale: area when shrinking, bicubic when enlarging), ``yuv420p``, constant
  ``plan.fps``, no audio.
* ``plan.output`` appears only complete: frames are written to a temporary file in the same
  folder, flushed to disk, then renamed over it; the record (``<output>.json``) follows.
  On any error or on cancel the temporary file is deleted and an older file at
  ``plan.output`` is left as it was.
* ``on_progress(done, total)`` is called after each written frame, on the calling thread.
  ``cancel`` (a ``threading.Event`` or a callable returning true) is checked between
  frames; a cancelled render raises :class:`ConformCancelled`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

from .plan import ConformCancelled, ConformError, ConformPlan, write_record
from .source import SourceMedia, import_av, probe_source

__all__ = ["CancelCheck", "ProgressCallback", "cancel_check", "encoder_options", "render",
           "write_aside"]

ProgressCallback = Callable[[int, int], None]
CancelCheck = Any  # threading.Event | Callable[[], bool] | None

_CRF = {"LOSSLESS": 0, "PERC_LOSSLESS": 17, "HIGH": 20, "MEDIUM": 23, "LOW": 26,
        "VERYLOW": 29, "LOWEST": 32}
_X264_PRESET = {"REALTIME": "superfast", "GOOD": "medium", "BEST": "slower"}


def encoder_options(plan: ConformPlan) -> dict[str, str]:
    """libx264 options for the plan's quality and speed (Blender's names, x264's values)."""
    return {"crf": str(_CRF.get(plan.quality, 20)),
            "preset": _X264_PRESET.get(plan.preset, "superfast")}


def cancel_check(cancel: CancelCheck) -> Callable[[], bool]:
    if cancel is None:
        return lambda: False
    if hasattr(cancel, "is_set"):
        return cancel.is_set
    return cancel


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not every platform can open a folder
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def render(plan: ConformPlan, *, media: SourceMedia | None = None,
           on_progress: ProgressCallback | None = None,
           cancel: CancelCheck = None) -> Path:
    """Write ``plan.output`` (and its record) from ``plan.source``; return the output path.

    ``media`` is the source's probe if the caller already has it. Raises ConformError when
    the source no longer matches the plan or cannot be decoded, or when writing fails (disk
    full, no permission): the message names the fix. See the module for the guarantees.
    """
    av = import_av()
    if media is None:
        media = probe_source(plan.source)
    if plan.last_frame >= media.frame_count:
        raise ConformError(
            f"the plan needs source frame f{plan.last_frame} but {plan.source!r} now has "
            f"{media.frame_count} frames: the file changed since the plan was made; conform "
            "again")
    output = Path(plan.output)
    def encode(tmp: str) -> None:
        try:
            _encode(av, plan, media, tmp, on_progress, cancel_check(cancel), seek=True)
        except _SeekMissed:  # a bad index or open-GOP leading frames: read from the start
            _encode(av, plan, media, tmp, on_progress, cancel_check(cancel), seek=False)

    write_aside(output, encode)
    try:
        write_record(plan)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(output)  # a clip without its record could be mistaken for another plan
        raise _write_error(exc, output) from None
    return output


def write_aside(output: Path, write: Callable[[str], None]) -> None:
    """Run ``write(tmp)`` on a temporary name beside ``output``, then flush it to disk and
    rename it over ``output``; on any error the temporary file is deleted (``output``
    untouched) and a write failure becomes a ConformError naming the fix."""
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".part.mp4",
                                   dir=output.parent)
        os.close(fd)
    except OSError as exc:
        raise _write_error(exc, output) from None
    try:
        write(tmp)
        _fsync(tmp)
        os.replace(tmp, output)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise _write_error(exc, output) from None
        raise
    _fsync_dir(output.parent)


def _write_error(exc: OSError, output: Path) -> ConformError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        fix = f"free some space in {str(output.parent)!r} or choose another output folder"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        fix = f"choose an output folder you can write to (not {str(output.parent)!r})"
    else:
        fix = "check the output folder and try again"
    reason = exc.strerror or exc.__class__.__name__
    return ConformError(f"writing {str(output)!r} failed ({reason}); nothing was kept: {fix}")


class _SeekMissed(Exception):
    """After a seek the decoder did not give the first wanted frame (nothing written yet)."""


def _encode(av: Any, plan: ConformPlan, media: SourceMedia, tmp: str,
            on_progress: ProgressCallback | None, cancelled: Callable[[], bool], *,
            seek: bool) -> None:
    wanted = plan.source_frames()
    total = len(wanted)
    interpolation = "AREA" if plan.width * plan.height < media.width * media.height \
        else "BICUBIC"
    rate = Fraction(plan.fps)
    try:
        source = av.open(media.path)
    except (av.FFmpegError, OSError) as exc:
        raise ConformError(f"source {media.path!r} cannot be opened any more "
                           f"({exc.__class__.__name__}): check the file") from None
    with source, av.open(tmp, mode="w", format="mp4") as sink:
        stream = source.streams.video[0]
        stream.thread_type = "AUTO"
        out = sink.add_stream("libx264", rate=rate)
        out.width, out.height, out.pix_fmt = plan.width, plan.height, "yuv420p"
        out.options = encoder_options(plan)
        out.codec_context.time_base = 1 / rate
        counted: int | None = -1
        seeked = seek and media.pts is not None and wanted[0] > 0
        if seeked:
            source.seek(media.pts[wanted[0]], stream=stream, backward=True, any_frame=False)
            counted = None  # after a seek only timestamps say which frame is which
        k = 0
        try:
            for frame in source.decode(stream):
                if cancelled():
                    raise ConformCancelled("conform cancelled")
                index = media.frame_index(frame.pts)
                if index is None:
                    if counted is None:
                        raise _SeekMissed
                    counted += 1
                    index = counted
                if index > wanted[k] and seeked and k == 0:
                    raise _SeekMissed
                if index > wanted[k]:
                    raise ConformError(
                        f"source frame f{wanted[k]} of {media.path!r} could not be decoded "
                        f"(the decoder went on at f{index}): the file is damaged or its index "
                        "is wrong; export the clip again")
                if index < wanted[k]:
                    continue
                picture = frame.reformat(plan.width, plan.height, "yuv420p",
                                         interpolation=interpolation)
                while k < total and wanted[k] == index:
                    picture.pts = k
                    picture.time_base = out.codec_context.time_base
                    sink.mux(out.encode(picture))
                    k += 1
                    if on_progress is not None:
                        on_progress(k, total)
                if k == total:
                    break
        except av.FFmpegError as exc:
            if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise
            raise ConformError(f"decoding or encoding failed at output frame {k} of {total} "
                               f"({exc}): the source may be damaged; export it again") from None
        if k < total:
            raise ConformError(
                f"source {media.path!r} ended before frame f{wanted[k]} (output frame {k} of "
                f"{total}): the file changed since the plan was made; conform again")
        sink.mux(out.encode(None))
