"""Benchmark kling_elements.rle against pycocotools on selection masks of Kling's largest sizes.

Builds realistic masks (filled ellipses whose edges are frayed by noise, the way a
segmentation model's mask looks) at 2160x2160, the largest frame Kling accepts, and at
2160x3840; checks that both libraries agree on each, then times decode and encode, best of N
runs each, in the same process. Goals: at 2160x2160, decode and encode each at most 0.5x
pycocotools; at 2160x3840, decode at most 1.5x.

pycocotools' decode returns a Fortran-ordered array; it is timed as is (its raw speed, the
ratio judged) and, for reference, followed by ``np.ascontiguousarray`` (what a caller
needing the usual C layout pays). Ours always returns a C-contiguous array. Encoding takes
the C-ordered masks segmentation produces: pycocotools needs them in Fortran order, so the
judged reference is ``asfortranarray`` then encode; its speed on a mask already in Fortran
order is printed too.

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

# (height, width): the judged ratios (decode, encode) at that size; None: not judged.
CASES = (((2160, 2160), (0.5, 0.5)), ((2160, 3840), (1.5, None)))


def realistic_mask(h: int = 2160, w: int = 3840, seed: int = 0) -> np.ndarray:
    """Blobs laid out on a 2160x3840 frame, scaled to ``(h, w)``."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    sy, sx = h / 2160, w / 3840
    m = np.zeros((h, w), dtype=bool)
    for cy, cx, ry, rx in [
        (800, 1200, 420, 600),
        (1500, 2800, 300, 520),
        (500, 3000, 200, 260),
        (1750, 650, 260, 420),
        (1100, 1900, 150, 150),
    ]:
        m |= ((yy - cy * sy) / (ry * sy)) ** 2 + ((xx - cx * sx) / (rx * sx)) ** 2 <= 1
    m[round(1200 * sy):round(1260 * sy), round(300 * sx):round(3500 * sx)] = True  # a bar
    edge = m ^ np.roll(m, 3, axis=1) | m ^ np.roll(m, 3, axis=0)
    m ^= edge & (rng.random((h, w)) < 0.3)
    return m.astype(np.uint8)


def best_ms(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up: first-touch page faults, caches
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times) * 1e3


def measure(h: int, w: int, n: int) -> tuple[float, float]:
    """Print the timings at ``(h, w)``; return the judged (decode, encode) ratios."""
    mask = realistic_mask(h, w)
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
    print(f"mask {h}x{w}, {int(mask.sum())} pixels set, {n_runs} runs, {len(counts)} chars")

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
    return t_ours / t_coco, t_enc / t_coco_enc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()

    ok = True
    judged = {}
    for (h, w), limits in CASES:
        ratios = measure(h, w, args.repeats)
        for what, ratio, limit in zip(("decode", "encode"), ratios, limits, strict=True):
            if limit is None:
                continue
            passed = ratio <= limit
            ok &= passed
            judged[(h, w, what)] = ratio
            print(f"{'OK' if passed else 'FAIL'}: {what} ratio {ratio:.2f} at {h}x{w} "
                  f"(max {limit})")
    worst = max(judged[(2160, 2160, what)] for what in ("decode", "encode"))
    print(f"ratio ours / pycocotools at 2160x2160 (the slower of decode and encode): "
          f"{worst:.2f}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
