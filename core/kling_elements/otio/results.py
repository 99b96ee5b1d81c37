"""``otio add-results``: a batch's results laid over their source clips, on new tracks.

The timeline's marked clips are found and named exactly as ``to-manifest`` named them
(``manifest.job_names``), so each job of the batch's reports (``report.json``, or the
shards' ``report.I-of-N.json``) finds its clip again. A result starts where its clip starts
on the timeline (the conform's range begins at the clip's first used frame) and is cut to
the clip's length. ``<name>.source.mp4`` (``match_source``: the plate's frame rate, size
and frame times) is used where the batch made one, its range in the clip's own rate;
otherwise ``<name>.mp4`` at Kling's rate. Results that overlap in time go on separate
tracks (``Kling results``, ``Kling results 2``...), above every existing track.

The source timeline is never modified: the output is a new file, written complete or not
at all, by OTIO's adapter for its extension (``.otio``, ``.edl``, ``.xml``...).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .manifest import job_names, read_timeline
from .markers import NAMESPACE, MarkedClip, TimelineError, marked_clips

__all__ = ["Placed", "add_results", "read_reports"]

TRACK_NAME = "Kling results"
RESOLVE = "Resolve_OTIO"


@dataclass(frozen=True)
class Placed:
    """What ``add_results`` did with one marked clip (``track`` ``None``: not placed)."""

    name: str
    clip: str
    status: str
    result: str | None
    track: str | None
    error: str | None = None


def read_reports(results_dir: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """Each job's report line by name, over ``report.json`` and every shard's report; a
    job that succeeded in any report wins (a shard may have been rerun)."""
    folder = Path(results_dir)
    jobs: dict[str, dict[str, Any]] = {}
    paths = sorted(folder.glob("report*.json"))
    if not paths:
        raise TimelineError([f"no report.json in {str(folder)!r}: give the folder the batch "
                             "wrote (its --out)"])
    for path in paths:
        try:
            report = json.loads(path.read_text(encoding="utf-8"))
            lines = report["jobs"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise TimelineError([f"report {str(path)!r} cannot be read ({exc}): run the "
                                 "batch again to rewrite it"]) from None
        for line in lines:
            name = line.get("name")
            if name and (name not in jobs or line.get("status") == "succeed"):
                jobs[name] = line
    return jobs


def _result_file(folder: Path, name: str) -> tuple[Path | None, bool]:
    """``(file, matched)``: the source-matched result if there, else Kling's own."""
    for path, matched in ((folder / f"{name}.source.mp4", True), (folder / f"{name}.mp4", False)):
        if path.is_file():
            return path, matched
    return None, False


def _probe_duration(path: Path) -> tuple[float, float] | None:
    """``(seconds, fps)`` of a result, or ``None`` without PyAV."""
    try:
        from ..media import probe
        info = probe(path)
    except ImportError:
        return None
    return info.duration_s, info.fps


def _result_clip(otio: Any, marked: MarkedClip, name: str, path: Path, matched: bool,
                 job: dict[str, Any]) -> Any:
    """A clip of the result file, as long as its source clip (or the result, if shorter)."""
    used = marked.clip.trimmed_range()
    probed = _probe_duration(path)
    rate = used.start_time.rate if matched or probed is None else probed[1]
    length = used.duration.rescaled_to(rate)
    if probed is not None:
        frames = otio.opentime.RationalTime(round(probed[0] * rate), rate)
        available = otio.opentime.TimeRange(otio.opentime.RationalTime(0, rate), frames)
        length = min(length, frames)
    else:
        available = None
    # A plain path with forward slashes (E:/show/...), no file:// URL: what Resolve's own
    # export writes and its import finds.
    reference = otio.schema.ExternalReference(target_url=path.resolve().as_posix(),
                                              available_range=available)
    reference.name = path.name
    return otio.schema.Clip(
        name=f"{name} (Kling)", media_reference=reference,
        source_range=otio.opentime.TimeRange(otio.opentime.RationalTime(0, rate),
                                             length.round()),
        metadata={NAMESPACE: {"job": name, "source_clip": marked.clip.name,
                              "task_id": job.get("task_id"), "source_matched": matched}})


def _place(otio: Any, tracks: list[tuple[Any, Any]], timeline: Any, start: Any,
           clip: Any) -> Any:
    """Append ``clip`` at ``start`` on the first results track free there; the track.

    ``tracks`` holds each results track with the time its last clip ends."""
    index = next((i for i, (_, end) in enumerate(tracks) if end <= start), None)
    if index is None:
        name = TRACK_NAME if not tracks else f"{TRACK_NAME} {len(tracks) + 1}"
        track = otio.schema.Track(name=name, kind=otio.schema.TrackKind.Video)
        if RESOLVE in timeline.metadata:  # a Resolve export: tracks as Resolve writes them
            track.metadata[RESOLVE] = {"Locked": False}
        tracks.append((track, otio.opentime.RationalTime(0, start.rate)))
        timeline.tracks.append(track)
        index = len(tracks) - 1
    track, end = tracks[index]
    if start > end:
        track.append(otio.schema.Gap(duration=(start - end).rescaled_to(start.rate)))
    track.append(clip)
    tracks[index] = (track, start + clip.duration().rescaled_to(start.rate))
    return track


def add_results(timeline_path: str | os.PathLike, results_dir: str | os.PathLike,
                out_path: str | os.PathLike, *, force: bool = False) -> list[Placed]:
    """Write ``out_path``: the timeline with each marked clip's result on a track above it.

    Returns what happened to every marked clip (placed, or why not). Raises
    :class:`TimelineError` before writing anything when the timeline's marks are malformed,
    no report is found, or ``out_path`` exists (unless ``force``).
    """
    from . import require_otio

    otio = require_otio()
    out = Path(out_path)
    if out.exists() and not force:
        raise TimelineError([f"{str(out)!r} already exists: choose another -o, or pass "
                             "--force to replace it"])
    if out.resolve() == Path(timeline_path).resolve():
        raise TimelineError(["-o names the source timeline: write the results to a new file"])
    timeline = read_timeline(timeline_path)
    clips = marked_clips(timeline)
    reports = read_reports(results_dir)
    folder = Path(results_dir)
    tracks: list[tuple[Any, Any]] = []
    placed: list[Placed] = []
    order = sorted(zip(clips, job_names(clips), strict=True), key=lambda item: (
        item[0].clip.transformed_time_range(item[0].clip.trimmed_range(),
                                            timeline.tracks).start_time.to_seconds(),
        item[0].track))
    for marked, name in order:
        job = reports.get(name, {})
        status = job.get("status", "missing")
        path, matched = _result_file(folder, name)
        if status != "succeed" or path is None:
            error = job.get("error") or ("no result file" if status == "succeed" else
                                         "not in any report: run the batch on this manifest")
            placed.append(Placed(name, marked.clip.name, status, None, None, error))
            continue
        start = marked.clip.transformed_time_range(marked.clip.trimmed_range(),
                                                   timeline.tracks).start_time
        clip = _result_clip(otio, marked, name, path, matched, job)
        track = _place(otio, tracks, timeline, start, clip)
        placed.append(Placed(name, marked.clip.name, status, str(path), track.name))
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=out.stem, suffix=out.suffix, dir=out.parent)
    os.close(fd)
    try:
        otio.adapters.write_to_file(timeline, tmp)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return placed
