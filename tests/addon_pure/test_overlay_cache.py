"""Overlays prepared off the main thread: the right pixels, under the right key, bounded.

The draw callback only uploads what ``overlay_cache`` holds, so these tests pin what a
prepared buffer contains (the full decode's union, sampled at texel centres and coloured as
an RGBA8 texture stores it), what its key depends on, and that the cache never grows past
its bound. Run without Blender (see conftest.py).
"""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from blender_addon.pure import overlay_layout
from blender_addon.work import session_calls as jobs
from blender_addon.work.overlay_cache import (
    MAX_BYTES,
    OverlayCache,
    Prepared,
    buffer_bytes,
    colour_key,
    overlay_key,
    prepare,
)
from kling_elements import rle

GREEN, OPACITY = (0.1, 0.9, 0.3), 0.45


def _full_decode_pixels(masks, color, opacity) -> np.ndarray:
    """What the overlay showed before preparation moved off the main thread: every mask
    decoded whole, the union sampled at texel centres, coloured, as floats."""
    union = np.maximum.reduce([rle.decode(m["counts"], tuple(m["size"])) for m in masks])
    rows, cols = overlay_layout.texture_samples(*union.shape)
    sampled = union[np.ix_(rows, cols)]
    return rle.overlay_rgba(sampled, color, opacity).astype(np.float32) / 255.0


def _ellipse(h: int, w: int, cy: float, cx: float, ry: float, rx: float) -> np.ndarray:
    yy, xx = np.ogrid[0:h, 0:w]
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1


def _frame(h: int, w: int) -> list[dict]:
    shapes = [(0.3, 0.25, 0.15, 0.1), (0.6, 0.6, 0.12, 0.2), (0.2, 0.8, 0.05, 0.05)]
    return [rle.encode(_ellipse(h, w, cy * h, cx * w, ry * h, rx * w))
            for cy, cx, ry, rx in shapes]


@pytest.mark.parametrize(("h", "w"), [(2160, 2160), (1215, 2160), (2160, 1215), (720, 1280),
                                      (7, 5)])
def test_a_prepared_frame_shows_what_decoding_every_mask_whole_would(h, w):
    masks = _frame(h, w)
    key = overlay_key("s", 3, masks, GREEN, OPACITY)
    prepared = prepare(key, masks, GREEN, OPACITY)
    expected = _full_decode_pixels(masks, GREEN, OPACITY)
    assert prepared.key == key
    assert prepared.pixels.dtype == np.float32 and prepared.pixels.flags.c_contiguous
    assert prepared.pixels.shape == expected.shape
    assert max(expected.shape[:2]) <= overlay_layout.TEXTURE_MAX_SIDE
    np.testing.assert_array_equal(prepared.pixels, expected)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 40), st.integers(1, 40), st.integers(1, 4), st.integers(4, 16),
       st.data())
def test_property_union_and_sampling_match_the_full_decode(h, w, count, side, data):
    shape = hnp.arrays(np.bool_, (h, w))
    masks = [rle.encode(data.draw(shape)) for _ in range(count)]
    with pytest.MonkeyPatch.context() as patch:  # small textures: sampling on every axis
        patch.setattr(overlay_layout, "TEXTURE_MAX_SIDE", side)
        got = overlay_layout.mask_pixels(masks, (1.0, 0.5, 0.0), 0.8)
        expected = _full_decode_pixels(masks, (1.0, 0.5, 0.0), 0.8)
    np.testing.assert_array_equal(got, expected)


def test_masks_of_different_sizes_cannot_be_overlaid():
    masks = [rle.encode(np.ones((4, 6), bool)), rle.encode(np.ones((6, 4), bool))]
    with pytest.raises(ValueError, match=r"different sizes \[\(4, 6\), \(6, 4\)\]"):
        overlay_layout.mask_union(masks)


def test_no_mask_prepares_nothing():
    assert prepare(overlay_key("s", 0, [], GREEN, OPACITY), [], GREEN, OPACITY) is None


def test_the_key_names_session_frame_masks_and_the_colour_as_stored():
    masks = _frame(40, 60)
    key = overlay_key("s", 3, masks, GREEN, OPACITY)
    assert overlay_key("s", 3, [dict(m) for m in masks], GREEN, OPACITY) == key
    assert overlay_key("t", 3, masks, GREEN, OPACITY) != key
    assert overlay_key("s", 4, masks, GREEN, OPACITY) != key
    assert overlay_key("s", 3, masks[:2], GREEN, OPACITY) != key
    assert overlay_key("s", 3, masks, (0.1, 0.9, 0.31), OPACITY) != key
    # A change an 8-bit texture cannot show is the same overlay.
    assert overlay_key("s", 3, masks, (0.1 + 1e-4, 0.9, 0.3), OPACITY) == key
    assert colour_key(GREEN, OPACITY) == (26, 230, 76, 115)


def _prepared(name: str, frame: int = 0, side: int = 8) -> Prepared:
    return Prepared((name, frame, (), (0, 0, 0, 0)), np.zeros((side, side, 4), np.float32))


def test_the_cache_keeps_at_most_its_bound_dropping_the_oldest():
    one = _prepared("a").nbytes
    cache = OverlayCache(max_bytes=3 * one)
    for name in "abcd":
        cache.put(_prepared(name))
    assert len(cache) == 3 and cache.nbytes == 3 * one
    assert not cache.ready(_prepared("a").key)
    assert all(cache.ready(_prepared(n).key) for n in "bcd")
    cache.put(_prepared("b"))  # stored again: newest now
    cache.put(_prepared("e"))
    assert not cache.ready(_prepared("c").key) and cache.ready(_prepared("b").key)


def test_a_buffer_larger_than_the_bound_is_still_kept_alone():
    cache = OverlayCache(max_bytes=10)
    cache.put(_prepared("a"))
    cache.put(_prepared("b"))
    assert len(cache) == 1 and cache.ready(_prepared("b").key)


def test_taking_a_buffer_hands_it_over():
    cache = OverlayCache()
    cache.put(_prepared("a"))
    taken = cache.take(_prepared("a").key)
    assert taken is not None and taken.key == _prepared("a").key
    assert cache.take(_prepared("a").key) is None
    assert len(cache) == 0 and cache.nbytes == 0


def test_a_missing_buffer_is_asked_for_once_and_a_newer_request_wins():
    cache = OverlayCache()
    old, new = ("s", 2, (), (1, 1, 1, 1)), ("s", 2, (), (2, 2, 2, 2))
    assert cache.claim(old) is True
    assert cache.claim(old) is False  # already on its way
    assert cache.wanted(old)
    assert cache.claim(new) is True
    assert not cache.wanted(old) and cache.wanted(new)  # the old one is skipped
    cache.unclaim(old)
    cache.put(Prepared(new, np.zeros((1, 1, 4), np.float32)))
    assert cache.claim(new) is False  # ready: nothing to ask for
    cache.take(new)
    assert cache.claim(new) is True  # taken and gone: a later draw may ask again
    assert cache.wanted(("s", 9, (), (0, 0, 0, 0)))  # nobody asked for another frame


def test_ten_2160_frames_cost_83_mb_and_the_bound_keeps_four():
    assert buffer_bytes(2160, 2160) == 720 * 720 * 4 * 4 == 8_294_400
    assert buffer_bytes(1215, 2160) == 405 * 720 * 16
    assert 10 * buffer_bytes(2160, 2160) == 82_944_000
    cache = OverlayCache()
    masks = _frame(2160, 2160)
    for frame in range(10):
        cache.put(prepare(overlay_key("s", frame, masks, GREEN, OPACITY), masks, GREEN,
                          OPACITY))
    assert len(cache) == 4 and cache.nbytes <= MAX_BYTES  # 32 MiB: four 8.3 MB buffers


def test_threads_putting_while_the_main_thread_takes_keep_the_count_right():
    cache = OverlayCache(max_bytes=10**9)
    names = [f"n{i}" for i in range(400)]

    def put(part: list[str]) -> None:
        for name in part:
            cache.put(_prepared(name))

    threads = [threading.Thread(target=put, args=(names[i::4],)) for i in range(4)]
    for thread in threads:
        thread.start()
    taken = 0
    while any(t.is_alive() for t in threads) or len(cache):
        for name in names:
            taken += cache.take(_prepared(name).key) is not None
    for thread in threads:
        thread.join()
    assert taken == 400 and cache.nbytes == 0


def test_a_selection_answer_carries_the_json_and_the_frames_overlay():
    masks = _frame(90, 160)
    state = {"session_id": "s1", "points": {"4": [[0.5, 0.5]]},
             "masks": {"4": masks, "7": masks[:1]}}
    answer = jobs.selection_answer(state, 4, (GREEN, OPACITY))
    assert answer.session_id == "s1" and json.loads(answer.text) == state
    assert answer.overlay.key == overlay_key("s1", 4, masks, GREEN, OPACITY)
    np.testing.assert_array_equal(answer.overlay.pixels,
                                  _full_decode_pixels(masks, GREEN, OPACITY))
    assert jobs.selection_answer(state, 4).overlay is None  # no Preview to show it
    assert jobs.selection_answer(state, 5, (GREEN, OPACITY)).overlay is None  # no masks
    assert jobs.selection_answer(state, None, (GREEN, OPACITY)).overlay is None
