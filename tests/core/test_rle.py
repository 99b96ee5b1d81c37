"""COCO compressed RLE: byte-identical to pycocotools, strict on malformed input."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from kling_elements import rle

# pycocotools' decode trips numpy 2's __array__(copy=...) deprecation; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


@pytest.fixture(scope="module")
def coco():
    return pytest.importorskip("pycocotools.mask")


@pytest.fixture(params=["auto", "per-boundary", "transposing"])
def strategy(request, monkeypatch):
    """Run a test with rle's automatic choice, and with each of its two strategies forced."""
    forced = {"per-boundary": math.inf, "transposing": 0.0}.get(request.param)
    if forced is not None:
        monkeypatch.setattr(rle, "_DENSE_BOUNDARIES_PER_PIXEL", forced)
    return request.param


def coco_counts(coco, mask: np.ndarray) -> str:
    return coco.encode(np.asfortranarray(mask.astype(np.uint8)))["counts"].decode()


def coco_decode(coco, counts: str, size: tuple[int, int]) -> np.ndarray:
    return coco.decode({"size": list(size), "counts": counts.encode()})


def blobs(rng: np.random.Generator, h: int, w: int, n: int = 4) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    m = np.zeros((h, w), dtype=bool)
    for _ in range(n):
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        ry, rx = rng.uniform(1, h / 2 + 1), rng.uniform(1, w / 2 + 1)
        m ^= ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
    return m


def masks() -> list[tuple[str, np.ndarray]]:
    """Seeded masks covering degenerate shapes and every density."""
    rng = np.random.default_rng(20240607)
    shapes = [(1, 1), (1, 7), (7, 1), (2, 2), (3, 5), (5, 3), (17, 31), (64, 64), (101, 77)]
    out = []
    for h, w in shapes:
        out.append((f"zeros{h}x{w}", np.zeros((h, w), np.uint8)))
        out.append((f"ones{h}x{w}", np.ones((h, w), np.uint8)))
        for p in (0.01, 0.1, 0.5, 0.9, 0.99):
            out.append((f"rand{p}-{h}x{w}", (rng.random((h, w)) < p).astype(np.uint8)))
        out.append((f"blobs{h}x{w}", blobs(rng, h, w).astype(np.uint8)))
    big = blobs(rng, 720, 1280, 6)
    big[::97, :] ^= True  # thin stripes: many short runs
    out.append(("blobs720x1280", big.astype(np.uint8)))
    lone = np.zeros((50, 40), np.uint8)
    lone[0, 0] = lone[-1, -1] = lone[0, -1] = lone[-1, 0] = 1
    out.append(("corners", lone))
    return out


MASKS = masks()


@pytest.mark.parametrize(("name", "mask"), MASKS, ids=[n for n, _ in MASKS])
def test_encode_matches_pycocotools_and_round_trips(coco, strategy, name, mask):
    ref = coco_counts(coco, mask)
    got = rle.encode(mask)
    assert got == {"size": list(mask.shape), "counts": ref}
    assert rle.encode(np.asfortranarray(mask))["counts"] == ref
    assert rle.encode(mask.astype(bool))["counts"] == ref

    dec = rle.decode(ref, mask.shape)
    assert dec.dtype == np.uint8
    assert dec.flags.c_contiguous
    assert dec.shape == mask.shape
    np.testing.assert_array_equal(dec, mask)
    np.testing.assert_array_equal(dec, coco_decode(coco, ref, mask.shape))
    assert rle.area(ref, mask.shape) == int(mask.sum())


@pytest.mark.slow
def test_4k_mask(coco):
    rng = np.random.default_rng(4)
    m = blobs(rng, 2160, 3840, 5)
    edge = m ^ np.roll(m, 2, axis=1)
    m ^= edge & (rng.random(m.shape) < 0.3)
    ref = coco_counts(coco, m)
    assert rle.encode(m)["counts"] == ref
    np.testing.assert_array_equal(rle.decode(ref, m.shape), m)


def test_decode_accepts_bytes_and_list_size():
    m = np.array([[0, 1, 1], [1, 0, 0]], np.uint8)
    counts = rle.encode(m)["counts"]
    np.testing.assert_array_equal(rle.decode(counts.encode(), [2, 3]), m)
    np.testing.assert_array_equal(rle.decode(counts, (np.int64(2), np.int64(3))), m)


def test_decode_orientation_is_row_major():
    # Column-major runs 1, 2, 1: the ones are pixels (y=1, x=0) and (y=0, x=1).
    np.testing.assert_array_equal(rle.decode("121", (2, 2)), [[0, 1], [1, 0]])
    np.testing.assert_array_equal(rle.decode("015", (2, 3)), [[1, 0, 0], [0, 0, 0]])
    # Runs 2, 1, 1, 2: the fourth is stored as 2 - 1.
    np.testing.assert_array_equal(rle.decode("2111", (2, 3)), [[0, 1, 1], [0, 0, 1]])


def test_encode_treats_any_nonzero_as_one():
    # pycocotools compares raw bytes, so 2 then 1 would count as a change there.
    expected = rle.encode(np.array([[0, 1, 1, 1]]))
    for m in ([[0, 2, 1, 1]], [[0, -1, 256, 1]], [[0.0, 0.5, 1.0, 3.0]]):
        assert rle.encode(np.array(m)) == expected


def test_encode_accepts_any_layout(coco, strategy):
    rng = np.random.default_rng(7)
    m = blobs(rng, 60, 90)
    view = m[::2, 5:70:3]
    assert rle.encode(view)["counts"] == coco_counts(coco, view)
    assert rle.encode(view.T)["counts"] == coco_counts(coco, view.T)


def test_counts_helpers(coco):
    runs = [0, 1, 0, 100_000, 3, 3, 2**20, 7, 0, 0, 5, 2**31 - 1]
    s = rle.encode_counts(runs)
    h, w = 1, sum(runs)
    ref = coco.frPyObjects({"size": [h, w], "counts": runs}, h, w)["counts"].decode()
    assert s == ref
    np.testing.assert_array_equal(rle.decode_counts(s), runs)
    assert rle.decode_counts(s).dtype == np.int64
    assert rle.encode_counts([]) == ""
    assert rle.decode_counts("").size == 0


@pytest.mark.slow
@settings(max_examples=150, deadline=None)
@given(hnp.arrays(np.bool_, hnp.array_shapes(min_dims=2, max_dims=2, min_side=0, max_side=12)))
def test_property_matches_pycocotools(coco, m):
    got = rle.encode(m)
    if m.size:
        # pycocotools encodes empty masks too, but decode needs a non-empty buffer to compare.
        assert got["counts"] == coco_counts(coco, m)
        np.testing.assert_array_equal(coco_decode(coco, got["counts"], m.shape), m)
    np.testing.assert_array_equal(rle.decode(got["counts"], m.shape), m)
    assert rle.area(got["counts"], m.shape) == int(m.sum())


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(0, 2**32 - 1), max_size=12))
def test_property_counts_round_trip(runs):
    assert rle.decode_counts(rle.encode_counts(runs)).tolist() == runs


# pycocotools' rleToString allocates 6 bytes per count, NUL included, so strings where
# counts average 6 or more characters (differences of 2**24 and up) overflow its heap
# buffer and crash the process; compare only below that.
@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(0, 2**24 - 1), max_size=12))
def test_property_counts_match_pycocotools(coco, runs):
    s = rle.encode_counts(runs)
    if runs:
        ref = coco.frPyObjects({"size": [1, 1], "counts": runs}, 1, 1)["counts"].decode()
        assert s == ref
    assert rle.decode_counts(s).tolist() == runs


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 6), min_size=1, max_size=12), st.integers(1, 4))
def test_property_zero_length_runs_decode_like_pycocotools(coco, runs, h):
    # Strings pycocotools never writes itself but accepts: empty runs mid-string.
    total = sum(runs)
    runs = [*runs, (-total) % h]  # pad to a whole number of columns
    w = sum(runs) // h
    s = rle.encode_counts(runs)
    if w == 0:
        assert rle.decode(s, (h, 0)).shape == (h, 0)
        return
    np.testing.assert_array_equal(rle.decode(s, (h, w)), coco_decode(coco, s, (h, w)))


def test_empty_masks_match_pycocotools(coco):
    for shape in [(0, 5), (5, 0), (0, 0)]:
        z = np.zeros(shape, np.uint8)
        assert rle.encode(z) == {"size": list(shape), "counts": coco_counts(coco, z)}
        assert rle.encode(z)["counts"] == "0"
        for counts in ("0", "", "00"):
            out = rle.decode(counts, shape)
            assert out.shape == shape
            assert out.dtype == np.uint8
            assert coco_decode(coco, counts, shape).shape == shape
        assert rle.area("0", shape) == 0


@pytest.mark.parametrize(
    ("counts", "size", "match"),
    [
        ("0p", (1, 1), r"invalid character 'p'.*position 1.*chr\(48\)\.\.chr\(111\)"),
        ("/", (1, 1), r"invalid character '/'.*position 0"),
        ("1 ", (1, 1), r"invalid character ' '"),
        ("0é", (1, 1), r"invalid character 'é' at position 1"),
        (b"0\x00", (1, 1), r"invalid character '\\x00'"),
        ("P", (1, 1), r"truncated.*'P'.*0x20"),
        ("12Q", (1, 3), r"truncated"),
        ("PPPPPPP0", (1, 1), r"spans 8 characters"),
        ("@", (1, 1), r"run 0 has negative length -16"),
        ("151J", (1, 7), r"run 3 has negative length -1"),
        ("03", (2, 2), r"cover 3 pixels but size \[2, 2\] has 4"),
        ("9", (2, 2), r"cover 9 pixels"),
        ("", (2, 2), r"cover 0 pixels"),  # pycocotools returns uninitialised memory here
        ("1", (2, 2, 1), r"size must be two non-negative integers"),
        ("1", (1,), r"size must be two non-negative integers"),
        ("1", (-1, -1), r"size must be two non-negative integers"),
        ("1", (1.0, 1), r"size must be two non-negative integers"),
        ("1", ("1", 1), r"size must be two non-negative integers"),
        ("1", (True, 1), r"size must be two non-negative integers"),
        ("1", None, r"size must be two non-negative integers"),
    ],
)
def test_malformed_decode_raises(counts, size, match):
    with pytest.raises(ValueError, match=match):
        rle.decode(counts, size)
    if size is not None and "size" not in match and "cover" not in match:
        with pytest.raises(ValueError, match=match):
            rle.decode_counts(counts)


def test_area_validates_like_decode():
    with pytest.raises(ValueError, match="cover 3 pixels"):
        rle.area("03", (2, 2))
    with pytest.raises(ValueError, match="truncated"):
        rle.area("P", (1, 1))
    assert rle.area("12", (1, 3)) == 2


def test_wrong_counts_type():
    with pytest.raises(TypeError, match="uncompressed RLE"):
        rle.decode([1, 2], (1, 3))  # type: ignore[arg-type]


@pytest.mark.parametrize("shape", [(), (3,), (2, 2, 1)])
def test_encode_rejects_non_2d(shape):
    with pytest.raises(ValueError, match=r"mask must be 2D"):
        rle.encode(np.zeros(shape, np.uint8))


def test_encode_rejects_non_numeric():
    with pytest.raises(ValueError, match="boolean or numeric"):
        rle.encode(np.array([["a", "b"]]))


@pytest.mark.parametrize(
    ("runs", "match"),
    [([1, -1], r"run 1 has length -1"), ([2**32], r"run 0"), ([[1]], "one-dimensional")],
)
def test_encode_counts_rejects(runs, match):
    with pytest.raises(ValueError, match=match):
        rle.encode_counts(runs)


def test_overlay_rgba_values():
    m = np.array([[0, 1], [2, 0]])
    out = rle.overlay_rgba(m, (1.0, 0.0, 0.5), 0.5)
    assert out.shape == (2, 2, 4)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out[0, 1], [255, 0, 128, 128])
    np.testing.assert_array_equal(out[1, 0], [255, 0, 128, 128])
    np.testing.assert_array_equal(out[0, 0], [0, 0, 0, 0])
    np.testing.assert_array_equal(out[1, 1], [0, 0, 0, 0])
    full = rle.overlay_rgba(np.ones((3, 4), bool), (0.2, 0.4, 0.6), 1)
    np.testing.assert_array_equal(full[..., :3], np.broadcast_to([51, 102, 153], (3, 4, 3)))
    np.testing.assert_array_equal(full[..., 3], 255)
    assert rle.overlay_rgba(np.zeros((0, 3)), (0, 0, 0), 0).shape == (0, 3, 4)


@pytest.mark.parametrize(
    ("color", "opacity", "match"),
    [
        ((1.2, 0, 0), 1, r"color\[0\]=1\.2 is outside the allowed range \[0, 1\]"),
        ((0, -0.1, 0), 1, r"color\[1\]=-0\.1 is outside the allowed range \[0, 1\]"),
        ((0, 0, math.nan), 1, r"color\[2\]=nan"),
        ((0, 0, 0), 1.5, r"opacity=1\.5 is outside the allowed range \[0, 1\]"),
        ((0, 0, 0), -1, r"opacity=-1 is outside"),
        ((0, 0), 1, r"three components"),
        ((0, 0, "x"), 1, r"color\[2\]='x' is not a number"),
    ],
)
def test_overlay_rgba_validates(color, opacity, match):
    with pytest.raises(ValueError, match=match):
        rle.overlay_rgba(np.ones((2, 2)), color, opacity)


def test_overlay_rgba_rejects_non_2d():
    with pytest.raises(ValueError, match="2D"):
        rle.overlay_rgba(np.ones((2, 2, 3)), (0, 0, 0), 1)


def _ascending(draw, size: int) -> np.ndarray:
    chosen = draw(st.lists(st.integers(0, size - 1), unique=True, max_size=size))
    return np.array(sorted(chosen), dtype=np.intp)


@st.composite
def sampled_cases(draw):
    """A mask of any density and shape, and strictly increasing rows and columns of it."""
    m = draw(hnp.arrays(np.bool_, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1,
                                                   max_side=14)))
    return m, _ascending(draw, m.shape[0]), _ascending(draw, m.shape[1])


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(sampled_cases())
def test_property_decode_sampled_is_the_full_decode_at_those_pixels(case):
    m, rows, cols = case
    counts = rle.encode(m)["counts"]
    got = rle.decode_sampled(counts, m.shape, rows, cols)
    assert got.dtype == np.uint8 and got.flags.c_contiguous
    np.testing.assert_array_equal(got, m[np.ix_(rows, cols)].astype(np.uint8))


@pytest.mark.parametrize(("name", "mask"), MASKS, ids=[n for n, _ in MASKS])
def test_decode_sampled_every_pixel_and_every_other(name, mask):
    counts = rle.encode(mask)["counts"]
    h, w = mask.shape
    every = rle.decode_sampled(counts, (h, w), np.arange(h), np.arange(w))
    np.testing.assert_array_equal(every, rle.decode(counts, (h, w)))
    rows, cols = np.arange(h)[1::2], np.arange(w)[::3]
    np.testing.assert_array_equal(rle.decode_sampled(counts, (h, w), rows, cols),
                                  mask[np.ix_(rows, cols)])


def test_decode_sampled_reads_strings_with_zero_length_runs_like_decode():
    runs = [0, 3, 0, 0, 2, 1, 0, 3]  # empty runs in the middle and at both ends
    s = rle.encode_counts(runs)
    full = rle.decode(s, (3, 3))
    np.testing.assert_array_equal(
        rle.decode_sampled(s, (3, 3), np.arange(3), np.arange(3)), full)


@pytest.mark.parametrize(("rows", "cols", "match"), [
    ([2, 1], [0], r"rows must be strictly increasing"),
    ([0, 0], [0], r"rows must be strictly increasing"),
    ([0], [3], r"cols must be strictly increasing indices in \[0, 2\]"),
    ([-1], [0], r"rows must be strictly increasing"),
    ([0.5], [0], r"rows must be a 1-D array of integer indices"),
    ([[0]], [0], r"rows must be a 1-D array"),
])
def test_decode_sampled_refuses_bad_samples(rows, cols, match):
    with pytest.raises(ValueError, match=match):
        rle.decode_sampled("9", (3, 3), np.array(rows), np.array(cols))


def test_decode_sampled_validates_counts_like_decode():
    with pytest.raises(ValueError, match="cover 3 pixels"):
        rle.decode_sampled("03", (2, 2), np.arange(2), np.arange(2))
    assert rle.decode_sampled("4", (2, 2), np.arange(0), np.arange(2)).shape == (0, 2)
