"""Benchmark the core's conform (PyAV) against a plain PyAV decode -> encode loop.

For each size asked (1080p; 4K UHD with ``--uhd``) a 25 fps, 10.4 s H.264 source of moving
texture is generated once. The conform (``conform_file``: probe, plan, the render with its
frame choice, fsync, rename and record) turns it into Kling's 24 fps, 10 s clip (240 frames;
4K also scaled to 2160x1216). The reference, in the same process, decodes the same source
frames and encodes the same 240 output frames with the same encoder settings, at the same
size, and nothing else: the codec's cost. Runs alternate which goes first; the ratio is the
median over the back-to-back pairs. The plan's work should cost little beyond the codec's:
the goal is a ratio of at most 1.2.

Usage: python scripts/bench_conform.py [--repeats N] [--uhd] [--seconds S]
Prints the ratio (worst size) last; exits 1 when it is above the goal.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

try:
    import av
except ImportError:  # pragma: no cover - the video extra installs it
    sys.exit("PyAV is needed for the benchmark: pip install -e '.[video]'")

from kling_elements.conform import ConformPlan, read_record
from kling_elements.conform.render import encoder_options
from kling_elements.conform.run import conform_file

GOAL = 1.2
SOURCE_FPS = 25


def make_source(path: Path, width: int, height: int, seconds: float) -> Path:
    """Moving noise texture with a drifting gradient: real work for the encoder."""
    rng = np.random.default_rng(1)
    tile = rng.integers(0, 256, (height // 8 + 2, width // 8 + 2, 3), dtype=np.uint8)
    texture = np.kron(tile, np.ones((8, 8, 1), np.uint8))
    ramp = np.linspace(0, 60, width, dtype=np.float32)[None, :, None]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=SOURCE_FPS)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "23"}
        for i in range(round(seconds * SOURCE_FPS)):
            shift = 3 * i
            picture = texture[(shift // 2) % 8:(shift // 2) % 8 + height, shift % 16:
                              shift % 16 + width]
            picture = np.clip(picture * 0.7 + ramp + (i % 50), 0, 255).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(picture), format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def reference(source: Path, target: Path, frames: list[int], width: int, height: int,
              fps: int, options: dict[str, str]) -> None:
    """The codec's cost: decode the source frames, encode ``len(frames)`` output frames."""
    with av.open(str(source)) as src, av.open(str(target), "w", format="mp4") as dst:
        stream = src.streams.video[0]
        stream.thread_type = "AUTO"
        source_pixels = stream.codec_context.width * stream.codec_context.height
        interpolation = "AREA" if width * height < source_pixels else "BICUBIC"
        out = dst.add_stream("libx264", rate=fps)
        out.width, out.height, out.pix_fmt = width, height, "yuv420p"
        out.options = options
        out.codec_context.time_base = Fraction(1, fps)
        k = 0
        for index, frame in enumerate(src.decode(stream)):
            if frames[k] != index:
                continue
            picture = frame.reformat(width, height, "yuv420p", interpolation=interpolation)
            while k < len(frames) and frames[k] == index:
                picture.pts = k
                picture.time_base = out.codec_context.time_base
                dst.mux(out.encode(picture))
                k += 1
            if k == len(frames):
                break
        dst.mux(out.encode(None))


def bench(label: str, width: int, height: int, seconds: float, repeats: int,
          folder: Path) -> float:
    source = make_source(folder / f"source-{label}.mp4", width, height, seconds)
    conform_times: list[float] = []
    reference_times: list[float] = []
    plan: ConformPlan | None = None
    conform_file(source, folder / f"warm-up-{label}.mp4", end="2.2", force=True)  # untimed
    for i in range(repeats):
        def run_conform(i: int = i) -> ConformPlan:
            started = time.perf_counter()
            done = conform_file(source, folder / f"conformed-{label}-{i}.mp4", force=True)
            conform_times.append(time.perf_counter() - started)
            assert read_record(done.output) == done
            return done

        def run_reference(plan: ConformPlan, i: int = i) -> None:
            started = time.perf_counter()
            reference(source, folder / f"reference-{label}-{i}.mp4", plan.source_frames(),
                      plan.width, plan.height, plan.fps, encoder_options(plan))
            reference_times.append(time.perf_counter() - started)

        if plan is None or i % 2 == 0:  # alternate which goes first: caches, clock speed
            plan = run_conform()
            run_reference(plan)
        else:
            run_reference(plan)
            run_conform()
    assert plan is not None
    same = (folder / f"conformed-{label}-0.mp4").read_bytes() == (
        folder / f"reference-{label}-0.mp4").read_bytes()
    best_conform, best_reference = min(conform_times), min(reference_times)
    # Each pair ran back to back: the median of their ratios cancels slow swings of the load
    # of a shared machine better than a ratio of two minima taken minutes apart.
    ratio = statistics.median(c / r for c, r in zip(conform_times, reference_times,
                                                    strict=True))
    print(f"{label}: {width}x{height} {SOURCE_FPS} fps {seconds:g} s -> {plan.width}x"
          f"{plan.height} {plan.fps} fps, {plan.frame_count} frames: conform "
          f"{best_conform:.2f} s ({plan.frame_count / best_conform:.1f} fps), plain PyAV "
          f"loop {best_reference:.2f} s (best of {repeats}); ratio {ratio:.2f} (median of the "
          f"pairs; outputs "
          f"{'byte-identical' if same else 'differ'})", flush=True)
    return ratio


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10.4,
                        help="source length (the conformed clip is at most 10 s)")
    parser.add_argument("--uhd", action="store_true", help="also 3840x2160 (slow)")
    args = parser.parse_args()
    sizes = [("1080p", 1920, 1080)] + ([("4K UHD", 3840, 2160)] if args.uhd else [])
    with tempfile.TemporaryDirectory(prefix="bench-conform-") as tmp:
        ratios = [bench(label, w, h, args.seconds, args.repeats, Path(tmp))
                  for label, w, h in sizes]
    worst = max(ratios)
    print(f"conform / plain PyAV decode->encode: {worst:.2f}x (goal <= {GOAL}x)")
    return 0 if worst <= GOAL else 1


if __name__ == "__main__":
    sys.exit(main())
