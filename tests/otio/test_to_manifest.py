"""``otio to-manifest``: marked clips of a timeline built with OTIO become manifest lines
that the batch accepts unchanged; malformed marks are named by clip and marker, and then
nothing is written."""

from __future__ import annotations

import json
from pathlib import Path

import opentimelineio as otio
import pytest

from kling_elements.cli import main
from kling_elements.otio.manifest import to_manifest
from kling_elements.otio.markers import TimelineError
from kling_elements.sandbox.sample import make_clip

from .timelines import REMOVE, TC, clip, gap, mark, three_shots, tr, write


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_marked_clips_become_conformed_lines_over_their_used_media(project, plates):
    timeline = write(three_shots(project, plates), project / "edit.otio")
    manifest = project / "farm" / "shots.jsonl"
    assert main(["otio", "to-manifest", str(timeline), "-o", str(manifest)]) == 0
    p0, p1 = plates["plate0.mp4"], plates["plate1.mp4"]
    # 25 fps media, conformed to 24 fps: media frame 20 of a clip from frame 10 is 0.4 s in,
    # the conformed clip's frame round(0.4 * 24) = 10; 1.6 s in is frame 38.
    assert _lines(manifest) == [
        {"name": "sh010", "video": "../media/plate0.mp4", "conform": True,
         "range": ["f10", "f70"], "match_source": True,
         "select": [{"frame": 10, "points": [list(p0.center(20))]}],
         "edit_mode": "removal", "prompt": REMOVE},
        {"name": "sh030", "video": "../media/plate1.mp4", "conform": True,
         "range": ["f30", "f85"], "match_source": True,
         "select": [{"frame": 0, "points": [list(p1.center(30))]},
                    {"frame": 38, "points": [list(p1.center(70))]}],
         "edit_mode": "removal", "prompt": REMOVE, "mode": "std"},
        {"name": "sh020_boom", "video": "../media/plate1.mp4", "conform": True,
         "range": ["f5", "f57"], "match_source": True,
         "select": [{"frame": 0, "points": [list(p1.center(5))]}],
         "edit_mode": "removal", "prompt": REMOVE},
    ]


def test_the_manifest_passes_the_batch_dry_run_unchanged(project, plates, capsys):
    timeline = write(three_shots(project, plates), project / "edit.otio")
    assert main(["otio", "to-manifest", str(timeline)]) == 0  # beside it: edit.jsonl
    capsys.readouterr()
    code = main(["batch", str(project / "edit.jsonl"), "--out", str(project / "out"),
                 "--dry-run", "--host-with", "sandbox"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert all(name in out.out + out.err for name in ("sh010", "sh030", "sh020_boom"))


def _timeline_with(project: Path, plates, **namespace) -> Path:
    timeline = otio.schema.Timeline(name="t")
    track = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    timeline.tracks.append(track)
    good = clip("sh010", project / "media" / "plate0.mp4", 10, 60)
    mark(good, 20, points=[[0.5, 0.5]], edit_mode="removal", prompt=REMOVE)
    bad = clip("sh020", project / "media" / "plate1.mp4", 0, 60)
    frame = namespace.pop("frame", 10)
    mark(bad, frame, marker="boom", **namespace)
    track.extend([good, gap(5), bad])
    return write(timeline, project / "bad.otio")


@pytest.mark.parametrize(("namespace", "expected"), [
    ({"points": [[0.5]], "edit_mode": "removal", "prompt": REMOVE},
     "points [[0.5]] must be a list of [x, y] pairs"),
    ({"points": [[0.5, 0.5]], "edit_mode": "removal", "prompt": REMOVE, "colour": "red"},
     "unknown field(s) 'colour'"),
    ({"points": [[0.5, 1.5]], "edit_mode": "removal", "prompt": REMOVE},
     "y=1.5 is outside [0, 1]"),
    ({"points": [[0.5, 0.5]], "edit_mode": "erase", "prompt": REMOVE}, "erase"),
    ({"points": [[0.5, 0.5]], "edit_mode": "swap", "prompt": REMOVE}, "swap takes exactly 1"),
    ({"points": [[0.5, 0.5]], "edit_mode": "removal", "prompt": REMOVE, "frame": 75},
     "outside the part of the media the clip uses"),
], ids=["pair", "unknown", "outside", "edit-mode", "images", "marker-off-clip"])
def test_bad_marks_are_named_by_clip_and_marker_and_nothing_is_written(
        project, plates, capsys, namespace, expected):
    timeline = _timeline_with(project, plates, **namespace)
    manifest = project / "shots.jsonl"
    assert main(["otio", "to-manifest", str(timeline), "-o", str(manifest)]) == 1
    err = capsys.readouterr().err
    assert "track V1, clip 2 'sh020'" in err and expected in err, err
    assert "sh010" not in err  # the good clip is not blamed
    assert not manifest.exists() and not list(project.glob("*.tmp"))


def test_conflicting_edit_fields_on_two_markers_of_a_clip_are_refused(project, plates):
    timeline = otio.schema.Timeline(name="t")
    track = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    timeline.tracks.append(track)
    item = clip("sh010", project / "media" / "plate0.mp4", 0, 60)
    mark(item, 5, marker="a", points=[[0.5, 0.5]], edit_mode="removal", prompt=REMOVE)
    mark(item, 9, marker="b", points=[[0.4, 0.5]], prompt="Remove the car from <<<video_1>>>")
    track.append(item)
    path = write(timeline, project / "t.otio")
    with pytest.raises(TimelineError, match=r"clip 1 'sh010', marker 'b': prompt .* differs"):
        to_manifest(path, project / "m.jsonl")
    assert not (project / "m.jsonl").exists()


def test_media_given_as_a_url_is_refused_with_what_to_do(project, plates):
    timeline = otio.schema.Timeline(name="t")
    track = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    timeline.tracks.append(track)
    item = clip("sh010", project / "x.mp4", 0, 60, url="https://cdn.example.com/sh010.mp4")
    mark(item, 5, points=[[0.5, 0.5]], edit_mode="removal", prompt=REMOVE)
    track.append(item)
    with pytest.raises(TimelineError, match="is a URL, but the conform needs the file"):
        to_manifest(write(timeline, project / "t.otio"), project / "m.jsonl")


def test_a_timeline_without_our_marks_says_how_to_mark(project, plates):
    timeline = otio.schema.Timeline(name="t")
    track = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    timeline.tracks.append(track)
    track.append(clip("sh010", project / "media" / "plate0.mp4", 0, 60))
    with pytest.raises(TimelineError, match="carries a marker with kling_elements"):
        to_manifest(write(timeline, project / "t.otio"), project / "m.jsonl")


def test_an_existing_manifest_is_not_replaced_without_force(project, plates):
    timeline = write(three_shots(project, plates), project / "edit.otio")
    (project / "edit.jsonl").write_text("mine\n")
    with pytest.raises(TimelineError, match="already exists"):
        to_manifest(timeline, project / "edit.jsonl")
    assert (project / "edit.jsonl").read_text() == "mine\n"
    assert len(to_manifest(timeline, project / "edit.jsonl", force=True)) == 3


def test_a_marker_past_what_kling_takes_of_a_long_clip_is_refused(project):
    """A 6 s clip is conformed to its first 5 s: a mark at 5.6 s would never be seen."""
    make_clip(project / "media" / "long.mp4", width=720, height=720, fps=25, seconds=6.0)
    timeline = otio.schema.Timeline(name="t")
    track = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    timeline.tracks.append(track)
    long = clip("long", project / "media" / "long.mp4", 0, 150)
    long.media_reference.available_range = tr(TC, 150)
    mark(long, 140, points=[[0.5, 0.5]], edit_mode="removal", prompt=REMOVE)
    track.append(long)
    with pytest.raises(TimelineError) as caught:
        to_manifest(write(timeline, project / "t.otio"), project / "m.jsonl")
    message = str(caught.value)
    assert "track V1, clip 1 'long': a marker 5.60 s into the clip is past the 5 s the " \
           "conform keeps" in message, message


def test_frames_count_the_media_files_frames_whatever_rate_the_timeline_uses(project, plates):
    """An exporter may give a 25 fps clip's times at another rate (here 50): the same media
    frames, so the same manifest line."""
    lines = []
    for rate in (25, 50):
        scale = rate // 25
        timeline = otio.schema.Timeline(name="t")
        track = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
        timeline.tracks.append(track)
        at = lambda frames, r=rate: otio.opentime.RationalTime(frames, r)  # noqa: E731
        item = otio.schema.Clip(
            name="sh010", source_range=otio.opentime.TimeRange(at(scale * (TC + 10)),
                                                               at(scale * 60)),
            media_reference=otio.schema.ExternalReference(
                target_url=str(project / "media" / "plate0.mp4"),
                available_range=otio.opentime.TimeRange(at(scale * TC), at(scale * 100))))
        item.markers.append(otio.schema.Marker(
            name="m", marked_range=otio.opentime.TimeRange(at(scale * (TC + 20)), at(1)),
            metadata={"kling_elements": {"points": [[0.5, 0.5]], "edit_mode": "removal",
                                         "prompt": REMOVE}}))
        track.append(item)
        manifest = project / f"m{rate}.jsonl"
        to_manifest(write(timeline, project / f"t{rate}.otio"), manifest)
        lines.append(_lines(manifest))
    assert lines[0] == lines[1]
    assert lines[0][0]["range"] == ["f10", "f70"] and lines[0][0]["select"][0]["frame"] == 10
