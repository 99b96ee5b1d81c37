"""Batches against the sandbox: faults, farm shards, invalid manifests, chained edits."""

from __future__ import annotations

import json
import threading
from collections import Counter

import pytest

import kling_elements as ke
from kling_elements import batch
from kling_elements.cli import main
from kling_elements.hosting import CachingHost, SandboxHost
from kling_elements.sandbox.sample import make_reference_image

from ..support.batch import (
    FRAMES,
    REMOVE,
    assert_complete,
    job,
    saved_external_ids,
    tasks_by_external_id,
    uploads,
    write_manifest,
)
from ..support.media import frame_count
from ..support.sandbox import add_faults, created_total, pending_faults

TRIPWIRES = [{"route": route, "times": 1, "error": {"http": 500, "code": 5000}}
             for route in ("init-selection", "add-selection", "create", "get", "list",
                           "uploads", "files")]


@pytest.mark.slow
def test_thirty_jobs_on_three_farm_shards_with_faults_finish_once_each(
        sandbox, admin, shots, plates, tmp_path):
    """Three shards run at once like three farm machines sharing one account (3 slots), so
    their 9 would-be tasks meet 1303 and back off, on top of injected faults."""
    manifest, names = write_manifest(shots, plates, 30)
    out = tmp_path / "out"
    tasks_before, uploads_before = created_total(admin), uploads(sandbox.data_dir)
    add_faults(
        admin,
        {"route": "create", "times": 2, "error": {"http": 429, "code": 1303}},
        {"route": "create", "times": 1, "drop": "after_commit"},  # answer lost, task exists
        {"route": "create", "times": 1, "drop": "before_commit"},
        {"route": "get", "times": 3, "error": {"http": 500, "code": 5000}},
        {"route": "init-selection", "times": 1, "error": {"http": 503, "code": 5001}},
        {"route": "add-selection", "times": 1, "drop": "before_commit"},
        {"route": "uploads", "times": 1, "error": {"http": 500, "code": 5000}},
    )
    reports: dict[int, batch.Report] = {}
    hosts: dict[int, CachingHost] = {}
    limits: list[dict] = []

    def shard(index: int) -> None:
        with ke.Client(sandbox.access_key, sandbox.secret_key,
                       base_url=sandbox.base_url) as client:
            # What batch.run would make itself, kept to count this machine's uploads.
            hosts[index] = CachingHost(SandboxHost(client.http),
                                       out / ".state" / "uploads.json",
                                       provider=f"SandboxHost {client.base_url}")
            reports[index] = batch.run(
                manifest, out, client=client, host=hosts[index], concurrency=3,
                shard=(index, 3), poll_interval=0.1,
                on_event=lambda name, kind, info: limits.append(info) if kind == "limit" else None,
            )

    threads = [threading.Thread(target=shard, args=(i,)) for i in (1, 2, 3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert sorted(reports) == [1, 2, 3]
    assert pending_faults(admin) == []
    ran = Counter(j.name for r in reports.values() for j in r.jobs)
    assert sorted(ran) == names and set(ran.values()) == {1}
    failed = [(j.name, j.error) for r in reports.values() for j in r.jobs if j.status != "succeed"]
    assert failed == []
    for index, report in reports.items():
        on_disk = json.loads((out / f"report.{index}-of-3.json").read_text())
        assert [j["name"] for j in on_disk["jobs"]] == [j.name for j in report.jobs]
        assert all(j["task_id"] and j["output"] for j in on_disk["jobs"])
    assert_complete(out, names)
    saved = saved_external_ids(out)
    assert sorted(saved) == names
    on_kling = tasks_by_external_id(ke.Client(sandbox.access_key, sandbox.secret_key,
                                              base_url=sandbox.base_url))
    assert all(on_kling[ext] == 1 for ext in saved.values())
    assert created_total(admin) - tasks_before == 30
    # Each machine publishes each plate at most once, also when an upload failed (the
    # injected fault: refused before the body is stored, then published again); every file
    # the sandbox stored is an upload one of the machines counted.
    assert all(host.uploads <= len(plates) for host in hosts.values())
    assert uploads(sandbox.data_dir) - uploads_before == sum(h.uploads for h in hosts.values())
    assert any(info["reason"] == "1303" for info in limits)
    assert sum(j.retries for r in reports.values() for j in r.jobs) > 0


def test_an_invalid_manifest_sends_nothing_and_lists_every_bad_line(
        sandbox, admin, client, shots, plates, tmp_path, monkeypatch, capsys):
    (plate, clip), _ = sorted(plates.items())
    lines = [job("sh010", plate, clip),
             {**job("sh020", plate, clip), "prompt": "Delete the ball from <<<video_2>>>"},
             job("sh030", plate, clip),
             {**job("sh040", plate, clip), "select": [{"frame": 0, "points": [[0.5, 2.0]]}]},
             {**job("sh050", "nope.mp4", clip), "mode": "fast"}]
    manifest = shots / "bad.jsonl"
    manifest.write_text("".join(json.dumps(x) + "\n" for x in lines))
    add_faults(admin, *TRIPWIRES)  # any request reaching the sandbox consumes one
    out = tmp_path / "out"
    with pytest.raises(batch.ManifestError) as caught:
        batch.run(manifest, out, client=client, host=SandboxHost(client.http))
    assert sorted({p.line for p in caught.value.problems}) == [2, 4, 5]
    assert len(caught.value.problems) == 4  # line 5: the clip and the mode
    report = json.loads((out / "report.json").read_text())
    assert [(j["name"], j["status"]) for j in report["jobs"]] == [
        ("sh010", "pending"), ("sh020", "invalid"), ("sh030", "pending"), ("sh040", "invalid"),
        ("sh050", "invalid")]

    monkeypatch.setenv("KLINGAI_BASE_URL", sandbox.base_url)
    monkeypatch.setenv("KLINGAI_ACCESS_KEY", sandbox.access_key)
    monkeypatch.setenv("KLINGAI_SECRET_KEY", sandbox.secret_key)
    capsys.readouterr()
    for extra in ([], ["--dry-run"], ["--shard", "2/3"]):
        assert main(["batch", str(manifest), "--out", str(tmp_path / "cli"), *extra]) == 1
        captured = capsys.readouterr()
        text = captured.out + captured.err
        for number in (2, 4, 5):
            assert f"line {number} (sh0{number}0)" in text, (extra, text)
        assert captured.err.rstrip().splitlines()[-1].startswith("error: ")
    assert len(pending_faults(admin)) == len(TRIPWIRES)


def test_skip_invalid_runs_the_rest_and_a_failed_job_makes_the_exit_code_1(
        sandbox, admin, shots, plates, tmp_path, monkeypatch, capsys):
    (plate, clip), _ = sorted(plates.items())
    lines = [job("ok1", plate, clip),
             {**job("refused", plate, clip), "prompt": REMOVE + " [[fail]]"},
             {**job("broken", plate, clip), "edit_mode": "paint"}]
    manifest = shots / "mixed.jsonl"
    manifest.write_text("".join(json.dumps(x) + "\n" for x in lines))
    monkeypatch.setenv("KLINGAI_BASE_URL", sandbox.base_url)
    monkeypatch.setenv("KLINGAI_ACCESS_KEY", sandbox.access_key)
    monkeypatch.setenv("KLINGAI_SECRET_KEY", sandbox.secret_key)
    out = tmp_path / "out"
    capsys.readouterr()
    code = main(["batch", str(manifest), "--out", str(out), "--skip-invalid", "--json"])
    captured = capsys.readouterr()
    assert code == 1
    report = json.loads(captured.out)
    status = {j["name"]: j["status"] for j in report["jobs"]}
    assert status == {"ok1": "succeed", "refused": "failed", "broken": "invalid"}
    refused = next(j for j in report["jobs"] if j["name"] == "refused")
    assert "content safety" in refused["error"] and refused["external_task_id"]
    assert frame_count(out / "ok1.mp4") == FRAMES
    assert "3 job(s): 1 succeeded, 1 failed, 1 invalid" in captured.err
    assert captured.err.rstrip().splitlines()[-1].startswith("error: 2 of 3 job(s)")


@pytest.mark.slow
def test_chained_edits_by_video_id_with_watermarks_resume_truncated_downloads(
        sandbox, admin, client, shots, plates, tmp_path):
    (plate, clip), _ = sorted(plates.items())
    first = shots / "first.jsonl"
    first.write_text(json.dumps(job("base", plate, clip)) + "\n")
    out = tmp_path / "out"
    base = batch.run(first, out, client=client, host=SandboxHost(client.http)).jobs[0]
    video_id = client.get_task(base.task_id).videos[0].id
    make_reference_image(shots / "star.png")
    chained = shots / "chained.jsonl"
    chained.write_text("".join(json.dumps({
        "name": f"add{i}", "video": {"video_id": video_id}, "edit_mode": "addition",
        "images": ["star.png"], "watermark": True,
        "prompt": "Using the context of <<<video_1>>>, seamlessly add the star from <<<image_1>>>",
    }) + "\n" for i in (1, 2)))
    add_faults(admin, {"route": "files", "times": 4, "truncate": 0.4})
    report = batch.run(chained, out, client=client)  # no host needed: nothing is local
    assert [j.status for j in report.jobs] == ["succeed", "succeed"]
    assert pending_faults(admin) == []
    for name in ("add1", "add2"):
        assert frame_count(out / f"{name}.mp4") == FRAMES
        assert frame_count(out / f"{name}.watermarked.mp4") == FRAMES
    assert not list(out.glob("*.part"))
