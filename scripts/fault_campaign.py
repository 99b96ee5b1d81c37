"""Fault campaign: many whole edits through the core client while the sandbox misbehaves.

Every workflow is init -> clicks (one cleared, then the ball on one or two frames, one more
and its delete) -> preview (+ its video downloaded) -> create -> wait -> download, run with
the library's own ``Client`` against an in-process sandbox whose ``/sandbox/faults`` rules
inject, on every route, seeded random faults: business errors 1302/1303/5000/5001/5002,
answers delayed past the client's timeout, connections dropped before and after the request
took effect, and truncated file bodies. A few workflows also get a fault no retry can fix
(1102, 1103, 1301, a task that fails) and must end with that clear error.

Requirements checked (any breach is listed and the exit status is 1):

* every workflow ends with a verified result file (same SHA-256 as the sandbox's result,
  decodes to every frame) or with the error of the non-retryable cause it was given;
* no external_task_id created more than one task (the sandbox's own count, and the task
  list per external id);
* nothing partial or corrupt at a final path (results and previews);
* after the clicks, the points of the session the client works on equal the client's own
  list, bit for bit and copy for copy (a lost add or delete is never applied twice).

Workflows run in ``--lanes`` parallel lanes; a lane is one sandbox and one client running
its workflows one after another, so a workflow's fault rules meet only its own requests
and a seed reproduces the same faults. One 720x720, 24 fps, 2 s clip (the smallest Kling
accepts) is published once per lane and edited by every workflow; the lanes' sandboxes share
their content-keyed caches, and one fault-free workflow per click pattern warms them before
the clock of the counted workflows starts (it is in the wall time).

Usage: python scripts/fault_campaign.py [--workflows 200] [--seed 1] [--lanes 6]
       [--timeout 1.5] [--json report.json]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import queue
import random
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import av
import httpx

import kling_elements as ke
from kling_elements.hosting import SandboxHost
from kling_elements.sandbox import RunningSandbox, running
from kling_elements.sandbox.sample import SampleClip, make_clip
from kling_elements.selection import same_point

__all__ = ["CampaignConfig", "main", "run_campaign"]

PROMPT = "Delete the ball from <<<video_1>>>"
FAIL_PROMPT = PROMPT + " [[fail]]"  # the sandbox fails such a task (content policy)
FRAMES = 48
RETRYABLE_CODES = (1302, 1303, 5000, 5001, 5002)
# Causes no retry can fix, and the error each must end in.
FATAL = {
    "init-1103": ("init-selection", 1103, ke.PermissionDeniedError),
    "create-1102": ("create", 1102, ke.AccountError),
    "create-1301": ("create", 1301, ke.PolicyError),
    "task-failed": (None, None, ke.TaskFailedError),
}
FATAL_SHARE = 0.06
CLICK_FRAMES = ((0,), (0, 24), (24,))  # few patterns: the sandbox tracks each once


@dataclass(frozen=True)
class CampaignConfig:
    workflows: int = 200
    seed: int = 1
    lanes: int = 12
    timeout: float = 1.5  # the client's per-request timeout; delays go past it
    task_seconds: float = 0.3
    faults: bool = True  # False: the same workflows without any fault (a baseline)


@dataclass
class Outcome:
    """What one workflow did and how it ended."""

    index: int
    fatal: str | None  # the non-retryable cause it was given, if any
    succeeded: bool = False
    error: str | None = None  # "ErrorClass code: message" when it failed
    step: str = ""  # the step it was in when it ended
    retries: int = 0  # retries the client reported (on_retry)
    download_requests: int = 0  # file GETs for the preview and the result
    range_requests: int = 0  # of which resumed with Range
    sessions: int = 0  # sessions used: 1 + restores after lost answers
    took_effect: int = 0  # lost selection calls that had changed the session they left
    faults: list[dict] = field(default_factory=list)
    unused_faults: int = 0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- fault plans


def _retryable_fault(rng: random.Random, route: str, timeout: float) -> dict:
    kinds = ["error", "delay", "drop_before", "drop_after"]
    if route == "files":
        kinds += ["truncate", "truncate"]
    kind = rng.choice(kinds)
    if kind == "error":
        code = rng.choice(RETRYABLE_CODES)
        return {"route": route, "error": {"code": code}}
    if kind == "delay":
        return {"route": route, "delay_s": round(timeout + rng.uniform(0.3, 1.2), 2)}
    if kind == "truncate":
        return {"route": route, "truncate": round(rng.uniform(0.05, 0.95), 2)}
    return {"route": route, "drop": "before_commit" if kind == "drop_before" else "after_commit"}


def _faults(rng: random.Random, route: str, timeout: float, most: int = 2) -> list[dict]:
    """0..``most`` faults for one route, fewer than the client's retries in a row."""
    count = rng.choice([0, 0, 1, 1, 2][: 3 + most])
    return [_retryable_fault(rng, route, timeout) for _ in range(count)]


# ---------------------------------------------------------------- one lane


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


_decoded: dict[str, int] = {}
_decoded_lock = threading.Lock()


def _frames(path: Path) -> int:
    """Frames PyAV decodes from ``path`` (it raises on a damaged file); once per content."""
    digest = _sha256(path)
    with _decoded_lock:
        known = _decoded.get(digest)
    if known is None:
        with av.open(str(path)) as container:
            known = sum(1 for _ in container.decode(video=0))
        with _decoded_lock:
            _decoded[digest] = known
    return known


class _Client(ke.Client):
    """The library's client, noting each session it abandons and the points it had then."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Session left -> the client's points then (None when a clear left it: those points
        # were forgotten on purpose).
        self.abandoned: dict[str, dict[int, list[tuple[float, float]]] | None] = {}
        self._clearing = False

    def restore(self, session: str | ke.SelectionState, **options: Any) -> ke.SelectionState:
        state = session if isinstance(session, ke.SelectionState) else self.sessions[session]
        self.abandoned[state.session_id] = None if self._clearing else {
            f: list(p) for f, p in state.points.items() if p}
        return super().restore(session, **options)

    def clear_selection(self, session_id: str) -> ke.Cost:
        self._clearing = True
        try:
            return super().clear_selection(session_id)
        finally:
            self._clearing = False


class Lane:
    """One sandbox and one client; runs workflows one at a time."""

    def __init__(self, sandbox: RunningSandbox, clip: SampleClip, config: CampaignConfig,
                 folder: Path) -> None:
        self.sandbox = sandbox
        self.clip = clip
        self.config = config
        self.folder = folder
        self.retries = 0
        self.faults_on = config.faults
        # No keep-alive: the sandbox closes idle connections, and the harness must not fail.
        self.admin = httpx.Client(base_url=sandbox.base_url, timeout=30.0, trust_env=False,
                                  headers={"Authorization": f"Bearer {sandbox.api_key}"},
                                  limits=httpx.Limits(max_keepalive_connections=0))
        self.client = _Client(sandbox.access_key, sandbox.secret_key,
                                base_url=sandbox.base_url, timeout=config.timeout,
                                on_retry=self._count_retry)
        self.url = SandboxHost(self.client.http).publish(clip.path)

    def close(self) -> None:
        self.client.close()
        self.admin.close()

    def _count_retry(self, error: ke.KlingError, wait: float) -> None:
        self.retries += 1

    def _inject(self, outcome: Outcome, rules: list[dict]) -> None:
        if rules and self.faults_on:
            response = self.admin.post("/sandbox/faults", json={"rules": rules})
            response.raise_for_status()
            outcome.faults.extend(rules)

    def _settle(self, outcome: Outcome) -> None:
        """Remove the rules a step did not use, so the next step starts clean."""
        left = self.admin.get("/sandbox/faults").json()["data"]["rules"]
        outcome.unused_faults += sum(rule["times"] for rule in left)
        self.admin.delete("/sandbox/faults")

    def _file_requests(self) -> Counter[str]:
        with self.sandbox.state.lock:
            return Counter(self.sandbox.state.file_requests)

    def warm_up(self) -> None:
        """One fault-free workflow per click pattern, not counted: the sandbox decodes, tracks,
        draws and renders each pattern once here, so the counted workflows meet the injected
        faults rather than the first slow computation of a cold cache."""
        faults, self.faults_on = self.faults_on, False
        client = self.client
        self.client = _Client(self.sandbox.access_key, self.sandbox.secret_key,
                              base_url=self.sandbox.base_url, timeout=120.0)
        try:
            for number, frames in enumerate(CLICK_FRAMES, start=1):
                self._workflow(-number, random.Random(-number), Outcome(-number, None), frames)
        finally:
            self.client.close()
            self.client, self.faults_on = client, faults

    def run(self, index: int) -> Outcome:
        rng = random.Random(f"{self.config.seed}:{index}")
        fatal = rng.choice(sorted(FATAL)) if rng.random() < FATAL_SHARE else None
        if not self.config.faults:
            fatal = None
        outcome = Outcome(index=index, fatal=fatal)
        self.retries = 0
        start = time.monotonic()
        try:
            self._workflow(index, rng, outcome)
            outcome.succeeded = True
        except (ke.KlingError, ValueError) as exc:
            code = getattr(exc, "code", None)
            outcome.error = f"{type(exc).__name__}" + (f" {code}" if code else "") + f": {exc}"
            self._check_error(outcome, exc)
        except Exception as exc:  # the harness itself, or an error the library should wrap
            outcome.error = f"{type(exc).__name__}: {exc}"
            outcome.problems.append(f"unexpected {outcome.error} in step {outcome.step}")
        finally:
            with contextlib.suppress(httpx.HTTPError):
                self._settle(outcome)
            outcome.retries = self.retries
            outcome.seconds = round(time.monotonic() - start, 3)
        if outcome.succeeded and fatal is not None:
            outcome.problems.append(f"succeeded although given the fatal cause {fatal}")
        self._check_final_paths(index, outcome)
        return outcome

    def _check_error(self, outcome: Outcome, exc: Exception) -> None:
        if outcome.fatal is None:
            outcome.problems.append(
                f"failed in step {outcome.step} without a fatal cause: {outcome.error}")
            return
        kind = FATAL[outcome.fatal][2]
        if type(exc) is not kind or not str(exc).strip():
            outcome.problems.append(f"{outcome.fatal} ended in {outcome.error}, not {kind}")

    def _check_final_paths(self, index: int, outcome: Outcome) -> None:
        """A final path holds a complete, verified file or nothing at all."""
        for name in (f"preview-{index}.mp4", f"result-{index}.mp4"):
            path = self.folder / name
            if not path.exists():
                if outcome.succeeded:
                    outcome.problems.append(f"{name} is missing after success")
                continue
            try:
                frames = _frames(path)
            except av.error.FFmpegError as exc:
                outcome.problems.append(f"{name} does not decode: {exc}")
                continue
            if frames != FRAMES:
                outcome.problems.append(f"{name} has {frames} frames, not {FRAMES}")

    def _workflow(self, index: int, rng: random.Random, outcome: Outcome,
                  frames: tuple[int, ...] | None = None) -> None:
        client, timeout = self.client, self.config.timeout
        fatal_route, fatal_code, _ = FATAL.get(outcome.fatal or "", (None, None, None))

        def fatal_rule(route: str) -> list[dict]:
            return [{"route": route, "error": {"code": fatal_code}}] if route == fatal_route \
                else []

        # init
        outcome.step = "init"
        self._inject(outcome, fatal_rule("init-selection")
                     + _faults(rng, "init-selection", timeout))
        init = client.init_selection(video_url=self.url)
        self._settle(outcome)
        state = client.sessions[init.session_id]

        # clicks: the object on one or two frames, one more click, and its removal
        outcome.step = "clicks"
        frames = frames or rng.choice(CLICK_FRAMES)
        self._inject(outcome, _faults(rng, "add-selection", timeout)
                     + _faults(rng, "delete-selection", timeout, most=1)
                     + _faults(rng, "clear-selection", timeout, most=1))
        client.add_selection(init.session_id, frames[-1], [self.clip.center(frames[-1])])
        client.clear_selection(init.session_id)  # a first try, started over
        for frame in frames:
            client.add_selection(init.session_id, frame, [self.clip.center(frame)])
        stray_frame = frames[0]
        x, y = self.clip.center(stray_frame)  # a second click on the object, then undone
        stray = (x + rng.uniform(-0.02, 0.02), y + rng.uniform(-0.02, 0.02))
        client.add_selection(init.session_id, stray_frame, [stray])
        client.delete_selection(init.session_id, stray_frame, [stray])
        self._settle(outcome)
        self._check_points(state, init.session_id, outcome)

        # preview, and its video
        outcome.step = "preview"
        before = self._file_requests()
        self._inject(outcome, _faults(rng, "preview-selection", timeout)
                     + _faults(rng, "files", timeout, most=1))
        preview = client.preview_selection(init.session_id)
        client.download(preview.video_url, self.folder / f"preview-{index}.mp4")
        self._settle(outcome)

        # create (never twice), wait, download
        outcome.step = "create"
        external = f"campaign-{self.config.seed}-{index}"
        self._inject(outcome, fatal_rule("create") + _faults(rng, "create", timeout)
                     + _faults(rng, "get", timeout))
        prompt = FAIL_PROMPT if outcome.fatal == "task-failed" else PROMPT
        task = client.create_task(session_id=init.session_id, edit_mode="removal",
                                  prompt=prompt, external_task_id=external)
        self._settle(outcome)
        outcome.step = "wait"
        self._inject(outcome, _faults(rng, "get", timeout))
        done = client.wait(task.task_id, timeout=120, poll_interval=0.1)
        self._settle(outcome)
        outcome.step = "download"
        self._inject(outcome, _faults(rng, "files", timeout))
        result = self.folder / f"result-{index}.mp4"
        client.download(done.videos[0].url, result)
        self._settle(outcome)
        after = self._file_requests()
        outcome.download_requests = sum((after - before).values())
        outcome.range_requests = (after - before)["range"]

        with self.sandbox.state.lock:
            served = self.sandbox.state.videos[done.videos[0].id].path
        if _sha256(result) != _sha256(served):
            outcome.problems.append("the result differs from the sandbox's file")

    def _check_points(self, state: ke.SelectionState, first_id: str, outcome: Outcome) -> None:
        """The live session holds exactly the client's points; count doubled points left on
        the sessions the client abandoned after lost answers."""
        sessions = self.sandbox.state.sessions
        used = [sid for sid, s in self.client.sessions.items() if s is state]
        outcome.sessions = len(used)
        live = sessions[state.session_id]
        with live.lock:
            server = {f: list(p) for f, p in live.points.items() if p}
        mine = {f: list(p) for f, p in state.points.items() if p}
        same = set(server) == set(mine) and all(
            len(server[f]) == len(mine[f])
            and all(same_point(a, b) for a, b in zip(server[f], mine[f], strict=True))
            for f in mine)
        if not same:
            outcome.problems.append(f"server points {server} differ from the client's {mine}")
        # A lost add or delete that reached the server shows on the session left behind: a
        # plain retry there would have applied it twice.
        for sid in used:
            known = self.client.abandoned.get(sid)
            if sid == state.session_id or known is None:
                continue
            with sessions[sid].lock:
                left = {f: list(p) for f, p in sessions[sid].points.items() if p}
            outcome.took_effect += left != known


# ---------------------------------------------------------------- the campaign


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run_campaign(config: CampaignConfig, folder: Path | None = None,
                 progress: bool = False) -> dict[str, Any]:
    """Run the campaign; return the report (``report["ok"]`` is False on any breach)."""
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        if folder is None:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="campaign-")))
        clip = make_clip(folder / "clip.mp4", width=720, height=720, fps=24, seconds=2.0)
        lanes = []
        for number in range(config.lanes):
            sandbox = stack.enter_context(running(task_seconds=config.task_seconds))
            lane_dir = folder / f"lane{number}"
            lane_dir.mkdir()
            lane = Lane(sandbox, clip, config, lane_dir)
            stack.callback(lane.close)
            lanes.append(lane)
        # The lanes run one clip, and the sandbox's caches are keyed by content: share them,
        # so the decoding, tracking, drawing and rendering of each click pattern happen once.
        first = lanes[0].sandbox.state
        for lane in lanes[1:]:
            state = lane.sandbox.state
            state.frames, state.tracks = first.frames, first.tracks
            state.normalized, state.outputs = first.normalized, first.outputs
        lanes[0].warm_up()
        todo: queue.Queue[int] = queue.Queue()
        for index in range(config.workflows):
            todo.put(index)
        outcomes: list[Outcome] = []
        lock = threading.Lock()

        def work(lane: Lane) -> None:
            while True:
                try:
                    index = todo.get_nowait()
                except queue.Empty:
                    return
                outcome = lane.run(index)
                with lock:
                    outcomes.append(outcome)
                    if progress:
                        mark = "ok" if outcome.succeeded else "error"
                        print(f"[{len(outcomes):4d}/{config.workflows}] workflow {index:4d} "
                              f"{mark:5s} {outcome.seconds:6.2f} s, {len(outcome.faults)} "
                              f"faults, {outcome.retries} retries"
                              + (f"  PROBLEM: {outcome.problems}" if outcome.problems else ""),
                              file=sys.stderr, flush=True)

        threads = [threading.Thread(target=work, args=(lane,), name=f"lane-{i}")
                   for i, lane in enumerate(lanes)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        duplicates = _duplicates(lanes)
    return _report(config, sorted(outcomes, key=lambda o: o.index), duplicates,
                   time.monotonic() - started)


def _duplicates(lanes: list[Lane]) -> dict[str, int]:
    """External ids that made more than one task: the sandbox's count and the task list."""
    found: dict[str, int] = {}
    for lane in lanes:
        with lane.sandbox.state.lock:
            counted = Counter(lane.sandbox.state.created)
        listed = Counter(task.external_task_id
                         for task in lane.client.list_tasks(page=1, page_size=500))
        for ext, count in (counted | listed).items():
            if count > 1:
                found[ext] = count
    return found


def _report(config: CampaignConfig, outcomes: list[Outcome], duplicates: dict[str, int],
            wall: float) -> dict[str, Any]:
    retries = [o.retries for o in outcomes]
    seconds = [o.seconds for o in outcomes]
    faults = Counter()
    for outcome in outcomes:
        for rule in outcome.faults:
            effect = next(k for k in ("error", "delay_s", "drop", "truncate") if k in rule)
            label = {"error": lambda r: f"error {r['error']['code']}",
                     "delay_s": lambda r: "delay past timeout",
                     "drop": lambda r: f"drop {r['drop']}",
                     "truncate": lambda r: "truncated body"}[effect](rule)
            faults[f"{rule['route']}: {label}"] += 1
    problems = [f"workflow {o.index}: {p}" for o in outcomes for p in o.problems]
    problems += [f"external_task_id {ext} made {n} tasks" for ext, n in duplicates.items()]
    if len(outcomes) != config.workflows:
        problems.append(f"only {len(outcomes)} of {config.workflows} workflows ran")
    errors = Counter(o.error.split(":")[0] for o in outcomes if o.error)
    return {
        "config": asdict(config),
        "ok": not problems,
        "workflows": len(outcomes),
        "succeeded": sum(o.succeeded for o in outcomes),
        "clear_errors": dict(errors),
        "duplicate_tasks": len(duplicates),
        "corrupt_or_partial_final_files": sum(
            1 for o in outcomes for p in o.problems if "decode" in p or "frames" in p
            or "differs" in p),
        "point_list_mismatches": sum(
            1 for o in outcomes for p in o.problems if p.startswith("server points")),
        "faults_injected": sum(len(o.faults) for o in outcomes),
        "faults_unused": sum(o.unused_faults for o in outcomes),
        "faults_by_kind": dict(sorted(faults.items())),
        "retries": {"total": sum(retries), "p50": _percentile(retries, 0.5),
                    "max": max(retries, default=0)},
        "download_requests": sum(o.download_requests for o in outcomes),
        "range_requests": sum(o.range_requests for o in outcomes),
        "sessions_restored": sum(max(0, o.sessions - 1) for o in outcomes),
        "lost_selection_calls_that_took_effect": sum(o.took_effect for o in outcomes),
        "seconds": {"wall": round(wall, 1), "p50": _percentile(seconds, 0.5),
                    "p90": _percentile(seconds, 0.9), "max": max(seconds, default=0.0),
                    "mean": round(statistics.fmean(seconds), 3) if seconds else 0.0},
        "problems": problems,
        "outcomes": [asdict(o) for o in outcomes],
    }


def summary(report: dict[str, Any]) -> str:
    """The report as a small table for a terminal."""
    r = report
    rows = [
        ("workflows", r["workflows"]),
        ("succeeded (verified result file)", r["succeeded"]),
        *((f"clear error: {cause}", n) for cause, n in sorted(r["clear_errors"].items())),
        ("duplicate tasks", r["duplicate_tasks"]),
        ("corrupt or partial final files", r["corrupt_or_partial_final_files"]),
        ("server/client point lists differing", r["point_list_mismatches"]),
        ("faults injected (unused)", f"{r['faults_injected']} ({r['faults_unused']})"),
        ("retries total / p50 / max", "{total} / {p50} / {max}".format(**r["retries"])),
        ("file requests (with Range)", f"{r['download_requests']} ({r['range_requests']})"),
        ("sessions restored after lost answers", r["sessions_restored"]),
        ("lost selection calls that had taken effect", r["lost_selection_calls_that_took_effect"]),
        ("seconds per workflow p50 / p90 / max",
         "{p50} / {p90} / {max}".format(**r["seconds"])),
        ("wall time (s)", r["seconds"]["wall"]),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [f"{name:<{width}}  {value}" for name, value in rows]
    lines.append("REQUIREMENTS MET" if r["ok"] else f"{len(r['problems'])} PROBLEM(S):")
    lines += [f"  {p}" for p in r["problems"][:50]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workflows", type=int, default=CampaignConfig.workflows)
    parser.add_argument("--seed", type=int, default=CampaignConfig.seed)
    parser.add_argument("--lanes", type=int, default=CampaignConfig.lanes,
                        help="parallel sandboxes, each running its workflows in turn")
    parser.add_argument("--timeout", type=float, default=CampaignConfig.timeout,
                        help="the client's per-request timeout in seconds")
    parser.add_argument("--task-seconds", type=float, default=CampaignConfig.task_seconds)
    parser.add_argument("--no-faults", action="store_true",
                        help="the same workflows without faults, as a baseline")
    parser.add_argument("--json", metavar="PATH", help="write the full report there")
    parser.add_argument("--quiet", action="store_true", help="no line per workflow")
    args = parser.parse_args(argv)
    config = CampaignConfig(workflows=args.workflows, seed=args.seed, lanes=args.lanes,
                            timeout=args.timeout, task_seconds=args.task_seconds,
                            faults=not args.no_faults)
    report = run_campaign(config, progress=not args.quiet)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    print(summary(report))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
