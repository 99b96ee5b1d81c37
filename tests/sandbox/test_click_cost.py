"""What keeps a click cheap: a point already cut is remembered (only on a read-only clip, as
the sandbox decodes them), the frame's features are shared by its points, an object crossing
its own place in the background is cut from its crescent, and the process segments at most
one click per core at a time. Counted in cuts and in concurrent calls, never in seconds."""

from __future__ import annotations

import importlib
import threading
import time

import numpy as np
import pytest

from kling_elements.sandbox import selection, vision
from kling_elements.sandbox.sample import make_clip
from kling_elements.sandbox.video import read_frames
from kling_elements.sandbox.vision import _clicks, grabcut

segment_module = importlib.import_module("kling_elements.sandbox.vision.segment")


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


@pytest.fixture(scope="module")
def clip_frames(tmp_path_factory):
    """The fault campaign's clip: 720x720, 24 fps, 2 s; frames read-only as the sandbox's."""
    clip = make_clip(tmp_path_factory.mktemp("c") / "clip.mp4", 720, 720, 24, 2.0)
    frames, _ = read_frames(clip.path)
    frames.setflags(write=False)
    return clip, frames


@pytest.fixture
def cuts(monkeypatch):
    """The points actually cut (not looked up), in order."""
    made: list[tuple[float, float]] = []
    inner = segment_module._point_region

    def counting(frame, point, *args, **kwargs):
        made.append(point)
        return inner(frame, point, *args, **kwargs)

    monkeypatch.setattr(segment_module, "_point_region", counting)
    return made


def test_a_point_already_cut_on_a_frame_is_not_cut_again(clip_frames, cuts):
    clip, frames = clip_frames
    centre = clip.center(30)
    near = (centre[0] + 0.01, centre[1] - 0.01)
    first = vision.segment(frames[30], [centre], context=frames)
    again = vision.segment(frames[30], [centre, near], context=frames)
    assert cuts == [centre, near]  # the second click cut only its new point
    fresh = vision.segment(frames[30].copy(), [centre, near], context=frames.copy())
    assert len(again) == len(fresh) == 1 and np.array_equal(again[0], fresh[0])
    assert np.array_equal(first[0], vision.segment(frames[30], [centre], context=frames)[0])
    assert iou(again[0], clip.mask(30)) >= 0.95


def test_the_same_point_on_another_frame_or_a_writable_clip_is_cut(clip_frames, cuts):
    clip, frames = clip_frames
    point = clip.center(10)
    vision.segment(frames[10], [point], context=frames)
    vision.segment(frames[11], [point], context=frames)
    writable = frames.copy()
    vision.segment(writable[10], [point], context=writable)
    vision.segment(writable[10], [point], context=writable)
    assert len(cuts) == 4


def test_frame_index_finds_views_only(clip_frames):
    _, frames = clip_frames
    assert _clicks.frame_index(frames[17], frames) == 17
    assert _clicks.frame_index(frames[17].copy(), frames) is None
    assert _clicks.frame_index(frames[17, ::2], frames) is None
    assert _clicks.memory(frames.copy()) is None  # writable: pixels could change


def test_an_object_crossing_its_own_place_is_cut_from_its_crescent(clip_frames, monkeypatch):
    """On frame 20 the ball covers where the background median still shows it: the still
    camera's foreground is a crescent with the click in its gap. It is cut from that
    crescent (one cut), not by appearance alone (squares of four sizes around the click)."""
    clip, frames = clip_frames
    by_appearance = []

    def from_click(frame, row, col, *args, **kwargs):
        by_appearance.append((row, col))
        return np.zeros(frame.shape[:2], bool)

    monkeypatch.setattr(grabcut, "from_click", from_click)
    writable = frames.copy()  # nothing remembered from other tests
    mask = vision.segment(writable[20], [clip.center(20)], context=writable)[0]
    assert not by_appearance
    assert iou(mask, clip.mask(20)) >= 0.95
    # Frame 24: clicks in the gap, one on a speck of foreground, one a few pixels from it.
    for row, col in ((476, 176), (479, 174)):
        assert clip.mask(24)[row, col]
        mask = vision.segment(writable[24], [(col / 719, row / 719)], context=writable)[0]
        assert not by_appearance
        assert iou(mask, clip.mask(24)) >= 0.95, (row, col)


def test_at_most_one_segmentation_per_core_runs_at_once(monkeypatch):
    running, most, lock = [0], [0], threading.Lock()

    def slow_segment(frame, points, context=None, gate=None):
        with gate:
            with lock:
                running[0] += 1
                most[0] = max(most[0], running[0])
            time.sleep(0.02)
            with lock:
                running[0] -= 1
        return [np.ones(frame.shape[:2], bool)]

    class Frames:
        def get(self, path):
            return np.zeros((2, 4, 4, 3), np.uint8), 24.0

    class State:
        frames = Frames()

    class Session:
        video_path = None

    monkeypatch.setattr(selection.vision, "segment", slow_segment)
    limit = selection.SEGMENTATIONS_AT_ONCE
    threads = [threading.Thread(target=selection._segment,
                                args=(State(), Session(), 0, [(0.5, 0.5)]))
               for _ in range(3 * limit + 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert most[0] == limit


def test_a_point_already_cut_does_not_wait_for_a_core(clip_frames):
    """Every core busy with other clicks' cuts: a click whose points were all cut before
    answers at once (its look-ups take no turn); a new point waits for a free core."""
    clip, frames = clip_frames
    point = clip.center(5)
    first = vision.segment(frames[5], [point], context=frames)
    taken = 0
    answers: dict[str, list] = {}

    def click(name: str, index: int, at: tuple[float, float]) -> threading.Thread:
        def run() -> None:
            answers[name] = vision.segment(frames[index], [at], context=frames,
                                           gate=selection._Turn())
        thread = threading.Thread(target=run)
        thread.start()
        return thread

    try:
        for _ in range(selection.SEGMENTATIONS_AT_ONCE):
            assert selection._SEGMENTING.acquire(timeout=10)
            taken += 1
        known = click("known", 5, point)
        new = click("new", 6, clip.center(6))
        known.join(timeout=20)
        assert "known" in answers and np.array_equal(answers["known"][0], first[0])
        new.join(timeout=0.5)
        assert new.is_alive() and "new" not in answers  # waiting for a core
    finally:
        for _ in range(taken):
            selection._SEGMENTING.release()
    new.join(timeout=60)
    assert iou(answers["new"][0], clip.mask(6)) >= 0.95
