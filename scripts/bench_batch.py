"""Benchmark the batch runner's throughput against the sandbox's concurrency limit.

Starts a sandbox in its own process (``kling-elements sandbox``: every task takes at least
``--task-seconds``, at most 3 run at once per account), writes a manifest of ``--jobs``
removals on ``--plates`` short sample clips (each shot clicks its plate's object), runs
``kling_elements.batch.run`` against it and times the whole run (uploads, sessions, clicks,
tasks, downloads). The ideal is what the account's limit allows: jobs x task seconds /
limit. Prints the achieved ratio ideal / achieved and exits 1 below ``--min-ratio`` (0.8)
or if any job did not succeed, any output does not decode to the clip's frame count, or
any external_task_id created more than one task.

The clips are the smallest the API accepts (720x720, 24 fps, 2 s = 48 frames), so the
sandbox's own CPU (it really segments, tracks and inpaints) stays small next to the task
time it emulates; shots of one plate share an upload and their identical selection.

Usage: python scripts/bench_batch.py [--jobs 60] [--task-seconds 2] [--plates 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import av

import kling_elements as ke
from kling_elements import batch
from kling_elements.hosting import SandboxHost
from kling_elements.sandbox.config import SandboxConfig
from kling_elements.sandbox.sample import make_clip

LIMIT = SandboxConfig.max_concurrent_tasks
WIDTH = HEIGHT = 720
FPS = 24
SECONDS = 2.0


def start_sandbox(task_seconds: float, data_dir: Path) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "kling_elements.cli", "sandbox", "--port", "0",
         "--task-seconds", str(task_seconds), "--data-dir", str(data_dir)],
        stdout=subprocess.PIPE, text=True,
    )
    line = process.stdout.readline() if process.stdout else ""
    if "listening on" not in line:
        process.kill()
        sys.exit(f"the sandbox did not start: {line!r}")
    return process, line.rsplit(" ", 1)[-1].strip()


def write_manifest(folder: Path, jobs: int, plates: int) -> Path:
    lines = []
    clips = [make_clip(folder / f"plate{p}.mp4", width=WIDTH, height=HEIGHT, fps=FPS,
                       seconds=SECONDS, seed=p) for p in range(plates)]
    for i in range(jobs):
        plate = i * plates // jobs  # shots grouped by plate, as a shot list usually is
        lines.append(json.dumps({
            "name": f"sh{i:03d}", "video": f"plate{plate}.mp4",
            "select": [{"frame": 0, "points": [list(clips[plate].center(0))]}],
            "edit_mode": "removal", "prompt": "Remove the ball from <<<video_1>>>",
        }))
    manifest = folder / "manifest.jsonl"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def frame_count(path: str) -> int:
    with av.open(path) as container:
        return sum(1 for _ in container.decode(video=0))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=60)
    parser.add_argument("--task-seconds", type=float, default=2.0)
    parser.add_argument("--plates", type=int, default=3)
    parser.add_argument("--min-ratio", type=float, default=0.8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        folder = Path(tmp)
        manifest = write_manifest(folder, args.jobs, args.plates)
        process, base_url = start_sandbox(args.task_seconds, folder / "sandbox")
        try:
            config = SandboxConfig()
            with ke.Client(config.access_key, config.secret_key, base_url=base_url) as client:
                start, cpu = time.monotonic(), _cpu(resource.RUSAGE_SELF)
                report = batch.run(manifest, folder / "out", client=client,
                                   host=SandboxHost(client.http), concurrency=LIMIT)
                achieved = time.monotonic() - start
                client_cpu = _cpu(resource.RUSAGE_SELF) - cpu
                tasks = client.list_tasks(page_size=500)
        finally:
            process.terminate()
            process.wait(30)
        sandbox_cpu = _cpu(resource.RUSAGE_CHILDREN)
        per_id = Counter(task.external_task_id for task in tasks)
        expected = round(FPS * SECONDS)
        bad_outputs = [job.name for job in report.jobs
                       if job.status != "succeed" or frame_count(job.output) != expected]
    ideal = args.jobs * args.task_seconds / LIMIT
    ratio = ideal / achieved
    print(f"clips: {args.plates} plate(s) of {WIDTH}x{HEIGHT}, {FPS} fps, {SECONDS:g} s "
          f"(the smallest valid clip); {args.jobs} removal jobs, task {args.task_seconds:g} s, "
          f"limit {LIMIT} per key, {os.cpu_count()} CPU(s)")
    print(f"ideal {ideal:.1f} s (jobs x task seconds / limit), achieved {achieved:.1f} s: "
          f"ratio {ratio:.2f} (minimum {args.min_ratio:g})")
    print(f"tasks created: {len(tasks)} for {args.jobs} jobs; "
          f"retried requests: {sum(j.retries for j in report.jobs)}; CPU seconds: batch "
          f"{client_cpu:.1f}, sandbox {sandbox_cpu:.1f} (whole life)")
    failures = []
    if bad_outputs:
        failures.append(f"{len(bad_outputs)} job(s) without a complete output: "
                        f"{', '.join(bad_outputs[:5])}")
    if len(tasks) != args.jobs or any(n != 1 for n in per_id.values()):
        failures.append("not exactly one task per job")
    if ratio < args.min_ratio:
        failures.append(f"ratio {ratio:.2f} is below {args.min_ratio:g}")
    for failure in failures:
        print(f"FAIL: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
