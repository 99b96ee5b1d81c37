"""Benchmark the job key of a big plate: bounded sampling against hashing the whole file.

A batch checks every job's state file against the job's key before it sends anything, on
every run and every farm machine; the key names local files by content (``job_key``). A
file above ``FULL_HASH_LIMIT`` is fingerprinted from 16 blocks of 1 MiB, so the cost stays
flat whatever the plate's size. This writes a plate of ``--mib`` MiB of random bytes, then
times, best of N, ``file_fingerprint`` (fresh each time: its per-process memo is cleared)
against ``file_sha256`` of the whole file, in the same run, and prints the bytes each reads
and the ratio. Goal: at 1 GiB, the fingerprint at most 0.05x the full hash.

Usage: python scripts/bench_job_key.py [--mib 1024] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from kling_elements import job_key
from kling_elements.hosting.base import file_sha256


def _best(repeats: int, run) -> float:
    best = float("inf")
    for _ in range(repeats):
        job_key._sampled.clear()
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        plate = Path(folder) / "plate.mov"
        with open(plate, "wb") as handle:
            for _ in range(args.mib):
                handle.write(os.urandom(1 << 20))
        size = plate.stat().st_size
        sampled = _best(args.repeats, lambda: job_key.file_fingerprint(plate))
        full = _best(args.repeats, lambda: file_sha256(plate))
    read = min(size, job_key.SAMPLES * job_key.SAMPLE_BYTES) if size > \
        job_key.FULL_HASH_LIMIT else size
    ratio = sampled / full
    print(f"plate {size / 2**20:.0f} MiB: fingerprint reads {read / 2**20:.0f} MiB in "
          f"{sampled * 1000:.1f} ms; whole-file SHA-256 reads {size / 2**20:.0f} MiB in "
          f"{full * 1000:.1f} ms; ratio {ratio:.3f} (goal <= 0.05 at 1 GiB)")
    return 0 if args.mib < 1024 or ratio <= 0.05 else 1


if __name__ == "__main__":
    sys.exit(main())
