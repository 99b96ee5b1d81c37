"""The CLI's ``edit`` killed with SIGKILL at seeded random moments, then run again with the
same arguments and state file: it resumes the same task (never a second one), a download
cut off half-way continues with ``Range`` from the bytes on disk, and the result is the
sandbox's file, byte for byte.

Kill points are chosen from the progress lines the command prints (publish, session,
selection, created, task status) plus a random delay, so a kill can land anywhere between
them: in an upload, a click, the create POST itself, a poll. One more scenario stops the
download half-way for certain: the first answer is cut (a truncate fault) and the resumed
request is held by the sandbox until the process is killed.
"""

from __future__ import annotations

import json
import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from kling_elements.sandbox import RunningSandbox
from kling_elements.sandbox.sample import SampleClip

from ..support.fixtures import sandbox_fixture
from ..support.media import sha256
from ..support.sandbox import client as admin_client
from ..support.sandbox import ok

pytestmark = pytest.mark.slow

SEED = 20240606
PROMPT = "Delete the ball from <<<video_1>>>"
KILL_AFTER = ("publish", "session", "selection", "created", "task")
RUN_TIMEOUT_S = 120.0


# A sandbox of this module's own: tasks take 1.5 s, so a kill can land while one runs.
killbox = sandbox_fixture(scope="module", name="killbox", task_seconds=1.5, max_concurrent_tasks=50)


@pytest.fixture(scope="module")
def killbox_admin(killbox: RunningSandbox) -> Iterator[httpx.Client]:
    with admin_client(killbox) as api:
        yield api


@pytest.fixture(scope="module")
def plate(make_plate) -> SampleClip:
    return make_plate(720, 720, 24, 2.0)


def _env(sandbox: RunningSandbox) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("KLINGAI_", "KLING_ELEMENTS_"))}
    env.update(KLINGAI_BASE_URL=sandbox.base_url, KLINGAI_ACCESS_KEY=sandbox.access_key,
               KLINGAI_SECRET_KEY=sandbox.secret_key)
    return env


def _command(clip: SampleClip, out: Path) -> list[str]:
    x, y = clip.center(0)
    return [sys.executable, "-m", "kling_elements.cli", "edit", str(clip.path),
            "--point", f"0:{x!r},{y!r}", "--edit", "removal", "--prompt", PROMPT,
            "-o", str(out), "--state", str(out.with_suffix(".state.json")), "--timeout", "10"]


class Run:
    """One ``edit`` process whose progress lines (stderr) are read as they come."""

    def __init__(self, command: list[str], env: dict[str, str]) -> None:
        self.process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        self.ended = False  # the end of stderr was read
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def wait_for(self, prefix: str, timeout: float = RUN_TIMEOUT_S) -> bool:
        """True once a line starting with ``prefix`` was printed; False if the run ended."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(
                    f"no {prefix!r} line after {timeout} s: {self.seen}") from None
            if line is None:
                self.ended = True
                return False
            self.seen.append(line)
            if line.startswith(prefix):
                return True

    def kill(self) -> bool:
        """SIGKILL the process; True if it was still running."""
        if self.process.poll() is not None:
            return False
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)
        return True

    def finish(self) -> tuple[int, str]:
        assert self.process.stdout is not None  # stderr is the reader thread's
        out = self.process.stdout.read()
        self.process.wait(RUN_TIMEOUT_S)
        while not self.ended:
            line = self.lines.get(timeout=10)
            self.ended = line is None
            if line is not None:
                self.seen.append(line)
        return self.process.returncode, out


def _created(sandbox: RunningSandbox) -> Counter[str]:
    with sandbox.state.lock:
        return Counter(sandbox.state.created)


def _ranges(sandbox: RunningSandbox) -> int:
    with sandbox.state.lock:
        return sandbox.state.file_requests["range"]


def _result_file(sandbox: RunningSandbox, external_id: str) -> Path:
    with sandbox.state.lock:
        (task,) = [t for t in sandbox.state.tasks.values() if t.external_task_id == external_id]
        assert task.result is not None
        return task.result.path


def _finish_and_check(sandbox: RunningSandbox, command: list[str], out: Path,
                      created_before: Counter[str]) -> dict:
    """Run the command to its end; check the one task, the result and the state file."""
    code, stdout = Run(command, _env(sandbox)).finish()
    assert code == 0, stdout
    state = json.loads(out.with_suffix(".state.json").read_text())
    assert state["done"] is True
    external = state["external_task_id"]
    new = _created(sandbox) - created_before
    assert new == Counter({external: 1}), new  # one task, for this edit's id, ever
    assert sha256(out) == sha256(_result_file(sandbox, external))
    assert not list(out.parent.glob(out.name + ".part*"))
    return state


def test_edit_killed_at_random_moments_resumes_the_same_task(killbox, plate, tmp_path):
    rng = random.Random(SEED)
    env = _env(killbox)
    kills, tally = 0, Counter()
    for number in range(6):
        out = tmp_path / f"edit{number}" / "result.mp4"
        out.parent.mkdir()
        command = _command(plate, out)
        before = _created(killbox)
        task_ids = set()
        # Every kill point at least once, then a second kill at a random one (a rerun that
        # resumes past that point's line finishes instead).
        for point in (KILL_AFTER[number % len(KILL_AFTER)], rng.choice(KILL_AFTER)):
            delay = rng.uniform(0.0, 0.4)
            run = Run(command, env)
            if run.wait_for(point):
                time.sleep(delay)
            if run.kill():
                kills += 1
                tally[point] += 1
            else:
                run.finish()
            saved = out.with_suffix(".state.json")
            if saved.exists() and json.loads(saved.read_text()).get("task_id"):
                task_ids.add(json.loads(saved.read_text())["task_id"])
        state = _finish_and_check(killbox, command, out, before)
        assert task_ids <= {state["task_id"]}  # every run saw the one task
    print(f"\n{kills} kills after: {dict(sorted(tally.items()))}")
    assert kills >= 6 and set(tally) == set(KILL_AFTER), tally


def test_download_killed_half_way_continues_with_range(killbox, killbox_admin, plate, tmp_path):
    out = tmp_path / "result.mp4"
    command = _command(plate, out)
    before = _created(killbox)
    run = Run(command, _env(killbox))
    assert run.wait_for("created")  # the clip was fetched: file faults now hit the download
    ok(killbox_admin.post("/sandbox/faults", json={"rules": [
        {"route": "files", "times": 1, "truncate": 0.5},
        {"route": "files", "times": 1, "delay_s": 30},  # the resumed request hangs
    ]}))
    part = out.with_name(out.name + ".part")
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while not (part.exists() and part.stat().st_size > 0
               and not ok(killbox_admin.get("/sandbox/faults"))["rules"]):
        assert time.monotonic() < deadline and run.process.poll() is None, run.seen
        time.sleep(0.05)
    assert run.kill()
    kept = part.stat().st_size
    total = _result_file(killbox, json.loads(
        out.with_suffix(".state.json").read_text())["external_task_id"]).stat().st_size
    assert 0 < kept < total

    ranges = _ranges(killbox)
    _finish_and_check(killbox, command, out, before)
    assert _ranges(killbox) > ranges  # the rerun asked only for the missing bytes
    print(f"\nkilled with {kept} of {total} bytes on disk; the rerun resumed with Range")
