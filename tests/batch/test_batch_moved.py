"""A batch folder moved to another machine (another mount path) resumes there: the state
files name the job's files by content, so no task is created twice (issue #18)."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import kling_elements as ke
from kling_elements import batch
from kling_elements.hosting import SandboxHost
from kling_elements.job_key import legacy_key

from ..support.batch import (
    assert_complete,
    saved_external_ids,
    tasks_by_external_id,
    write_manifest,
)
from ..support.sandbox import add_faults, created_total
from .test_batch_kill import _created, _env

pytestmark = pytest.mark.slow  # batches killed and resumed through the CLI
SLOW_POLLS = {"route": "get", "times": 1000, "delay_s": 30}


def _interrupt_with_every_task_created(command: list[str], env: dict, out: Path,
                                       jobs: int, cwd: Path | None = None) -> None:
    """Run the batch until each job's task exists at Kling (its polls are held back), then
    SIGKILL it: every job is left mid-way, its task paid for but not downloaded."""
    process = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 90
    while _created(out) < jobs and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert _created(out) == jobs, "the batch ended before every task was created"
    assert not list(out.glob("*.mp4"))


def _move(source: Path, target: Path) -> None:
    """Copy the show (plates as real files) to another path and remove the original, so
    nothing can still reach the old paths."""
    shutil.copytree(source, target, symlinks=False)
    shutil.rmtree(source)


def _check_each_job_paid_once(sandbox, admin, out: Path, names: list[str], before: int) -> None:
    saved = saved_external_ids(out)
    with ke.Client(sandbox.access_key, sandbox.secret_key, base_url=sandbox.base_url) as c:
        on_kling = tasks_by_external_id(c)
    assert all(on_kling[saved[name]] == 1 for name in names)
    assert created_total(admin) - before == len(names)


def test_a_batch_copied_to_another_mount_path_resumes_without_a_second_task(
        sandbox, admin, shots, plates, tmp_path):
    show = tmp_path / "mnt" / "show"
    show.parent.mkdir()
    shutil.move(str(shots), show)
    manifest, names = write_manifest(show, plates, 4)
    lines = [json.loads(line) for line in manifest.read_text().splitlines()]
    lines[0]["conform"] = True  # its clip is rendered under .state/ on the first machine
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines))
    env, before = _env(sandbox), created_total(admin)
    add_faults(admin, SLOW_POLLS)
    # Paths relative to the show, as a farm task started in the show's folder gives them.
    command = [sys.executable, "-m", "kling_elements.cli", "batch", manifest.name, "--out",
               "results", "--concurrency", "4"]
    _interrupt_with_every_task_created(command, env, show / "results", len(names), cwd=show)
    admin.delete("/sandbox/faults")

    moved = tmp_path / "S-drive" / "projects" / "show"
    _move(show, moved)
    final = subprocess.run([*command, "--json"], env=env, cwd=moved, capture_output=True,
                           text=True, timeout=120)
    assert final.returncode == 0, final.stderr
    report = json.loads(final.stdout)
    assert {j["status"] for j in report["jobs"]} == {"succeed"}
    assert "belongs to a different edit" not in final.stderr
    assert final.stderr.count("resumed") >= len(names)
    out = moved / "results"
    assert_complete(out, names)
    _check_each_job_paid_once(sandbox, admin, out, names, before)


def test_state_written_by_the_old_key_at_other_paths_resumes_its_task(
        sandbox, admin, client, shots, plates, tmp_path):
    """An upgrade in the middle of a batch that also moved: the old key (absolute paths)
    cannot be checked, so the saved task is looked up and kept, never created again."""
    manifest, names = write_manifest(shots, plates, 3)
    out = shots / "results"
    add_faults(admin, SLOW_POLLS)
    before = created_total(admin)
    _interrupt_with_every_task_created(
        [sys.executable, "-m", "kling_elements.cli", "batch", str(manifest), "--out",
         str(out), "--concurrency", "3"], _env(sandbox), out, len(names))
    admin.delete("/sandbox/faults")
    old = batch.load(manifest)
    for job in old.jobs:  # as the version before content keys wrote them
        path = out / ".state" / "jobs" / f"{job.name}.json"
        state = json.loads(path.read_text())
        state["job"] = legacy_key(job.edit_job(out))
        path.write_text(json.dumps(state))

    moved = tmp_path / "elsewhere"
    _move(shots, moved)
    report = batch.run(moved / manifest.name, moved / "results", client=client,
                       host=SandboxHost(client.http))
    assert report.ok, report.summary()
    assert_complete(moved / "results", names)
    _check_each_job_paid_once(sandbox, admin, moved / "results", names, before)
    for name in names:  # upgraded in place: the next move is checked by content
        state = json.loads((moved / "results" / ".state" / "jobs" / f"{name}.json").read_text())
        assert state["job"].startswith("c1-")
