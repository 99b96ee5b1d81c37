"""Click segmentation on real photographs at 1280x720: time per click, and the IoU.

For each composite of ``tests/sandbox/photo_composites.py`` rendered at 1280x720, times the
sandbox's click (``vision.segment`` with the clip as context, as add-selection runs it),
first click of a clip (which builds the clip's background models) and a later click, and
as a reference in the same run a textbook GrabCut: one ``cv2.grabCut`` at full resolution
in the object's true bounding box with a 10% margin (5 iterations), i.e. what a click
would cost if it cut at full size and were told where the object is. Prints the ratio
(ours / reference) and both IoUs. Usage: ``python scripts/bench_segment.py [case ...]``.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kling_elements.sandbox import vision
from tests.sandbox.photo_composites import CASES, build

WIDTH, HEIGHT, FRAMES = 1280, 720, 30


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


def textbook_grabcut(frame: np.ndarray, truth: np.ndarray) -> np.ndarray:
    rows, cols = np.nonzero(truth)
    pad_r, pad_c = round(0.1 * np.ptp(rows)), round(0.1 * np.ptp(cols))
    top, left = max(0, rows.min() - pad_r), max(0, cols.min() - pad_c)
    bottom = min(frame.shape[0], rows.max() + pad_r + 1)
    right = min(frame.shape[1], cols.max() + pad_c + 1)
    labels = np.zeros(truth.shape, np.uint8)
    cv2.setRNGSeed(0)
    cv2.grabCut(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), labels,
                (int(left), int(top), int(right - left), int(bottom - top)),
                np.zeros((1, 65)), np.zeros((1, 65)), 5, cv2.GC_INIT_WITH_RECT)
    return (labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)


def main(names: list[str]) -> int:
    firsts, laters, references = [], [], []
    print(f"{'case':28s} {'first':>8s} {'later':>8s} {'textbook':>9s} {'ratio':>6s} "
          f"{'IoU':>6s} {'IoU tb':>6s}")
    for name in names:
        clip = build(name, WIDTH, HEIGHT, FRAMES)
        frame, truth = clip.frames[clip.key], clip.masks[clip.key]
        started = time.perf_counter()
        vision.segment(frame, [clip.click], context=clip.frames)
        first = time.perf_counter() - started
        started = time.perf_counter()
        mask = vision.segment(frame, [clip.click], context=clip.frames)[0]
        later = time.perf_counter() - started
        started = time.perf_counter()
        reference = textbook_grabcut(frame, truth)
        textbook = time.perf_counter() - started
        firsts.append(first)
        laters.append(later)
        references.append(textbook)
        print(f"{name:28s} {first * 1000:6.0f}ms {later * 1000:6.0f}ms {textbook * 1000:7.0f}ms "
              f"{later / textbook:6.2f} {iou(mask, truth):6.3f} {iou(reference, truth):6.3f}",
              flush=True)
    print(f"median per click: first {statistics.median(firsts) * 1000:.0f} ms, later "
          f"{statistics.median(laters) * 1000:.0f} ms; textbook full-size GrabCut "
          f"{statistics.median(references) * 1000:.0f} ms; ratio (later / textbook) "
          f"{statistics.median(laters) / statistics.median(references):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or sorted(CASES)))
