"""Properties of the RLE codec on the inputs an answer can carry: arbitrary strings, mutated
encodings and large sparse masks (the per-boundary decoder), checked against pycocotools.

``tests/core/test_rle.py`` pins byte-identity on small masks; here the question is what a
hostile or corrupt ``counts`` can do. The guarantee: ``decode`` either raises ``ValueError``
(``TypeError`` for a non-string) or returns exactly pycocotools' pixels as a C-ordered 0/1
array of the given size; it never returns garbage, and ``area`` agrees with it.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from kling_elements import rle

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
PROPS = settings(max_examples=150, deadline=None,
                 suppress_health_check=[HealthCheck.function_scoped_fixture])
COUNT_CHARS = st.text(alphabet=[chr(c) for c in range(48, 112)], max_size=40)


@pytest.fixture(scope="module")
def coco():
    return pytest.importorskip("pycocotools.mask")


def _coco_decode(coco, counts: str, size: tuple[int, int]) -> np.ndarray:
    return coco.decode({"size": list(size), "counts": counts.encode()})


def _check_mask(mask: np.ndarray, size: tuple[int, int]) -> None:
    assert mask.shape == size and mask.dtype == np.uint8 and mask.flags.c_contiguous
    assert set(np.unique(mask).tolist()) <= {0, 1}


def _divisor(total: int, pick: int) -> int:
    divisors = [d for d in range(1, min(total, 4096) + 1) if total % d == 0]
    return divisors[pick % len(divisors)]


@PROPS
@given(COUNT_CHARS, st.integers(0, 10_000))
def test_any_counts_string_decodes_exactly_like_pycocotools_or_raises(coco, counts, pick):
    try:
        runs = rle.decode_counts(counts)
    except ValueError:
        return
    total = int(runs.sum())
    assume(0 < total <= 4_000_000)
    h = _divisor(total, pick)
    size = (h, total // h)
    mask = rle.decode(counts, size)
    _check_mask(mask, size)
    assert np.array_equal(mask, _coco_decode(coco, counts, size))
    assert rle.area(counts, size) == int(mask.sum())
    assert np.array_equal(rle.decode(rle.encode(mask)["counts"], size), mask)


@pytest.mark.slow
@PROPS
@given(st.one_of(st.text(max_size=30), st.binary(max_size=30)),
       st.tuples(st.integers(-2, 40), st.integers(-2, 40)))
def test_arbitrary_input_raises_value_error_or_gives_a_valid_mask(counts, size):
    try:
        mask = rle.decode(counts, size)
    except ValueError:
        return
    _check_mask(mask, size)


@PROPS
@given(st.integers(1, 60), st.integers(1, 60), st.integers(0, 2**32 - 1), st.data())
def test_a_mutated_encoding_raises_or_matches_pycocotools(coco, h, w, seed, data):
    rng = np.random.default_rng(seed)
    mask = (rng.random((h, w)) < data.draw(st.floats(0.05, 0.95))).astype(np.uint8)
    counts = rle.encode(mask)["counts"]
    position = data.draw(st.integers(0, len(counts)))
    how = data.draw(st.sampled_from(["replace", "insert", "delete", "truncate"]))
    char = data.draw(st.sampled_from([chr(c) for c in range(48, 112)]))
    if how == "replace" and position < len(counts):
        mutated = counts[:position] + char + counts[position + 1:]
    elif how == "insert":
        mutated = counts[:position] + char + counts[position:]
    elif how == "delete" and position < len(counts):
        mutated = counts[:position] + counts[position + 1:]
    else:
        mutated = counts[:position]
    try:
        decoded = rle.decode(mutated, (h, w))
    except ValueError:
        return
    _check_mask(decoded, (h, w))
    assert np.array_equal(decoded, _coco_decode(coco, mutated, (h, w)))


@st.composite
def sparse_masks(draw):
    """Large masks made of a few rectangles: few boundaries per pixel, the fast decoder."""
    h, w = draw(st.integers(64, 720)), draw(st.integers(64, 1280))
    mask = np.zeros((h, w), np.uint8)
    for _ in range(draw(st.integers(0, 4))):
        y0, x0 = draw(st.integers(0, h - 1)), draw(st.integers(0, w - 1))
        y1, x1 = draw(st.integers(y0, h)), draw(st.integers(x0, w))
        mask[y0:y1, x0:x1] ^= 1
    return mask


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sparse_masks())
def test_large_sparse_masks_round_trip_and_match_pycocotools(coco, mask):
    encoded = rle.encode(mask)
    assert encoded["counts"] == coco.encode(np.asfortranarray(mask))["counts"].decode()
    decoded = rle.decode(encoded["counts"], encoded["size"])
    _check_mask(decoded, mask.shape)
    assert np.array_equal(decoded, mask)
    assert rle.area(encoded["counts"], encoded["size"]) == int(mask.sum())


@PROPS
@given(st.lists(st.integers(0, 5000), min_size=1, max_size=30), st.integers(0, 10_000))
def test_runs_must_cover_the_size_exactly(runs, pick):
    counts = rle.encode_counts(runs)
    total = sum(runs)
    assume(total > 1)
    h = _divisor(total, pick)
    rle.decode(counts, (h, total // h))  # exact cover: fine
    for wrong in ((h, total // h + 1), (h + 1, total // h)):
        with pytest.raises(ValueError, match="cover"):
            rle.decode(counts, wrong)
        with pytest.raises(ValueError, match="cover"):
            rle.area(counts, wrong)


@pytest.mark.slow
@PROPS
@given(sparse_masks(), st.tuples(st.floats(0, 1), st.floats(0, 1), st.floats(0, 1)),
       st.floats(0.004, 1))
def test_the_overlay_is_opaque_exactly_where_the_mask_is(mask, color, opacity):
    layer = rle.overlay_rgba(mask, color, opacity)
    assert layer.shape == (*mask.shape, 4)
    assert np.array_equal(layer[..., 3] > 0, mask != 0)
    assert not layer[mask == 0].any()
