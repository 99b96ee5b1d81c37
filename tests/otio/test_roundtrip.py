"""Timeline -> manifest -> batch (sandbox) -> results back on the timeline: each result lies
over its source clip, and OTIO's own adapters (otio_json, FCP XML, CMX 3600 EDL) read what
we wrote."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import av
import opentimelineio as otio
import pytest

import kling_elements as ke
from kling_elements import batch
from kling_elements.cli import main
from kling_elements.hosting import SandboxHost
from kling_elements.otio.manifest import to_manifest
from kling_elements.otio.markers import TimelineError
from kling_elements.otio.results import add_results

from .timelines import RATE, three_shots, write

pytestmark = pytest.mark.slow  # a whole batch against the sandbox

SHOTS = {"sh010": "sh010.mov", "sh030": "sh030", "sh020_boom": "sh020"}


def _frames(path: str) -> int:
    with av.open(path) as container:
        return sum(1 for _ in container.decode(video=0))


def _clips_by_name(timeline) -> dict:
    return {c.name: c for c in timeline.find_clips()}


def _record_range(item, timeline) -> otio.opentime.TimeRange:
    return item.transformed_time_range(item.trimmed_range(), timeline.tracks)


@pytest.fixture(scope="module")
def batch_done(tmp_path_factory, plates, sandbox) -> tuple[Path, Path]:
    """The three-shot timeline run through the batch on the sandbox once for the module;
    (timeline, results). Tests write their outputs elsewhere and change neither."""
    project = tmp_path_factory.mktemp("otio-project")
    (project / "media").mkdir()
    for name, clip in plates.items():
        (project / "media" / name).write_bytes(clip.path.read_bytes())
    with ke.Client(sandbox.access_key, sandbox.secret_key, base_url=sandbox.base_url) as c:
        return _run_batch(project, plates, c)


def _run_batch(project: Path, plates, client: ke.Client) -> tuple[Path, Path]:
    timeline = write(three_shots(project, plates), project / "edit.otio")
    manifest = project / "edit.jsonl"
    to_manifest(timeline, manifest)
    tasks_before = Counter(t.external_task_id for t in client.list_tasks(page_size=500))
    report = batch.run(manifest, project / "results", client=client,
                       host=SandboxHost(client.http))
    assert report.ok, report.summary()
    tasks = Counter(t.external_task_id for t in client.list_tasks(page_size=500))
    new = tasks - tasks_before
    assert sorted(new.values()) == [1, 1, 1]  # every shot paid once
    return timeline, project / "results"


def test_results_land_over_their_source_clips_in_the_sources_rate(batch_done, capsys,
                                                                  tmp_path):
    timeline_path, results = batch_done
    out = tmp_path / "edit.kling.otio"
    assert main(["otio", "add-results", str(timeline_path), str(results), "-o",
                 str(out)]) == 0
    assert "3 of 3 result(s) added" in capsys.readouterr().err
    source = otio.adapters.read_from_file(str(timeline_path))
    result = otio.adapters.read_from_file(str(out), adapter_name="otio_json")
    tracks = [t.name for t in result.video_tracks()]
    # sh020 (V2) overlaps sh010 (V1) in time: its result goes on a second results track.
    assert tracks == ["V1", "V2", "Kling results", "Kling results 2"]
    originals = _clips_by_name(source)
    placed = {c.metadata["kling_elements"]["job"]: c for t in result.video_tracks()[2:]
              for c in t.find_clips()}
    assert sorted(placed) == sorted(SHOTS)
    for job, clip_name in SHOTS.items():
        original, laid = originals[clip_name], placed[job]
        assert _record_range(laid, result) == _record_range(original, source), job
        assert laid.source_range.start_time.rate == RATE  # the source's rate, not Kling's
        path = laid.media_reference.target_url
        assert path == (results / f"{job}.source.mp4").resolve().as_posix()
        assert _frames(path) == original.source_range.duration.value  # 1:1 with the clip
        assert laid.metadata["kling_elements"]["source_clip"] == clip_name
    assert "Resolve_OTIO" not in result.video_tracks()[2].metadata  # not a Resolve export
    # The source tracks are untouched.
    assert [c.name for c in result.video_tracks()[0].find_clips()] == [
        c.name for c in source.video_tracks()[0].find_clips()]


def test_fcp_xml_and_edl_adapters_read_the_results(batch_done, tmp_path):
    timeline_path, results = batch_done
    xml = tmp_path / "edit.kling.xml"
    add_results(timeline_path, results, xml)
    source = otio.adapters.read_from_file(str(timeline_path))
    read = otio.adapters.read_from_file(str(xml), adapter_name="fcp_xml")
    originals = _clips_by_name(source)
    by_url = {}
    for track in read.video_tracks():
        for item in track.find_clips():
            url = getattr(item.media_reference, "target_url", "") or ""
            by_url[Path(url.replace("file://", "")).name] = (item, track)
    for job, clip_name in SHOTS.items():
        item, _ = by_url[f"{job}.source.mp4"]
        start = item.range_in_parent().start_time
        expected = originals[clip_name].range_in_parent().start_time
        assert start.to_frames(RATE) == expected.to_frames(RATE), job
        assert item.duration().to_frames(RATE) == originals[clip_name].duration().to_frames(
            RATE)

    # A CMX 3600 EDL has one video track: the results track, as an editor would export it.
    with_results = otio.adapters.read_from_file(str(xml), adapter_name="fcp_xml")
    only = otio.schema.Timeline(name="results")
    only.tracks.append(with_results.video_tracks()[2].deepcopy())
    edl = tmp_path / "results.edl"
    otio.adapters.write_to_file(only, str(edl), adapter_name="cmx_3600", rate=RATE)
    events = otio.adapters.read_from_file(str(edl), adapter_name="cmx_3600", rate=RATE)
    clips = list(events.find_clips())
    assert len(clips) == 2  # sh010 and sh030 (sh020 is on the second results track)
    starts = [c.range_in_parent().start_time.to_frames(RATE) for c in clips]
    assert starts[1] - starts[0] == 112 - 12  # as sh030 follows sh010 on V1
    assert [c.duration().to_frames(RATE) for c in clips] == [60, 55]
    assert "sh010.source.mp4" in edl.read_text()


def test_a_resolve_export_gets_results_tracks_shaped_as_resolve_writes_them(batch_done,
                                                                            tmp_path):
    timeline_path, results = batch_done
    timeline = otio.adapters.read_from_file(str(timeline_path))
    timeline.metadata["Resolve_OTIO"] = {"Resolve OTIO Meta Version": "1.0"}
    exported = write(timeline, timeline_path.parent / f"resolve-{tmp_path.name}.otio")
    out = tmp_path / "resolve.kling.otio"
    add_results(exported, results, out)
    tracks = otio.adapters.read_from_file(str(out)).video_tracks()
    assert [dict(t.metadata.get("Resolve_OTIO", {})) for t in tracks[2:]] == [
        {"Locked": False}, {"Locked": False}]


def test_failed_and_missing_jobs_are_reported_not_placed(batch_done, capsys, tmp_path):
    timeline_path, done = batch_done
    results = tmp_path / "results"
    shutil.copytree(done, results)
    (results / "sh030.source.mp4").unlink()
    (results / "sh030.mp4").unlink()
    out = tmp_path / "partial.otio"
    assert main(["otio", "add-results", str(timeline_path), str(results), "-o",
                 str(out)]) == 1
    err = capsys.readouterr().err
    assert "sh030 (sh030): not placed" in err and "2 of 3 result(s) added" in err
    jobs = [c.metadata["kling_elements"]["job"] for t in
            otio.adapters.read_from_file(str(out)).video_tracks()[2:] for c in t.find_clips()]
    assert sorted(jobs) == ["sh010", "sh020_boom"]


def test_add_results_refuses_to_overwrite_without_force(batch_done, tmp_path):
    timeline_path, results = batch_done
    out = tmp_path / "taken.otio"
    out.write_text("mine")
    with pytest.raises(TimelineError, match="already exists"):
        add_results(timeline_path, results, out)
    assert out.read_text() == "mine"
    with pytest.raises(TimelineError, match="names the source timeline"):
        add_results(timeline_path, results, timeline_path, force=True)
