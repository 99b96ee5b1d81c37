"""Benchmark kling_elements.rle against pycocotools on a 4K selection mask.

Builds a realistic 2160x3840 mask (filled ellipses whose edges are frayed by noise, the way
a segmentation model's mask looks), checks that both libraries agree on it, then times
decode and encode, best of N runs each, in the same process. Exits 1 if our decode takes
more than 1.5x pycocotools' decode.

pycocotools' decode returns a Fortran-ordered array; it is timed as is (its raw speed) and,
for reference, followed by ``np.ascontiguousarray`` (what a caller needing the usual
C layout pays). Ours always returns a C-contiguous array.

Usage: python scripts/bench_rle.py [--repeats N]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

import numpy as np

try:
    from pycocotools import mask as coco
except ImportError:  # pragma: no cover - the dev extra installs it
    sys.exit("pycocotools is needed for the benchmark: pip install -e '.[dev]'")

from kling_elements import rle

MAX_DECODE_RATIO = 1.5
H, W = 2160, 3840


def realistic_mask(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:H, 0:W]
    m = np.zeros((H, W), dtype=bool)
    for cy, cx, ry, rx in [
        (800, 1200, 420, 600),
        (1500, 2800, 300, 520),
        (500, 3000, 200, 260),
        (1750, 650, 260, 420),
        (1100, 1900, 150, 150),
    ]:
        m |= ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
    m[1200:1260, 300:3500] = True  # a thin horizontal bar joining blobs
    edge = m ^ np.roll(m, 3, axis=1) | m ^ np.roll(m, 3, axis=0)
    m ^= edge & (rng.random((H, W)) < 0.3)
    return m.astype(np.uint8)


def best_ms(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up: first-touch page faults, caches
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times) * 1e3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    n = args.repeats

    mask = realistic_mask()
    mask_f = np.asfortranarray(mask)
    ref = coco.encode(mask_f)
    counts = ref["counts"].decode()
    size = tuple(ref["size"])

    # Agreement first: timing a wrong answer would be meaningless.
    assert rle.encode(mask)["counts"] == counts, "encode differs from pycocotools"
    ours_mask = rle.decode(counts, size)
    assert ours_mask.flags.c_contiguous
    assert np.array_equal(ours_mask, coco.decode(ref)), "decode differs from pycocotools"

    n_runs = rle.decode_counts(counts).size
    print(f"mask {H}x{W}, {int(mask.sum())} pixels set, {n_runs} runs, {len(counts)} chars")

    t_ours = best_ms(lambda: rle.decode(counts, size), n)
    t_coco = best_ms(lambda: coco.decode(ref), n)
    t_coco_c = best_ms(lambda: np.ascontiguousarray(coco.decode(ref)), n)
    t_enc = best_ms(lambda: rle.encode(mask), n)
    t_coco_enc = best_ms(lambda: coco.encode(np.asfortranarray(mask)), n)
    t_coco_enc_f = best_ms(lambda: coco.encode(mask_f), n)

    rows = [
        ("decode", t_ours, "pycocotools (Fortran-ordered result)", t_coco),
        ("decode", t_ours, "pycocotools + ascontiguousarray", t_coco_c),
        ("encode C-order mask", t_enc, "pycocotools + asfortranarray", t_coco_enc),
        ("encode C-order mask", t_enc, "pycocotools on a ready Fortran mask", t_coco_enc_f),
    ]
    print(f"best of {n} runs (ms)")
    for what, ours, name, theirs in rows:
        line = f"{what:20s} ours {ours:7.2f}   {name:38s} {theirs:7.2f}"
        print(f"  {line}   ratio {ours / theirs:.2f}")

    ratio = t_ours / t_coco
    if ratio > MAX_DECODE_RATIO:
        print(f"FAIL: decode ratio {ratio:.2f} > {MAX_DECODE_RATIO}")
        return 1
    print(f"OK: decode ratio {ratio:.2f} <= {MAX_DECODE_RATIO}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
