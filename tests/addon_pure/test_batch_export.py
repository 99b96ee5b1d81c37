"""Export Batch's and Import Batch Results' file work, without Blender."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from blender_addon.pure.batch_results import ResultsError, read_results
from blender_addon.work.batch_export import ExportError, Shot, job_name, write_manifest
from blender_addon.work.task_calls import ImagePixels
from kling_elements.batch.manifest import NAME_PATTERN, load
from kling_elements.cli import main

pytest.importorskip("av")


@pytest.fixture(scope="module")
def plate(tmp_path_factory):
    from kling_elements.sandbox.sample import make_clip

    return make_clip(tmp_path_factory.mktemp("plates") / "plate.mp4", width=720, height=720,
                     fps=24, seconds=2.0, seed=1)


@pytest.fixture(scope="module")
def star(tmp_path_factory) -> str:
    from kling_elements.sandbox.sample import make_reference_image

    return str(make_reference_image(tmp_path_factory.mktemp("refs") / "star.png"))


def _shot(plate, strip: str = "plate", key: str = "k1", **extra) -> Shot:
    fields = dict(scene="Scene", strip=strip, key=key, source="file", video=str(plate.path),
                  selections=((3, (plate.center(3),)),), edit_mode="removal",
                  prompt="Remove the ball from <<<video_1>>>", duration="5")
    fields.update(extra)
    return Shot(**fields)


def _listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_job_names_are_valid_stable_per_strip_and_unique_ignoring_case():
    names = [job_name("plate.001", "key-a"), job_name("plate.001", "key-a"),
             job_name("  été / shot 10 ", "key-b"), job_name("___", "key-c"),
             job_name("x" * 300, "key-d")]
    assert names[0] == names[1]
    assert all(NAME_PATTERN.fullmatch(n) for n in names), names
    assert names[2].startswith("t_shot_10-") and names[3].startswith("strip-")
    taken: set[str] = set()
    first = job_name("A", "same", taken)
    second = job_name("a", "same", taken)  # another strip whose name differs only in case
    assert first.lower() != second.lower() and len(taken) == 2


def test_a_manifest_with_images_passes_the_batch_dry_run_unchanged(plate, star, tmp_path,
                                                                   capsys):
    pixels = ImagePixels(320, 320, np.full(320 * 320 * 4, 0.5, np.float32))
    shots = [_shot(plate),
             _shot(plate, strip="swap me", key="k2", edit_mode="swap", images=(star,),
                   prompt="swap the ball in <<<video_1>>> for the star from <<<image_1>>>",
                   negative_prompt="blur", quality="pro", watermark=True),
             _shot(plate, strip="add", key="k3", edit_mode="addition", images=(star, pixels),
                   prompt="Using <<<video_1>>>, add <<<image_1>>> and <<<image_2>>>")]
    folder = tmp_path / "farm" / "batch"
    result = write_manifest(shots, folder / "shots.jsonl")
    lines = [json.loads(x) for x in (folder / "shots.jsonl").read_text().splitlines()]
    assert [line["name"] for line in lines] == list(result.names)
    assert lines[0]["video"] == os.path.relpath(plate.path, folder).replace(os.sep, "/")
    assert lines[0]["select"] == [{"frame": 3, "points": [list(plate.center(3))]}]
    assert lines[0]["meta"] == {"scene": "Scene", "strip": "plate", "key": "k1",
                                "source": "file", "edit_mode": "removal"}
    assert lines[1]["images"] == [f"images/{result.names[1]}-image1.png"]
    assert (lines[1]["mode"], lines[1]["negative_prompt"], lines[1]["watermark"]) == (
        "pro", "blur", True)
    assert (folder / lines[1]["images"][0]).read_bytes() == Path(star).read_bytes()
    assert len(lines[2]["images"]) == 2
    assert _listing(folder) == sorted(["shots.jsonl", "images", *(
        f"images/{Path(p).name}" for line in lines for p in line.get("images", []))])

    manifest = load(folder / "shots.jsonl")
    assert manifest.problems == [] and len(manifest.jobs) == 3
    assert manifest.jobs[0].meta == lines[0]["meta"]
    capsys.readouterr()
    assert main(["batch", str(folder / "shots.jsonl"), "--out", str(tmp_path / "out"),
                 "--dry-run"]) == 0
    # Exporting again (a strip was edited) rewrites the same names in place.
    again = write_manifest(shots[:2], folder / "shots.jsonl")
    assert again.names == result.names[:2]


def test_bad_shots_write_nothing_and_every_problem_names_its_strip(plate, star, tmp_path):
    folder = tmp_path / "batch"
    folder.mkdir()
    (folder / "shots.jsonl").write_text("old\n")
    bad = [_shot(plate),
           _shot(plate, strip="gone", key="k2", video=str(tmp_path / "missing.mp4")),
           _shot(plate, strip="point", key="k3", selections=((0, ((0.5, 1.5),)),)),
           _shot(plate, strip="prompt", key="k4", edit_mode="swap", images=(star,),
                 prompt="swap <<<image_2>>> into <<<video_1>>>")]
    with pytest.raises(ExportError) as caught:
        write_manifest(bad, folder / "shots.jsonl")
    text = str(caught.value)
    assert "strip 'gone' (Scene)" in text and "missing.mp4" in text
    assert "strip 'point' (Scene)" in text and "y=1.5" in text
    assert "strip 'prompt' (Scene)" in text and "image_2" in text
    assert "strip 'plate'" not in text
    assert _listing(folder) == ["shots.jsonl"]  # no stage folder, no image left behind
    assert (folder / "shots.jsonl").read_text() == "old\n"

    with pytest.raises(ExportError, match=r"strip 'marks' .*no marks"):
        write_manifest([_shot(plate, strip="marks", problems=("no marks",))],
                       folder / "shots.jsonl")
    with pytest.raises(ExportError, match="no marked movie strip"):
        write_manifest([], folder / "shots.jsonl")
    with pytest.raises(ExportError, match=r"must end in \.jsonl"):
        write_manifest([_shot(plate)], folder / "shots.json")
    assert _listing(folder) == ["shots.jsonl"]


def _report(folder: Path, name: str, jobs: list[dict]) -> None:
    (folder / name).write_text(json.dumps({"shard": None, "jobs": jobs}))


def test_results_are_read_from_every_shard_report_and_found_where_this_machine_has_them(
        tmp_path):
    out = tmp_path / "results"
    (out / ".state" / "jobs").mkdir(parents=True)
    for name in ("a.mp4", "b.mp4", "b.source.mp4"):
        (out / name).write_bytes(b"x")
    (out / ".state" / "jobs" / "a.json").write_text(json.dumps({"video_id": "v-a"}))
    meta = {"key": "k"}
    _report(out, "report.1-of-2.json", [
        {"name": "a", "status": "succeed", "output": "/mnt/farm/results/a.mp4", "meta": meta,
         "task_id": "t1", "external_task_id": "e1",
         "cost": {"units": 1.5, "quota": None, "list_price": None}},
        {"name": "c", "status": "failed", "error": "content policy", "meta": meta},
        {"name": "handwritten", "status": "succeed", "output": "x.mp4", "meta": None}])
    _report(out, "report.2-of-2.json", [
        {"name": "b", "status": "succeed", "output": str(out / "b.mp4"), "meta": meta},
        {"name": "d", "status": "held", "error": "held: budget", "meta": meta}])
    found = {o.name: o for o in read_results(out)}
    assert set(found) == {"a", "b", "c", "d"}
    assert found["a"].output == str((out / "a.mp4").resolve()) and found["a"].matched == ""
    assert (found["a"].video_id, found["a"].task_id, found["a"].external_task_id) == (
        "v-a", "t1", "e1")
    assert "1.5" in found["a"].cost
    assert found["b"].matched == str((out / "b.source.mp4").resolve())
    assert (found["c"].status, found["c"].error, found["c"].output) == (
        "failed", "content policy", "")
    # A job run again under another shard count: the succeeded entry wins.
    _report(out, "report.json", [{"name": "c", "status": "pending", "meta": meta}])
    os.utime(out / "report.json", (2e9, 2e9))
    (out / "c.mp4").write_bytes(b"x")
    _report(out, "report.1-of-3.json", [{"name": "c", "status": "succeed", "meta": meta,
                                         "output": "/elsewhere/c.mp4"}])
    os.utime(out / "report.1-of-3.json", (1e9, 1e9))
    assert {o.name: o.status for o in read_results(out)}["c"] == "succeed"


def test_a_folder_without_a_report_is_refused_with_what_to_choose(tmp_path):
    with pytest.raises(ResultsError, match=r"report\.json"):
        read_results(tmp_path)
    with pytest.raises(ResultsError, match="not a folder"):
        read_results(tmp_path / "nope")


def test_without_pyav_a_conform_line_is_checked_but_for_its_plan(plate, tmp_path,
                                                                  monkeypatch):
    """Blender's extension has no PyAV: the add-on planned the span, the farm plans it again."""
    from blender_addon.work import batch_export

    shot = _shot(plate, source="conform", conform_range=(0, 48))
    bad = _shot(plate, strip="bad", key="k2", source="conform", conform_range=(0, 48),
                prompt="")
    monkeypatch.setitem(sys.modules, "av", None)  # `import av` fails, as in Blender
    assert not batch_export._can_plan_conform()
    with pytest.raises(ExportError, match="strip 'bad'"):
        write_manifest([shot, bad], tmp_path / "shots.jsonl")
    write_manifest([shot], tmp_path / "shots.jsonl")
    line = json.loads((tmp_path / "shots.jsonl").read_text())
    assert (line["conform"], line["range"], line["match_source"]) == (True, ["f0", "f48"], True)
    monkeypatch.undo()
    assert load(tmp_path / "shots.jsonl").problems == []  # the farm, with PyAV, agrees
