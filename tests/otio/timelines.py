"""Marked timelines built with the OTIO API itself, as an editor's export would be."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import opentimelineio as otio

from kling_elements.sandbox.sample import SampleClip

RATE = 25
TC = 90000  # the media's first frame is at 01:00:00:00 (25 fps), as cameras stamp it
REMOVE = "Remove the ball from <<<video_1>>>"


def rt(frames: float) -> otio.opentime.RationalTime:
    return otio.opentime.RationalTime(frames, RATE)


def tr(start: float, duration: float) -> otio.opentime.TimeRange:
    return otio.opentime.TimeRange(rt(start), rt(duration))


def clip(name: str, media: Path, first: int, frames: int,
         url: str | None = None) -> otio.schema.Clip:
    """A clip using media frames ``[first, first + frames)`` (frames from the file's start)."""
    reference = otio.schema.ExternalReference(target_url=url or str(media),
                                              available_range=tr(TC, 100))
    return otio.schema.Clip(name=name, media_reference=reference,
                            source_range=tr(TC + first, frames))


def mark(item: otio.schema.Clip, frame: int, marker: str = "ball", **namespace: Any) -> None:
    """A marker on media frame ``frame`` carrying our namespace."""
    item.markers.append(otio.schema.Marker(name=marker, marked_range=tr(TC + frame, 1),
                                           metadata={"kling_elements": namespace}))


def gap(frames: int) -> otio.schema.Gap:
    return otio.schema.Gap(source_range=tr(0, frames))


def three_shots(project: Path, plates: dict[str, SampleClip]) -> otio.schema.Timeline:
    """V1: a gap, sh010 (marked), an unmarked clip, sh030 (two markers); V2: sh020 (marked,
    over sh010 in time). Media paths are relative to the timeline file, as Resolve writes
    them when asked to."""
    p0, p1 = plates["plate0.mp4"], plates["plate1.mp4"]
    timeline = otio.schema.Timeline(name="boom pass", global_start_time=rt(TC))
    v1 = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    v2 = otio.schema.Track(name="V2", kind=otio.schema.TrackKind.Video)
    timeline.tracks.extend([v1, v2])
    sh010 = clip("sh010.mov", project / "media" / "plate0.mp4", 10, 60,
                 url="media/plate0.mp4")
    mark(sh010, 20, points=[list(p0.center(20))], edit_mode="removal", prompt=REMOVE)
    plain = clip("broll", project / "media" / "plate1.mp4", 0, 40)
    plain.markers.append(otio.schema.Marker(name="note", marked_range=tr(TC + 5, 1),
                                            metadata={"Resolve_OTIO": {"Note": "nice"}}))
    sh030 = clip("sh030", project / "media" / "plate1.mp4", 30, 55)
    mark(sh030, 30, marker="start", points=[list(p1.center(30))], edit_mode="removal",
         prompt=REMOVE, mode="std")
    # The text form a tool that keeps only marker notes carries (Resolve's note field).
    note = "kling_elements " + json.dumps({"points": [list(p1.center(70))]})
    sh030.markers.append(otio.schema.Marker(name="late", marked_range=tr(TC + 70, 1),
                                            metadata={"Resolve_OTIO": {"Note": note}}))
    v1.extend([gap(12), sh010, plain, sh030])
    sh020 = clip("sh020", project / "media" / "plate1.mp4", 5, 52)
    mark(sh020, 5, points=[list(p1.center(5))], edit_mode="removal", prompt=REMOVE,
         name="sh020_boom")
    v2.extend([gap(30), sh020])
    return timeline


def write(timeline: otio.schema.Timeline, path: Path) -> Path:
    otio.adapters.write_to_file(timeline, str(path))
    return path
