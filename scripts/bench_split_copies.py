"""What the depsgraph handler that splits duplicated strips costs per update, with no copy.

``live_sync.split_new_copies`` runs after every depsgraph update (any operator, any edit of
a property), so its cost when there is nothing to split is paid all the time. Runs under
the ``bpy`` wheel, e.g. ``~/.cache/kling-elements/bpy-5.3.0/bin/python
scripts/bench_split_copies.py``: a scene with N movie strips, every one keyed (the worst
case: each holds a Kling key), timed against the same strips merely iterated with their
name read (the least any per-strip handler does). Prints both and their ratio.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "core"), str(ROOT)]

import bpy  # noqa: E402


def _median_ms(run, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strips", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()

    import addon_utils

    from kling_elements.sandbox.sample import make_clip

    addon_utils.enable("blender_addon", default_set=True, handle_error=None)
    from blender_addon import compat
    from blender_addon.bridge import live_sync

    clip = make_clip(Path(tempfile.mkdtemp()) / "clip.mp4", width=320, height=240, fps=30,
                     seconds=1.0, seed=1)
    bpy.ops.wm.read_homefile(use_empty=True)
    editor = bpy.context.scene.sequence_editor_create()
    for n in range(args.strips):
        strip = compat.new_movie(editor, f"s{n}", str(clip.path), 1 + n % 100, 1 + 40 * (n // 100))
        strip.kling.live_key = uuid.uuid4().hex
    live_sync.rebuild()
    assert live_sync.split_copies() == []

    def reference() -> None:
        for strip in live_sync.movie_strips():
            strip.name  # noqa: B018

    ref_ms = _median_ms(reference, args.repeats)
    split_ms = _median_ms(live_sync.split_new_copies, args.repeats)
    print(f"{args.strips} keyed movie strips, median of {args.repeats} runs")
    print(f"reference (iterate, read name): {ref_ms:.3f} ms")
    print(f"split_new_copies (nothing to split): {split_ms:.3f} ms")
    print(f"ratio: {split_ms / ref_ms:.2f}")


if __name__ == "__main__":
    main()
