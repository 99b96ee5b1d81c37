"""Load test: the sandbox under many concurrent clients, then many whole edits at once.

Phase 1 (``--clients`` 32 for ``--seconds`` 60): each client opens its own session on one
small clip, marks the ball once, then loops until the time is up over a mix of calls:
add-selection / delete-selection of one more point (the selection calls whose latency is
reported), task creation (which meets the account's concurrency limit: 1303 is the intended
refusal), task queries and lists, and now and then a preview. Clients speak plain HTTP with
no retries, so every answer is counted as it came. Required: no answer other than success
and 1303, no connection error.

Phase 2 (``--edits`` 20): that many ``run_edit`` at once in a thread pool, each with its own
core ``Client``, against the same limit (3 tasks at a time): every edit must finish with a
verified result, and no external_task_id may create two tasks; the 1303 backoffs the
clients went through are counted.

Everything is on loopback; the sandbox runs in its own process (``kling-elements sandbox``)
unless ``--in-process``.

Usage: python scripts/load_sandbox.py [--clients 32] [--seconds 60] [--edits 20]
       [--task-seconds 2] [--json report.json]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

import kling_elements as ke
from kling_elements.hosting import SandboxHost
from kling_elements.sandbox.config import SandboxConfig
from kling_elements.sandbox.sample import SampleClip, make_clip
from kling_elements.workflow import EditJob, run_edit

__all__ = ["LoadConfig", "main", "run_load"]

API = "/v1/videos/multi-elements"
PROMPT = "Delete the ball from <<<video_1>>>"
SELECTION = ("add-selection", "delete-selection")


@dataclass(frozen=True)
class LoadConfig:
    clients: int = 32
    seconds: float = 60.0
    edits: int = 20
    task_seconds: float = 2.0
    seed: int = 1
    in_process: bool = False


@dataclass(frozen=True)
class Sandbox:
    base_url: str
    api_key: str
    access_key: str
    secret_key: str


@contextlib.contextmanager
def _sandbox(config: LoadConfig) -> Iterator[Sandbox]:
    """A sandbox on a free loopback port: a child process, or a thread of this one."""
    defaults = SandboxConfig()
    if config.in_process:
        from kling_elements.sandbox import running

        with running(task_seconds=config.task_seconds) as sb:
            yield Sandbox(sb.base_url, sb.api_key, sb.access_key, sb.secret_key)
        return
    command = [sys.executable, "-m", "kling_elements.cli", "sandbox", "--host", "127.0.0.1",
               "--port", "0", "--task-seconds", str(config.task_seconds)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.search(r"listening on (http://\S+)", line)
        if not match:
            raise RuntimeError(f"the sandbox did not start: {line!r}")
        yield Sandbox(match.group(1), defaults.api_key, defaults.access_key,
                      defaults.secret_key)
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()


# ---------------------------------------------------------------- phase 1: raw load


class Tally:
    """Answers by route and code, latencies by route; thread-safe."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.codes: Counter[tuple[str, str]] = Counter()
        self.latency: dict[str, list[float]] = defaultdict(list)

    def add(self, route: str, code: str, seconds: float) -> None:
        with self.lock:
            self.codes[(route, code)] += 1
            self.latency[route].append(seconds)


def _call(http: httpx.Client, tally: Tally, route: str, method: str, path: str,
          body: dict | None = None) -> Any:
    start = time.perf_counter()
    try:
        response = http.request(method, path, json=body)
        envelope = response.json()
        code = str(envelope.get("code"))
    except (httpx.HTTPError, ValueError) as exc:
        tally.add(route, type(exc).__name__, time.perf_counter() - start)
        return None
    tally.add(route, code, time.perf_counter() - start)
    return envelope.get("data") if code == "0" else None


def _client_loop(number: int, sandbox: Sandbox, video_url: str, clip: SampleClip,
                 deadline: float, tally: Tally, seed: int) -> None:
    rng = random.Random(f"{seed}:{number}")
    with httpx.Client(base_url=sandbox.base_url, timeout=120.0, trust_env=False,
                      headers={"Authorization": f"Bearer {sandbox.api_key}"}) as http:
        init = _call(http, tally, "init-selection", "POST", f"{API}/init-selection",
                     {"video_url": video_url})
        if init is None:
            return
        sid = init["session_id"]
        x, y = clip.center(0)
        _call(http, tally, "add-selection", "POST", f"{API}/add-selection",
              {"session_id": sid, "frame_index": 0, "points": [{"x": x, "y": y}]})
        tasks: list[str] = []
        while time.monotonic() < deadline:
            roll = rng.random()
            if roll < 0.60:  # one more click on the ball, then its removal
                frame = rng.choice((0, 12, 24, 36))
                fx, fy = clip.center(frame)
                point = {"x": fx + rng.uniform(-0.01, 0.01), "y": fy + rng.uniform(-0.01, 0.01)}
                body = {"session_id": sid, "frame_index": frame, "points": [point]}
                if _call(http, tally, "add-selection", "POST", f"{API}/add-selection",
                         body) is not None:
                    _call(http, tally, "delete-selection", "POST",
                          f"{API}/delete-selection", body)
            elif roll < 0.75:
                task = _call(http, tally, "create", "POST", API, {
                    "session_id": sid, "edit_mode": "removal", "prompt": PROMPT,
                    "external_task_id": f"load-{seed}-{number}-{len(tasks)}-{rng.random()}"})
                if task is not None:
                    tasks.append(task["task_id"])
            elif roll < 0.90 and tasks:
                _call(http, tally, "get", "GET", f"{API}/{rng.choice(tasks)}")
            elif roll < 0.97:
                _call(http, tally, "list", "GET", f"{API}?pageNum=1&pageSize=30")
            else:
                _call(http, tally, "preview-selection", "POST", f"{API}/preview-selection",
                      {"session_id": sid})
            time.sleep(rng.uniform(0.0, 0.05))  # a user, or a script, not a tight loop


def _percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {}

    def at(q: float) -> float:
        return round(1000 * ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))], 1)

    return {"n": len(ordered), "p50_ms": at(0.5), "p95_ms": at(0.95), "p99_ms": at(0.99),
            "max_ms": round(1000 * ordered[-1], 1)}


def _phase_load(config: LoadConfig, sandbox: Sandbox, url: str, clip: SampleClip
                ) -> dict[str, Any]:
    tally = Tally()
    start = time.monotonic()
    deadline = start + config.seconds
    threads = [threading.Thread(target=_client_loop, name=f"load-{n}",
                                args=(n, sandbox, url, clip, deadline, tally, config.seed))
               for n in range(config.clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.monotonic() - start
    codes = {f"{route} {code}": n for (route, code), n in sorted(tally.codes.items())}
    unintended = {k: n for k, n in codes.items()
                  if not (k.endswith(" 0") or k == "create 1303")}
    selection = [s for route in SELECTION for s in tally.latency[route]]
    total = sum(tally.codes.values())
    return {
        "clients": config.clients, "seconds": round(wall, 1), "requests": total,
        "requests_per_s": round(total / wall, 1),
        "codes": codes, "refused_1303": tally.codes[("create", "1303")],
        "unintended": unintended,
        "latency": {"selection": _percentiles(selection),
                    **{route: _percentiles(v) for route, v in sorted(tally.latency.items())}},
    }


# ---------------------------------------------------------------- phase 2: whole edits


def _phase_edits(config: LoadConfig, sandbox: Sandbox, url: str, clip: SampleClip,
                 folder: Path) -> dict[str, Any]:
    throttled = Counter()
    lock = threading.Lock()

    def one(number: int) -> dict[str, Any]:
        def on_retry(error: ke.KlingError, wait: float) -> None:
            with lock:
                throttled[str(error.code)] += 1

        out = folder / f"edit{number}.mp4"
        job = EditJob(output=str(out), edit_mode="removal", prompt=PROMPT, video_url=url,
                      selections=((0, (clip.center(0),)),))
        started = time.monotonic()
        with ke.Client(sandbox.access_key, sandbox.secret_key, base_url=sandbox.base_url,
                       on_retry=on_retry) as client:
            try:
                result = run_edit(client, job, state_path=folder / f"edit{number}.json",
                                  wait_timeout=600)
            except (ke.KlingError, ValueError) as exc:
                return {"ok": False, "error": f"{type(exc).__name__}: {exc}",
                        "seconds": time.monotonic() - started}
            return {"ok": True, "task_id": result.task.task_id,
                    "external_task_id": result.task.external_task_id,
                    "sha256": hashlib.sha256(out.read_bytes()).hexdigest(),
                    "seconds": time.monotonic() - started}

    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=config.edits) as pool:
        results = list(pool.map(one, range(config.edits)))
    wall = time.monotonic() - start
    with ke.Client(sandbox.access_key, sandbox.secret_key, base_url=sandbox.base_url) as c:
        listed = Counter(t.external_task_id for t in c.list_tasks(page_size=500))
    mine = {r["external_task_id"] for r in results if r["ok"]}
    return {
        "edits": config.edits, "succeeded": sum(r["ok"] for r in results),
        "errors": [r["error"] for r in results if not r["ok"]],
        "duplicate_tasks": sum(1 for ext in mine if listed[ext] > 1),
        "retries_by_code": dict(throttled), "seconds": round(wall, 1),
        "ideal_seconds": round(config.edits * config.task_seconds
                               / SandboxConfig.max_concurrent_tasks, 1),
        "edit_seconds_max": round(max(r["seconds"] for r in results), 1),
    }


def run_load(config: LoadConfig, folder: Path | None = None) -> dict[str, Any]:
    """Both phases; ``report["ok"]`` says whether every requirement held."""
    with contextlib.ExitStack() as stack:
        if folder is None:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="load-")))
        clip = make_clip(folder / "clip.mp4", width=720, height=720, fps=24, seconds=2.0)
        sandbox = stack.enter_context(_sandbox(config))
        with ke.Client(api_key=sandbox.api_key, base_url=sandbox.base_url) as client:
            url = SandboxHost(client.http).publish(clip.path)
        report: dict[str, Any] = {"config": config.__dict__}
        if config.clients and config.seconds > 0:
            report["load"] = _phase_load(config, sandbox, url, clip)
        if config.edits:
            report["edits"] = _phase_edits(config, sandbox, url, clip, folder)
    problems = []
    load = report.get("load")
    if load and load["unintended"]:
        problems.append(f"answers other than success and 1303: {load['unintended']}")
    edits = report.get("edits")
    if edits and edits["succeeded"] != edits["edits"]:
        problems.append(f"{edits['edits'] - edits['succeeded']} edit(s) failed: "
                        f"{edits['errors'][:3]}")
    if edits and edits["duplicate_tasks"]:
        problems.append(f"{edits['duplicate_tasks']} external id(s) made two tasks")
    report["problems"] = problems
    report["ok"] = not problems
    return report


def summary(report: dict[str, Any]) -> str:
    lines = []
    load = report.get("load")
    if load:
        sel = load["latency"]["selection"]
        lines += [
            f"load: {load['clients']} clients for {load['seconds']} s: {load['requests']} "
            f"requests ({load['requests_per_s']}/s), {load['refused_1303']} refused with 1303",
            f"  selection calls: n={sel.get('n')} p50={sel.get('p50_ms')} ms "
            f"p95={sel.get('p95_ms')} ms p99={sel.get('p99_ms')} ms max={sel.get('max_ms')} ms",
            *(f"  {route}: " + " ".join(f"{k}={v}" for k, v in stats.items())
              for route, stats in load["latency"].items() if route != "selection"),
            f"  answers: {load['codes']}",
        ]
    edits = report.get("edits")
    if edits:
        lines += [
            f"edits: {edits['succeeded']}/{edits['edits']} finished in {edits['seconds']} s "
            f"(ideal {edits['ideal_seconds']} s at 3 tasks at once), duplicates "
            f"{edits['duplicate_tasks']}, retries by code {edits['retries_by_code']}",
        ]
    lines.append("REQUIREMENTS MET" if report["ok"] else "PROBLEMS:")
    lines += [f"  {p}" for p in report["problems"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=LoadConfig.clients)
    parser.add_argument("--seconds", type=float, default=LoadConfig.seconds)
    parser.add_argument("--edits", type=int, default=LoadConfig.edits)
    parser.add_argument("--task-seconds", type=float, default=LoadConfig.task_seconds)
    parser.add_argument("--seed", type=int, default=LoadConfig.seed)
    parser.add_argument("--in-process", action="store_true",
                        help="run the sandbox in this process (its threads share the GIL)")
    parser.add_argument("--json", metavar="PATH", help="write the report there")
    args = parser.parse_args(argv)
    config = LoadConfig(clients=args.clients, seconds=args.seconds, edits=args.edits,
                        task_seconds=args.task_seconds, seed=args.seed,
                        in_process=args.in_process)
    report = run_load(config)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    print(summary(report))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
