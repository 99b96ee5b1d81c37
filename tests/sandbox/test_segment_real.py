"""Click segmentation and tracking on real photographs, scored against exact masks.

Each case moves an object cut out of one of scikit-image's photographs over another
(``photo_composites``) and goes through H.264, as clips reach the sandbox. The click is the
object's deepest pixel on frame ``count // 3``, segmented with the whole clip as context
(as the sandbox's add-selection does) and tracked from that mask to every other frame (as
its preview and edits do).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from kling_elements.sandbox import vision
from kling_elements.sandbox.vision import grabcut

from .photo_composites import CASES, build

pytestmark = pytest.mark.slow  # real photographs through GrabCut: seconds per case

CLICKED_IOU = 0.8
TRACKED_IOU = 0.7

# Known limitation, kept visible: while the camera pans, the furry horse passes in front of
# a cream-coloured rocket that touches it; colour alone cannot tell them apart and the
# pan's compensation is not sharp enough to (clicked ~0.72-0.76, tracked ~0.69).
HARD = {"horse-camera-pans"}


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


@pytest.fixture(scope="module", params=sorted(CASES))
def result(request):
    """One case: the clip, the clicked frame's mask and the tracked masks."""
    clip = build(request.param)
    mask = vision.segment(clip.frames[clip.key], [clip.click], context=clip.frames)[0]
    tracked = vision.track(clip.frames, {clip.key: mask})
    return clip, mask, tracked


def _known_hard(request, name: str) -> None:
    if name in HARD:
        request.applymarker(pytest.mark.xfail(reason="object touches a same-coloured rocket "
                                              "during a pan", strict=False))


def test_the_click_selects_the_whole_object(result, request):
    clip, mask, _ = result
    _known_hard(request, clip.name)
    assert mask.shape == clip.masks[clip.key].shape and mask.dtype == bool
    score = iou(mask, clip.masks[clip.key])
    assert score >= CLICKED_IOU, f"{clip.name}: clicked-frame IoU {score:.3f}"


def test_the_selection_follows_the_object(result, request):
    clip, _, tracked = result
    _known_hard(request, clip.name)
    assert np.array_equal(tracked[clip.key], result[1])
    scores = [iou(tracked[i], clip.masks[i]) for i in range(len(clip.frames)) if i != clip.key]
    assert np.mean(scores) >= TRACKED_IOU, f"{clip.name}: tracked IoU {np.mean(scores):.3f}"
    assert min(scores) >= 0.5, f"{clip.name}: worst tracked frame IoU {min(scores):.3f}"


def test_a_mouth_moving_on_a_still_face_selects_the_face():
    """The issue's rabbit: only a mouth-sized patch moves, and the click is on it. The
    moving patch is a hint that grows to the whole face, not the selection itself."""
    clip = build("still-cat-chews")
    frames, key = clip.frames, clip.key
    moving = np.abs(frames[key].astype(int) - frames[key + 3].astype(int)).sum(-1) > 40
    assert 0 < moving.sum() < 0.25 * clip.masks[key].sum()  # the patch, not the face, moves
    mask = vision.segment(frames[key], [clip.click], context=frames)[0]
    assert mask.sum() > 3 * moving.sum()
    assert iou(mask, clip.masks[key]) >= CLICKED_IOU


def test_a_still_object_without_context_is_cut_by_appearance():
    """No video to learn motion from: the squares around the click and GrabCut alone."""
    clip = build("cup-camera-pans")
    frame = clip.frames[clip.key]
    mask = vision.segment(frame, [clip.click])[0]
    assert iou(mask, clip.masks[clip.key]) >= CLICKED_IOU


def test_segmentation_and_tracking_are_deterministic():
    clip = build("cat-face-on-motorcycle", count=20)
    first = vision.segment(clip.frames[clip.key], [clip.click], context=clip.frames)[0]
    again = vision.segment(clip.frames[clip.key], [clip.click], context=clip.frames.copy())[0]
    assert np.array_equal(first, again)
    a = vision.track(clip.frames, {clip.key: first})
    b = vision.track(clip.frames.copy(), {clip.key: first})
    assert np.array_equal(a, b)


def test_refine_keeps_the_core_and_recovers_a_slipped_outline():
    """A mask shifted off the object by a few pixels is pulled back onto it, and the cut
    never leaves the band around the mask it was given."""
    clip = build("astronaut-at-launch", count=12)
    truth = clip.masks[clip.key]
    slipped = np.roll(truth, 6, axis=1)
    refined = grabcut.refine(clip.frames[clip.key], slipped)
    assert iou(refined, truth) > iou(slipped, truth) + 0.02
    rows, cols = np.nonzero(slipped)
    size = max(np.ptp(rows), np.ptp(cols))
    far = ~ndimage.binary_dilation(slipped, iterations=round(0.3 * size))
    assert not (refined & far).any()
