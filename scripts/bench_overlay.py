"""The mask overlay of a frame with three objects at Kling's largest sizes: what it costs.

Preparing a frame's overlay (decode, union, colour, sampled down to the texture) runs on a
worker thread (``blender_addon.work.overlay_cache.prepare``), never in the draw callback, which
only takes the ready buffer (``OverlayCache.take``) for its upload. This times, best of N
runs in one process, for three frayed-edge objects on 2160x2160 and 1215x2160 frames:

* the reference: ``rle.decode`` of the same three masks (whole, as a naive overlay would);
* the preparation as the add-on does it now (samples decoded only, on the worker);
* the main-thread path it replaced (whole decode, union, sampling, colour), for the record;
* the draw callback's part of the hand-over: taking the ready buffer (the GPU upload itself
  needs a GPU; ``scripts/bench_ui_thread.py`` times the whole callback's Python work).

Also prints what a prepared buffer costs in memory (ten 2160x2160 frames, the cache's bound).
Goals: the hand-over at most 1 ms on the main thread (the preparation is off it), and the
preparation, which also unions, colours and samples, no dearer than 1.5x decoding the masks
alone (a guard against regressions). The ratio to the reference is printed last.

Usage: python scripts/bench_overlay.py [--repeats N]
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if importlib.util.find_spec("bpy") is None and "blender_addon" not in sys.modules:
    # The add-on's bpy-free modules, without its __init__ (which registers with Blender).
    package = types.ModuleType("blender_addon")
    package.__path__ = [str(ROOT / "blender_addon")]
    sys.modules["blender_addon"] = package

from blender_addon.pure import overlay_layout  # noqa: E402
from blender_addon.work.overlay_cache import (  # noqa: E402
    MAX_BYTES,
    OverlayCache,
    buffer_bytes,
    overlay_key,
    prepare,
)
from kling_elements import rle  # noqa: E402

HANDOVER_GOAL_S = 0.001
PREPARE_RATIO_MAX = 1.5
COLOR, OPACITY = (0.1, 0.9, 0.3), 0.45


def frayed_objects(h: int, w: int, seed: int = 0) -> list[dict]:
    """Three objects as a segmentation model draws them: ellipses with noisy edges."""
    rng = np.random.default_rng(seed)
    yy, xx = np.ogrid[0:h, 0:w]
    masks = []
    for cy, cx, ry, rx in ((0.35, 0.28, 0.16, 0.12), (0.62, 0.6, 0.2, 0.14),
                           (0.22, 0.76, 0.08, 0.08)):
        m = ((yy - cy * h) / (ry * h)) ** 2 + ((xx - cx * w) / (rx * w)) ** 2 <= 1
        edge = m ^ np.roll(m, 3, axis=1) | m ^ np.roll(m, 3, axis=0)
        m ^= edge & (rng.random((h, w)) < 0.3)
        masks.append(rle.encode(m))
    return masks


def old_main_thread_pixels(masks: list[dict]) -> np.ndarray:
    """What the draw callback computed before: every mask decoded whole, then sampled."""
    union = None
    for mask in masks:
        decoded = rle.decode(mask["counts"], tuple(mask["size"]))
        union = decoded if union is None else np.maximum(union, decoded)
    rows, cols = overlay_layout.texture_samples(*union.shape)
    sampled = union.take(rows, axis=0).take(cols, axis=1)
    return rle.overlay_rgba(sampled, COLOR, OPACITY).astype(np.float32) / 255.0


def best_s(fn: Callable[[], object], repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    n = args.repeats
    ratios, ok = {}, True
    for h, w in ((2160, 2160), (1215, 2160)):
        masks = frayed_objects(h, w)
        key = overlay_key("session", 7, masks, COLOR, OPACITY)
        prepared = prepare(key, masks, COLOR, OPACITY)
        np.testing.assert_array_equal(prepared.pixels, old_main_thread_pixels(masks))
        reference = best_s(lambda m=masks: [rle.decode(x["counts"], tuple(x["size"]))
                                            for x in m], n)
        ours = best_s(lambda m=masks, k=key: prepare(k, m, COLOR, OPACITY), n)
        before = best_s(lambda m=masks: old_main_thread_pixels(m), n)
        cache = OverlayCache()

        def hand_over(c=cache, p=prepared) -> None:
            c.put(p)  # on the worker in the add-on; taken below as the draw callback does
            start = time.perf_counter()
            c.take(p.key).pixels.reshape(-1)
            hand_over.taken = time.perf_counter() - start

        takes = []
        for _ in range(n):
            hand_over()
            takes.append(hand_over.taken)
        take = min(takes)
        runs = sum(rle.decode_counts(m["counts"]).size for m in masks)
        th, tw = prepared.pixels.shape[:2]
        print(f"{h}x{w}, 3 objects ({runs} runs), texture {tw}x{th}; best of {n} (ms)")
        print(f"  reference: rle.decode of the 3 masks        {reference * 1e3:7.3f}")
        print(f"  preparation on the worker (prepare)         {ours * 1e3:7.3f}   ratio "
              f"{ours / reference:.2f}")
        print(f"  the main-thread path it replaced            {before * 1e3:7.3f}   ratio "
              f"{before / reference:.2f}")
        print(f"  draw callback's hand-over (take the buffer) {take * 1e3:7.3f}   goal <= "
              f"{HANDOVER_GOAL_S * 1e3:.0f} ms")
        ratios[(h, w)] = ours / reference
        ok &= ours <= PREPARE_RATIO_MAX * reference and take <= HANDOVER_GOAL_S
    frame = buffer_bytes(2160, 2160)
    print(f"memory: a 2160x2160 frame's buffer is {frame / 1e6:.1f} MB (float RGBA, 720x720); "
          f"ten frames {10 * frame / 1e6:.1f} MB if all were waiting; the cache keeps at most "
          f"{MAX_BYTES / 2**20:.0f} MiB ({MAX_BYTES // frame} frames) and a buffer leaves it "
          f"once uploaded (the RGBA8 texture: {frame / 4 / 1e6:.1f} MB of GPU memory)")
    print("OK" if ok else f"FAIL: the hand-over is over {HANDOVER_GOAL_S * 1e3:.0f} ms, or the "
          f"preparation over {PREPARE_RATIO_MAX}x the reference")
    print(f"ratio preparation / rle.decode of the same masks (2160x2160): "
          f"{ratios[(2160, 2160)]:.2f}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
