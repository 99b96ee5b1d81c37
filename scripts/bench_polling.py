"""How many queries a task's wait costs, and how late it notices the end: polling vs callbacks.

Two parts, both in one run of a few seconds:

1. **Simulated Kling** (deterministic, seeded): tasks whose lengths are drawn uniformly from
   2-10 minutes (what Multi-Elements edits take in practice; the docs give no figure), each
   waited for by the real ``Client.wait`` against a scripted API on a simulated clock, so
   minutes pass in microseconds. Polling alone is measured with the schedule this project
   used before (the reference, copied below) and with today's ``client._poll_schedule``;
   callbacks are delivered, signed, to a real ``CallbackInbox`` at each status change
   (submitted at once, processing after 10 %, the end), ``CALLBACK_LATENCY_S`` late (the
   loopback median of part 2 is of that order); and with the final delivery lost, and
   with every delivery lost.
2. **The real thing on loopback**: the sandbox (signed callbacks in both formats) POSTs to
   a ``CallbackServer``; ``Client.wait(inbox=...)`` waits on several tasks at once; the delay
   from each task's end (its ``updated_at`` on the sandbox clock) to ``wait`` returning
   is measured, and the queries each wait sent are counted.

"polls before the end" counts queries that found the task still running (wasted);
"queries" counts every GET of the wait (a callback's end is confirmed by one). The goals
(issue 14): with callbacks 0 polls before the end and a notice within 1 s; polling alone at
most 15 queries for a 5-minute task and a median notice of at most 10 s. Exits 1 when a
goal is missed. The key figures are printed last.

Usage: python scripts/bench_polling.py [--tasks N] [--seed S]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from kling_elements import client as client_module
from kling_elements.callbacks import CallbackInbox, CallbackServer, sign
from kling_elements.client import Client
from kling_elements.errors import TaskFailedError
from kling_elements.models import Task

SHORTEST_S, LONGEST_S = 120.0, 600.0
FIVE_MINUTES_S = 300.0
CALLBACK_LATENCY_S = 0.05
SECRET = "whsec_YmVuY2gtcG9sbGluZy1zZWNyZXQtMDAwMDAwMDA="
NOW = 1_760_000_000


def previous_schedule(elapsed: float) -> float:
    """The schedule before issue 14 (the reference): 1 s for 10 s, 3 s to 60 s, then 10 s."""
    if elapsed < 10:
        return 1.0
    if elapsed < 60:
        return 3.0
    return 10.0


# -- part 1: simulated Kling ----------------------------------------------------------------


def _body(task_id: str, status: str, at: float) -> dict:
    return {"task_id": task_id, "task_status": status, "task_status_msg": "",
            "task_info": {"external_task_id": f"ext-{task_id}"},
            "created_at": NOW * 1000, "updated_at": int((NOW + at) * 1000),
            "task_result": {"videos": [{"id": "v", "url": "https://cdn.example/v.mp4",
                                        "duration": "5.1"}] if status == "succeed" else []}}


class SimulatedTask:
    """One task of ``length_s`` on a simulated clock: Kling's GET, and (optionally) its
    callbacks delivered into a real inbox; it is also the wait's ``TaskInbox``."""

    def __init__(self, task_id: str, length_s: float, deliver: tuple[str, ...]) -> None:
        self.task_id, self.length_s, self.now = task_id, length_s, 0.0
        self.queries: list[tuple[float, str]] = []
        self.box = CallbackInbox([SECRET], clock=lambda: NOW + self.now)
        times = {"submitted": 0.0, "processing": 0.1 * length_s, "succeed": length_s}
        self.script = sorted((times[s] + CALLBACK_LATENCY_S, s) for s in deliver)

    def status(self, at: float) -> str:
        if at >= self.length_s:
            return "succeed"
        return "processing" if at >= 0.1 * self.length_s else "submitted"

    def kling(self, request: httpx.Request) -> httpx.Response:
        status = self.status(self.now)
        self.queries.append((self.now, status))
        return httpx.Response(200, json={"code": 0, "message": "", "request_id": "r",
                                         "data": _body(self.task_id, status, self.now)})

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def heard(self, key: str) -> bool:
        return self.box.heard(key)

    def wait_for(self, key: str, timeout: float, *, beyond: str | None = None) -> Task | None:
        end = self.now + timeout
        while True:
            got = self.box.wait_for(key, 0, beyond=beyond)
            if got is not None:
                return got
            if not self.script or self.script[0][0] > end:
                self.now = end
                return None
            at, status = self.script.pop(0)
            self.now = max(self.now, at)
            raw = json.dumps(_body(self.task_id, status, at)).encode()
            msg_id = f"msg_{self.task_id}_{status}"
            stamp = NOW + int(self.now)
            self.box.accept({"webhook-id": msg_id, "webhook-timestamp": str(stamp),
                             "webhook-signature": sign(SECRET, msg_id, stamp, raw)}, raw)


@dataclass
class Figures:
    queries: list[int]
    wasted: list[int]
    notice: list[float]

    def row(self, label: str) -> str:
        return (f"  {label:<34} queries {statistics.mean(self.queries):5.1f} mean "
                f"{max(self.queries):3d} max | polls before the end "
                f"{statistics.mean(self.wasted):5.1f} mean {max(self.wasted):3d} max | notice "
                f"{statistics.median(self.notice):6.2f} s median "
                f"{_p95(self.notice):6.2f} s p95")


def _p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[-1] if len(values) > 1 \
        else values[0]


def simulate(lengths: list[float], *, deliver: tuple[str, ...] | None,
             schedule: Callable[[float], float]) -> Figures:
    """Wait for every task with the real ``Client.wait``; ``deliver`` None: no inbox."""
    saved = client_module._poll_schedule
    client_module._poll_schedule = schedule
    figures = Figures([], [], [])
    try:
        for number, length in enumerate(lengths):
            sim = SimulatedTask(f"t{number}", length, deliver or ())
            with Client(api_key="bench", transport=httpx.MockTransport(sim.kling),
                        clock=lambda sim=sim: sim.now, sleep=sim.sleep) as kc:
                done = kc.wait(sim.task_id, timeout=3600,
                               inbox=sim if deliver is not None else None)
            assert done.succeeded
            figures.queries.append(len(sim.queries))
            figures.wasted.append(sum(status != "succeed" for _, status in sim.queries))
            figures.notice.append(sim.now - length)
    finally:
        client_module._poll_schedule = saved
    return figures


# -- part 2: the sandbox, a receiver, real waits --------------------------------------------


def loopback(tasks: int, task_seconds: float) -> tuple[list[int], list[float]]:
    """Queries per wait and seconds from each task's end to its wait returning."""
    from kling_elements.hosting import SandboxHost
    from kling_elements.sandbox import running
    from kling_elements.sandbox.sample import make_clip

    queries: dict[str, int] = {}
    lock = threading.Lock()
    transport = httpx.HTTPTransport()

    class Counting(httpx.BaseTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            if request.method == "GET" and "/multi-elements/" in request.url.path:
                with lock:
                    key = request.url.path.rsplit("/", 1)[1]
                    queries[key] = queries.get(key, 0) + 1
            return transport.handle_request(request)

    inbox = CallbackInbox([SECRET])
    with tempfile.TemporaryDirectory() as folder, \
            running(task_seconds=task_seconds, max_concurrent_tasks=tasks + 1,
                    webhook_secret=SECRET, callback_format="both") as sandbox, \
            CallbackServer(inbox) as server, \
            Client(api_key=sandbox.api_key, base_url=sandbox.base_url,
                   transport=Counting()) as kc:
        clip = make_clip(Path(folder) / "clip.mp4", width=1280, height=720, fps=30,
                         seconds=2.0)
        url = SandboxHost(kc.http).publish(str(clip.path))
        init = kc.init_selection(video_url=url)
        kc.add_selection(init.session_id, 0, [clip.center(0)])

        def create() -> Task:
            return kc.create_task(session_id=init.session_id, edit_mode="removal",
                                  prompt="Delete the ball from <<<video_1>>>",
                                  callback_url=server.url)

        warm = create()  # renders once; later tasks with the same inputs reuse its files
        kc.wait(warm.task_id, timeout=120, inbox=inbox)
        created: list[Task] = []
        notice: list[float] = []

        def wait(task: Task) -> None:
            try:
                done = kc.wait(task.task_id, timeout=120, inbox=inbox)
            except TaskFailedError as exc:
                done = exc.task
            seen = sandbox.state.clock.now()
            with lock:
                notice.append(seen - done.updated_at / 1000)

        threads = []
        for _ in range(tasks):  # each wait starts as soon as its task exists
            created.append(create())
            threads.append(threading.Thread(target=wait, args=(created[-1],)))
            threads[-1].start()
        for thread in threads:
            thread.join(180)
    return [queries.get(t.task_id, 0) for t in created], notice


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=200, help="simulated tasks (default 200)")
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--loopback-tasks", type=int, default=12)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    lengths = [rng.uniform(SHORTEST_S, LONGEST_S) for _ in range(args.tasks)]
    fives = [rng.uniform(FIVE_MINUTES_S - 5, FIVE_MINUTES_S + 5) for _ in range(50)]
    everything = ("submitted", "processing", "succeed")
    today = client_module._poll_schedule

    print(f"part 1: {args.tasks} simulated tasks of {SHORTEST_S / 60:g}-{LONGEST_S / 60:g} "
          f"min (uniform, seed {args.seed}); 50 of 5 min +- 5 s")
    rows = {
        "polling, previous schedule": simulate(lengths, deliver=None, schedule=previous_schedule),
        "polling, today's schedule": simulate(lengths, deliver=None, schedule=today),
        "callbacks, all delivered": simulate(lengths, deliver=everything, schedule=today),
        "callbacks, final one lost": simulate(lengths, deliver=everything[:2], schedule=today),
        "callbacks, all lost": simulate(lengths, deliver=(), schedule=today),
    }
    for label, figures in rows.items():
        print(figures.row(label))
    five_before = simulate(fives, deliver=None, schedule=previous_schedule)
    five_after = simulate(fives, deliver=None, schedule=today)
    print(five_before.row("5-min tasks, previous schedule"))
    print(five_after.row("5-min tasks, today's schedule"))

    print(f"part 2: {args.loopback_tasks} sandbox tasks waited for at once through a signed "
          "callback receiver on loopback")
    queries, notice = loopback(args.loopback_tasks, task_seconds=1.0)
    print(f"  queries per wait {statistics.mean(queries):.1f} mean {max(queries)} max | "
          f"notice {statistics.median(notice):.3f} s median {_p95(notice):.3f} s p95")

    polling, callbacks = rows["polling, today's schedule"], rows["callbacks, all delivered"]
    goals = {
        "callbacks: 0 polls before the end": max(callbacks.wasted) == 0,
        "callbacks: notice <= 1 s (loopback, p95)": _p95(notice) <= 1.0,
        "polling: <= 15 queries per 5-minute task": max(five_after.queries) <= 15,
        "polling: median notice <= 10 s": statistics.median(polling.notice) <= 10.0,
    }
    for goal, met in goals.items():
        print(f"  {'met ' if met else 'MISSED'} {goal}")
    before, after = statistics.mean(five_before.queries), statistics.mean(five_after.queries)
    print(f"queries per 5-minute task: {before:.1f} -> {after:.1f} ({before / after:.1f}x "
          f"fewer), median notice {statistics.median(five_before.notice):.1f} s -> "
          f"{statistics.median(five_after.notice):.1f} s; over 2-10 min: "
          f"{statistics.mean(rows['polling, previous schedule'].queries):.1f} -> "
          f"{statistics.mean(polling.queries):.1f} queries, median notice "
          f"{statistics.median(polling.notice):.1f} s")
    print(f"with callbacks: {max(callbacks.wasted)} polls before the end, "
          f"{statistics.mean(queries):.0f} confirming query, notice "
          f"{statistics.median(notice) * 1000:.0f} ms median, {_p95(notice) * 1000:.0f} ms p95 "
          f"(loopback)")
    return 0 if all(goals.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
