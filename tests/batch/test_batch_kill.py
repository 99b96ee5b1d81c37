"""The ``batch`` command killed with SIGKILL at random moments, then run again: every job
finishes once, no task is created twice, and a finished batch run again sends nothing."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest

import kling_elements as ke

from ..support.batch import (
    assert_complete,
    saved_external_ids,
    tasks_by_external_id,
    uploads,
    write_manifest,
)
from ..support.sandbox import add_faults, created_total, pending_faults
from .test_batch_run import TRIPWIRES

pytestmark = pytest.mark.slow


def _env(sandbox) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KLINGAI_")}
    env.update(KLINGAI_BASE_URL=sandbox.base_url, KLINGAI_ACCESS_KEY=sandbox.access_key,
               KLINGAI_SECRET_KEY=sandbox.secret_key)
    return env


def _created(out) -> int:
    """Jobs whose state file already holds a task id (the task exists on Kling)."""
    count = 0
    for path in (out / ".state" / "jobs").glob("*.json"):
        try:
            count += bool(json.loads(path.read_text()).get("task_id"))
        except (OSError, ValueError):  # being replaced right now
            continue
    return count


def _finished(out) -> int:
    return len(list(out.glob("*.mp4")))


def _kill_after(process: subprocess.Popen, ready, delay: float) -> int:
    """SIGKILL ``process`` ``delay`` seconds after ``ready()`` first holds; 1 if it was
    killed, 0 if it ended on its own first."""
    deadline = time.monotonic() + 60
    while process.poll() is None and not ready() and time.monotonic() < deadline:
        time.sleep(0.005)
    try:
        process.wait(delay)
        return 0
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGKILL)
        process.wait()
        return 1


def test_killed_at_random_moments_and_run_again_each_job_is_paid_once(
        sandbox, admin, shots, plates, tmp_path):
    manifest, names = write_manifest(shots, plates, 9)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "kling_elements.cli", "batch", str(manifest),
               "--out", str(out), "--concurrency", "3"]
    env = _env(sandbox)
    tasks_before, uploads_before = created_total(admin), uploads(sandbox.data_dir)
    rng = random.Random(20240611)
    # Each run is killed at a random moment after a point of progress, not after a fixed
    # time: on a fast machine a whole run fits in one second, and a timer would miss it.
    moments = [lambda: _created(out) >= 1,          # a task created, none downloaded
               lambda: _finished(out) >= 1,         # some downloads done, more in flight
               lambda: True]                        # any time from the start
    kills = 0
    for ready in moments:
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        kills += _kill_after(process, ready, rng.uniform(0.0, 0.3))
    assert kills >= 1, "every run ended before it could be killed"

    final = subprocess.run([*command, "--json"], env=env, capture_output=True, text=True,
                           timeout=120)
    assert final.returncode == 0, final.stderr
    report = json.loads(final.stdout)
    assert sorted(j["name"] for j in report["jobs"]) == names
    assert {j["status"] for j in report["jobs"]} == {"succeed"}
    assert "\033[" not in final.stderr  # not a terminal: plain log lines
    assert "9 job(s): 9 succeeded" in final.stderr
    assert_complete(out, names)
    saved = saved_external_ids(out)
    with ke.Client(sandbox.access_key, sandbox.secret_key, base_url=sandbox.base_url) as client:
        on_kling = tasks_by_external_id(client)
    assert all(on_kling[saved[name]] == 1 for name in names)
    assert created_total(admin) - tasks_before == len(names)
    assert uploads(sandbox.data_dir) - uploads_before <= len(plates) * (kills + 1)

    add_faults(admin, *TRIPWIRES)  # a finished batch run again sends nothing at all
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0, again.stderr
    assert len(pending_faults(admin)) == len(TRIPWIRES)
    assert again.stderr.count("already done") == len(names)
