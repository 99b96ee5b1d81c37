"""The Open Job Description template (farm/kling-batch.openjd.yaml) run by ``openjd run``,
the reference runner of the format AWS Deadline Cloud runs: one task per shard, every job
done once, and a task killed mid-way (its whole process group, as a farm pre-empts a
worker) run again without a second Kling task."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import kling_elements as ke
from kling_elements.batch.manifest import in_shard

from ..support.batch import (
    assert_complete,
    saved_external_ids,
    tasks_by_external_id,
    write_manifest,
)
from ..support.sandbox import add_faults, created_total
from .test_batch_kill import _created, _env

pytest.importorskip("openjd.model")
TEMPLATE = Path(__file__).resolve().parents[2] / "farm" / "kling-batch.openjd.yaml"
BIN = Path(sys.executable).parent
OPENJD = shutil.which("openjd", path=str(BIN)) or shutil.which("openjd")
EXECUTABLE = shutil.which("kling-elements", path=str(BIN))
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not (OPENJD and EXECUTABLE),
                                 reason="openjd-cli and an installed kling-elements are needed")]


def _openjd(manifest: Path, out: Path, *extra: str) -> list[str]:
    return [OPENJD, "run", str(TEMPLATE), "-p", f"Manifest={manifest}", "-p", f"Out={out}",
            "-p", "Shards=3", "-p", "Concurrency=2", "-p", f"Executable={EXECUTABLE}", *extra]


def test_the_template_passes_openjd_checks():
    run = subprocess.run([OPENJD, "check", str(TEMPLATE)], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


def test_openjd_runs_one_task_per_shard_and_each_job_once(sandbox, admin, shots, plates,
                                                          tmp_path):
    manifest, names = write_manifest(shots, plates, 6)
    out = tmp_path / "out"
    before = created_total(admin)
    run = subprocess.run(_openjd(manifest, out), env=_env(sandbox), capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr
    assert run.stdout.count("Shard(INT) = ") == 3
    assert sorted(p.name for p in out.glob("report.*-of-3.json")) == [
        "report.1-of-3.json", "report.2-of-3.json", "report.3-of-3.json"]
    assert_complete(out, names)
    assert created_total(admin) - before == len(names)


def test_a_killed_task_run_again_creates_no_second_kling_task(sandbox, admin, shots, plates,
                                                              tmp_path):
    manifest, names = write_manifest(shots, plates, 9)
    first = [name for name in names if in_shard(name, (1, 3))]
    assert first, "shard 1 of this manifest is empty: change the job count"
    out = tmp_path / "out"
    env, before = _env(sandbox), created_total(admin)
    add_faults(admin, {"route": "get", "times": 1000, "delay_s": 30})  # tasks never end
    task = subprocess.Popen(_openjd(manifest, out, "-tp", "Shard=1"), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 120
    while _created(out) < len(first) and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(task.pid, signal.SIGKILL)  # openjd, its shell and kling-elements
    task.wait()
    assert _created(out) == len(first), "the shard's tasks were not all created in time"
    assert created_total(admin) - before == len(first)
    admin.delete("/sandbox/faults")

    again = subprocess.run(_openjd(manifest, out, "-tp", "Shard=1"), env=env,
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr
    assert again.stdout.count("resumed task") == len(first)
    assert_complete(out, first)
    rest = subprocess.run(_openjd(manifest, out), env=env, capture_output=True, text=True,
                          timeout=300)  # the whole job: shard 1 is already done
    assert rest.returncode == 0, rest.stdout[-3000:] + rest.stderr
    assert_complete(out, names)
    assert created_total(admin) - before == len(names)
    saved = saved_external_ids(out)
    with ke.Client(sandbox.access_key, sandbox.secret_key, base_url=sandbox.base_url) as c:
        on_kling = tasks_by_external_id(c)
    assert all(on_kling[saved[name]] == 1 for name in names)
