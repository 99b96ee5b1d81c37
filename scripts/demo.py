"""The main job, offline: a clip, two clicks, a preview, a removal and a swap, a contact sheet;
then a real-world plate (25 fps, 6 s, 640x360) conformed with the core and clicked on.

Runs against the embedded sandbox through the public client only, exactly as a user's
script would against Kling. Usage: ``python scripts/demo.py --out demo-output``.

The demo owns its output folder: each run empties it first (so it can run again and again),
but only a folder it wrote itself (marked by ``.kling-demo``, or holding only its own files)
or an empty one.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

import kling_elements as ke
from kling_elements.conform.cli import describe
from kling_elements.conform.run import conform_file
from kling_elements.hosting import SandboxHost
from kling_elements.media import probe
from kling_elements.sandbox import running
from kling_elements.sandbox.sample import make_clip, make_reference_image
from kling_elements.sandbox.video import read_frames
from kling_elements.validate import video_problems

SHEET_FRAMES = 3
THUMB_WIDTH = 384
MARKER = ".kling-demo"
OUTPUTS = {MARKER, ".sandbox", "clip.mp4", "reference.png", "preview.mp4", "removal.mp4",
           "swap.mp4", "contact_sheet.png", "plate25.mp4", "plate25-conformed.mp4",
           "plate25-conformed.mp4.json"}
"""What the demo writes; a folder holding only these (from a run before the marker) is ours."""
STEPS = 8


def _say(text: str) -> None:
    print(text, flush=True)


def _thumb(frame: np.ndarray) -> Image.Image:
    image = Image.fromarray(frame)
    height = round(image.height * THUMB_WIDTH / image.width)
    return image.resize((THUMB_WIDTH, height), Image.Resampling.BILINEAR)


def contact_sheet(columns: dict[str, list[np.ndarray]], path: Path) -> Path:
    """A grid: one column per stage (before, mask, after...), one row per sampled frame."""
    labels = list(columns)
    thumbs = {k: [_thumb(f) for f in v] for k, v in columns.items()}
    rows = len(next(iter(thumbs.values())))
    th = thumbs[labels[0]][0].height
    header, pad = 28, 6
    sheet = Image.new("RGB", (len(labels) * (THUMB_WIDTH + pad) + pad,
                              header + rows * (th + pad) + pad), (24, 24, 28))
    draw = ImageDraw.Draw(sheet)
    for c, label in enumerate(labels):
        x = pad + c * (THUMB_WIDTH + pad)
        draw.text((x + 4, 8), label, fill=(235, 235, 235))
        for r, thumb in enumerate(thumbs[label]):
            sheet.paste(thumb, (x, header + r * (th + pad)))
    sheet.save(path)
    return path


def claim(out: Path) -> None:
    """Make ``out`` an empty folder of the demo's; refuse a folder with someone else's files."""
    if out.exists() and not out.is_dir():
        raise SystemExit(f"error: --out {out} is a file: choose a folder")
    if out.is_dir() and any(out.iterdir()):
        names = {p.name for p in out.iterdir()}
        if not (out / MARKER).is_file() and not names <= OUTPUTS:
            raise SystemExit(f"error: --out {out} holds files the demo did not write: choose "
                             "an empty or new folder")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("written by scripts/demo.py; emptied on every run\n")


def conform_step(kc: ke.Client, out: Path) -> None:
    """A plate that breaks Kling's rules: conformed (PyAV), then a session and a click on it."""
    _say(f"7/{STEPS} a real-world plate (640x360, 25 fps, 6 s) that Kling would refuse:")
    plate = make_clip(out / "plate25.mp4", width=640, height=360, fps=25, seconds=6.0, seed=3)
    problems = video_problems(probe(plate.path))
    for problem in problems:
        _say(f"      refused as it is: {problem}")
    plan = conform_file(plate.path, out / "plate25-conformed.mp4",
                        on_plan=lambda p: [_say(f"      {line}") for line in describe(p)])
    _say(f"      conformed: {Path(plan.output).name}, {plan.frame_count} frames at {plan.fps} "
         f"fps, {plan.width}x{plan.height}; record: {Path(plan.output).name}.json")
    url = SandboxHost(kc.http).publish(plan.output)
    init = kc.init_selection(video_url=url)
    source_frame = 100  # 4 s into the plate
    frame = plan.output_frame(source_frame)
    sel = kc.add_selection(init.session_id, frame, [plate.center(source_frame)])
    area = sum(int(m.to_array().sum()) for m in sel.masks)
    _say(f"      session {init.session_id}: {init.total_frames} frames at {init.fps:g} fps; "
         f"source frame {source_frame} is session frame {frame}: click on the ball -> "
         f"{len(sel.masks)} object, {area} px")


def run(out: Path, task_seconds: float) -> int:
    claim(out)
    started = time.monotonic()
    _say(f"1/{STEPS} generating a sample clip (1280x720, 30 fps, 5 s) and a reference image")
    clip = make_clip(out / "clip.mp4", width=1280, height=720, fps=30, seconds=5.0, seed=7)
    reference = make_reference_image(out / "reference.png", kind="star")

    with running(task_seconds=task_seconds, data_dir=out / ".sandbox") as sandbox:
        _say(f"2/{STEPS} sandbox running at {sandbox.base_url}")
        with ke.Client(sandbox.access_key, sandbox.secret_key, base_url=sandbox.base_url) as kc:
            url = SandboxHost(kc.http).publish(clip.path)
            init = kc.init_selection(video_url=url)
            _say(f"3/{STEPS} session {init.session_id}: {init.total_frames} frames, "
                 f"{init.width}x{init.height} at {init.fps:g} fps")

            last = init.total_frames - 1
            clicks = [(0, clip.center(0)), (last, clip.center(last))]
            for frame, point in clicks:
                sel = kc.add_selection(init.session_id, frame, [point])
                area = sum(int(m.to_array().sum()) for m in sel.masks)
                _say(f"4/{STEPS} click on frame {frame} at ({point[0]:.3f}, {point[1]:.3f}): "
                     f"{len(sel.masks)} object, {area} px")

            preview = kc.preview_selection(init.session_id)
            kc.download(preview.video_url, out / "preview.mp4")
            _say(f"5/{STEPS} tracked-mask preview saved to {out / 'preview.mp4'}")

            results = {}
            for edit_mode, prompt, images in (
                ("removal", "Delete the orange ball from <<<video_1>>>", []),
                ("swap", "swap the star from <<<image_1>>> for the ball from <<<video_1>>>",
                 [reference]),
            ):
                task = kc.create_task(session_id=init.session_id, edit_mode=edit_mode,
                                      prompt=prompt, images=images)
                _say(f"6/{STEPS} {edit_mode} task {task.task_id} submitted")
                task = kc.wait(task.task_id, timeout=120, poll_interval=0.5,
                               on_update=lambda t: _say(f"      status: {t.status}"))
                results[edit_mode] = kc.download(task.videos[0].url, out / f"{edit_mode}.mp4")
                _say(f"      result: {results[edit_mode]}")
            conform_step(kc, out)

    source, _ = read_frames(clip.path)
    preview_frames, _ = read_frames(out / "preview.mp4")
    removal, _ = read_frames(results["removal"])
    swap, _ = read_frames(results["swap"])
    picks = np.linspace(0, len(source) - 1, SHEET_FRAMES).round().astype(int)
    sheet = contact_sheet({
        "before": [source[i] for i in picks],
        "mask (tracked preview)": [preview_frames[i] for i in picks],
        "removal": [removal[i] for i in picks],
        "swap": [swap[i] for i in picks],
    }, out / "contact_sheet.png")
    _say(f"8/{STEPS} contact sheet: {sheet}")
    _say(f"done in {time.monotonic() - started:.1f} s; outputs in {out.resolve()}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("demo-output"))
    parser.add_argument("--task-seconds", type=float, default=2.0)
    args = parser.parse_args()
    return run(args.out, args.task_seconds)


if __name__ == "__main__":
    sys.exit(main())
