"""The main job, offline: a clip, two clicks, a preview, a removal and a swap, a contact sheet.

Runs against the embedded sandbox through the public client only, exactly as a user's
script would against Kling. Usage: ``python scripts/demo.py --out demo-output``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

import kling_elements as ke
from kling_elements.hosting import SandboxHost
from kling_elements.sandbox import running
from kling_elements.sandbox.sample import make_clip, make_reference_image
from kling_elements.sandbox.video import read_frames

SHEET_FRAMES = 3
THUMB_WIDTH = 384


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


def run(out: Path, task_seconds: float) -> int:
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    _say("1/7 generating a sample clip (1280x720, 30 fps, 5 s) and a reference image")
    clip = make_clip(out / "clip.mp4", width=1280, height=720, fps=30, seconds=5.0, seed=7)
    reference = make_reference_image(out / "reference.png", kind="star")

    with running(task_seconds=task_seconds, data_dir=out / ".sandbox") as sandbox:
        _say(f"2/7 sandbox running at {sandbox.base_url}")
        with ke.Client(sandbox.access_key, sandbox.secret_key, base_url=sandbox.base_url) as kc:
            url = SandboxHost(kc.http).publish(clip.path)
            init = kc.init_selection(video_url=url)
            _say(f"3/7 session {init.session_id}: {init.total_frames} frames, "
                 f"{init.width}x{init.height} at {init.fps:g} fps")

            last = init.total_frames - 1
            clicks = [(0, clip.center(0)), (last, clip.center(last))]
            for frame, point in clicks:
                sel = kc.add_selection(init.session_id, frame, [point])
                area = sum(int(m.to_array().sum()) for m in sel.masks)
                _say(f"4/7 click on frame {frame} at ({point[0]:.3f}, {point[1]:.3f}): "
                     f"{len(sel.masks)} object, {area} px")

            preview = kc.preview_selection(init.session_id)
            kc.download(preview.video_url, out / "preview.mp4")
            _say(f"5/7 tracked-mask preview saved to {out / 'preview.mp4'}")

            results = {}
            for edit_mode, prompt, images in (
                ("removal", "Delete the orange ball from <<<video_1>>>", []),
                ("swap", "swap the star from <<<image_1>>> for the ball from <<<video_1>>>",
                 [reference]),
            ):
                task = kc.create_task(session_id=init.session_id, edit_mode=edit_mode,
                                      prompt=prompt, images=images)
                _say(f"6/7 {edit_mode} task {task.task_id} submitted")
                task = kc.wait(task.task_id, timeout=120, poll_interval=0.5,
                               on_update=lambda t: _say(f"      status: {t.status}"))
                results[edit_mode] = kc.download(task.videos[0].url, out / f"{edit_mode}.mp4")
                _say(f"      result: {results[edit_mode]}")

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
    _say(f"7/7 contact sheet: {sheet}")
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
