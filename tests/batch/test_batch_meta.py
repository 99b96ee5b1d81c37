"""The manifest's ``meta`` field: a small JSON object carried unchanged into the report."""

from __future__ import annotations

import json

from kling_elements import batch
from kling_elements.batch.manifest import META_MAX_BYTES
from kling_elements.hosting import SandboxHost

from ..support.batch import job

META = {"scene": "Scene", "strip": "plate.001", "key": "3f1c", "nested": {"frames": [1, 2]},
        "unicode": "été"}


def test_meta_comes_back_unchanged_in_the_report_of_succeeded_and_failed_jobs(
        client, shots, plates, tmp_path):
    (plate, clip), _ = sorted(plates.items())
    lines = [job("kept", plate, clip, meta=META),
             job("refused", plate, clip, meta={"strip": "other"},
                 prompt="Remove the ball from <<<video_1>>> [[fail]]"),
             job("plain", plate, clip)]
    manifest = shots / "meta.jsonl"
    manifest.write_text("".join(json.dumps(x) + "\n" for x in lines))
    out = tmp_path / "out"
    report = batch.run(manifest, out, client=client, host=SandboxHost(client.http))
    on_disk = {j["name"]: j for j in json.loads((out / "report.json").read_text())["jobs"]}
    assert on_disk["kept"]["status"] == "succeed" and on_disk["kept"]["meta"] == META
    assert on_disk["refused"]["status"] == "failed"
    assert on_disk["refused"]["meta"] == {"strip": "other"}
    assert on_disk["plain"]["meta"] is None
    # A second run skips the finished job and still reports its meta.
    again = batch.run(manifest, out, client=client, host=SandboxHost(client.http))
    assert {j.name: j.meta for j in again.jobs}["kept"] == META
    assert [j.meta for j in report.jobs] == [j.meta for j in again.jobs]


def test_meta_that_is_not_a_small_object_is_a_problem_of_its_line(shots, plates):
    (plate, clip), _ = sorted(plates.items())
    lines = [job("listed", plate, clip, meta=["strip"]),
             job("huge", plate, clip, meta={"blob": "x" * META_MAX_BYTES}),
             job("fine", plate, clip, meta={"strip": "a"}),
             job("null", plate, clip, meta=None)]
    manifest = shots / "bad-meta.jsonl"
    manifest.write_text("".join(json.dumps(x) + "\n" for x in lines))
    parsed = batch.load(manifest)
    problems = {p.name: p.message for p in parsed.problems}
    assert set(problems) == {"listed", "huge"}
    assert "meta must be a JSON object" in problems["listed"]
    assert f"over the limit of {META_MAX_BYTES}" in problems["huge"]
    assert {j.name: j.meta for j in parsed.jobs} == {"fine": {"strip": "a"}, "null": None}


def test_meta_does_not_change_a_jobs_identity(shots, plates):
    """Editing meta (a strip renamed) never makes a finished job's state refuse to apply."""
    (plate, clip), _ = sorted(plates.items())

    from kling_elements.batch.manifest import from_records

    a = from_records([(1, job("s", plate, clip, meta={"strip": "a"}))], shots).jobs[0]
    b = from_records([(1, job("s", plate, clip, meta={"strip": "b"}))], shots).jobs[0]
    assert a.edit_job(shots).key() == b.edit_job(shots).key()
