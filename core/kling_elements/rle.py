"""COCO compressed RLE, the mask format of Kling's selection answers, in pure numpy.

The format (pycocotools' ``rleToString`` / ``rleFrString``): ``counts`` alternates run lengths
of 0s and 1s, starting with 0s, over the pixels in **column-major** order. Each count is
written as 5-bit groups, low bits first, in characters ``chr(48)``..``chr(111)``; bit 0x20 of
a character means "another group follows", bit 0x10 of the last group is the sign. From the
fourth count on, each count is stored as its difference from the count two places before.

Guarantees:

* :func:`encode` yields the very string ``pycocotools.mask.encode`` yields for the same 0/1
  mask, and :func:`decode` the very pixels ``pycocotools.mask.decode`` yields for any string
  pycocotools accepts with runs that cover the mask exactly.
* Masks come back as a C-contiguous ``(h, w)`` uint8 array of 0/1 indexed ``mask[y, x]`` (the
  usual image layout), not pycocotools' Fortran-ordered array.
* Malformed input never yields garbage (pycocotools returns uninitialised memory when the
  runs fall short of ``h * w``): it raises :class:`ValueError` naming the problem.
* No Python loop runs per character, per run or per pixel. A typical 4K selection mask
  (tens of thousands of runs) decodes in about 3 ms, roughly 3x faster than pycocotools and
  5x faster than pycocotools plus the copy to C order; ``scripts/bench_rle.py`` checks it.
  Noise-like masks with millions of runs are about 2x slower than pycocotools.

pycocotools is needed only by the tests and the benchmark, never here.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "area", "decode", "decode_counts", "decode_sampled", "encode", "encode_counts",
    "overlay_rgba",
]

_FIRST_CHAR = 48  # '0'
_LAST_CHAR = 48 + 63  # 'o'
# pycocotools stores counts as 32-bit unsigned ints, so a stored difference fits in 33 signed
# bits: 7 groups of 5 bits. Longer groups can only come from corrupt input, and refusing them
# keeps every intermediate sum far inside int64.
_MAX_GROUPS = 7
_MAX_RUN = 2**32 - 1
# A stored difference d needs k + 1 groups once |d| (as d or ~d) reaches 2**(5k - 1).
_GROUP_LIMITS = np.array([1 << (5 * k - 1) for k in range(1, _MAX_GROUPS)], dtype=np.int64)
# Value of a count's first character c - 48: its low 5 bits, sign-extended when the 0x20
# "more" bit is clear (the count ends there) and the 0x10 sign bit is set.
_FIRST_GROUP_VALUE = np.array(
    [c & 0x1F if c & 0x20 or not c & 0x10 else (c & 0x1F) - 0x20 for c in range(64)],
    dtype=np.int64,
)
# Above this many run boundaries per pixel, walking the pixels in column-major order and
# transposing once is cheaper than handling every boundary on its own (noise-like masks).
_DENSE_BOUNDARIES_PER_PIXEL = 1 / 32


def _check_size(size: object) -> tuple[int, int]:
    """Return ``(h, w)`` from a ``[h, w]`` pair of non-negative ints, or raise ValueError."""
    ok = (
        isinstance(size, (Sequence, np.ndarray))
        and not isinstance(size, (str, bytes))
        and len(size) == 2
        and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in size)
        and all(v >= 0 for v in size)
    )
    if not ok:
        raise ValueError(f"RLE size must be two non-negative integers [h, w], got {size!r}")
    return int(size[0]), int(size[1])


def _counts_bytes(counts: str | bytes) -> np.ndarray:
    """The characters of ``counts`` as a uint8 array, with every character checked."""
    if isinstance(counts, str):
        try:
            raw = counts.encode("ascii")
        except UnicodeEncodeError as exc:
            bad = counts[exc.start]
            raise ValueError(
                f"invalid character {bad!r} at position {exc.start} of RLE counts; "
                f"valid characters are chr(48)..chr(111) ('0'..'o')"
            ) from None
    elif isinstance(counts, (bytes, bytearray, memoryview)):
        raw = bytes(counts)
    else:
        raise TypeError(
            f"RLE counts must be a str or bytes (COCO compressed RLE), got "
            f"{type(counts).__name__}; uncompressed RLE (a list of counts) is not supported"
        )
    arr = np.frombuffer(raw, dtype=np.uint8)
    bad = (arr < _FIRST_CHAR) | (arr > _LAST_CHAR)
    if bad.any():
        pos = int(np.argmax(bad))
        raise ValueError(
            f"invalid character {chr(arr[pos])!r} (code {int(arr[pos])}) at position {pos} "
            f"of RLE counts; valid characters are chr(48)..chr(111) ('0'..'o')"
        )
    return arr


def decode_counts(counts: str | bytes) -> np.ndarray:
    """Run lengths (int64, alternating 0s and 1s, starting with 0s) stored in ``counts``.

    Checks everything that does not depend on the mask size: the character range, that the
    string does not end inside a count, that no count is longer than a 32-bit count can
    need, and that no run length is negative once the differences are undone. The sum is
    checked by :func:`decode` and :func:`area`, which know the size. ``""`` gives no runs.
    """
    c = _counts_bytes(counts) - np.uint8(_FIRST_CHAR)
    n = c.size
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    last = (c & 0x20) == 0
    if not last[-1]:
        raise ValueError(
            f"RLE counts are truncated: the last character {chr(c[-1] + _FIRST_CHAR)!r} has "
            f"the 0x20 'more' bit set, so the string ends in the middle of a run length"
        )
    ends = np.flatnonzero(last)
    lens = np.diff(ends, prepend=-1)
    if lens.max() > _MAX_GROUPS:
        i = int(np.argmax(lens > _MAX_GROUPS))
        raise ValueError(
            f"RLE count {i} (characters {int(ends[i] - lens[i] + 1)}..{int(ends[i])}) spans "
            f"{int(lens[i])} characters; a COCO count never needs more than {_MAX_GROUPS}"
        )
    starts = ends - (lens - 1)
    # Most counts are one or two characters, so go level by level (every count's first
    # group, then the second group of the counts that have one, ...) instead of per char.
    # A one-character count is sign-extended by the table; a longer one when its last
    # group is added (the C code's ``x |= -1 << 5*k``, which for x < 2**(5k) is x - 2**(5k)).
    x = _FIRST_GROUP_VALUE[c[starts]]
    for k in range(1, int(lens.max())):
        longer = np.flatnonzero(lens > k)
        group = c[starts[longer] + k].astype(np.int64)
        x[longer] |= (group & 0x1F) << (5 * k)
        ending = (lens[longer] == k + 1) & ((group & 0x10) != 0)
        x[longer[ending]] -= 1 << (5 * (k + 1))
    # Undo "count[i] -= count[i-2] for i > 2": from index 1 on, odd and even positions are
    # each a running sum of their own differences; index 0 stands alone.
    np.cumsum(x[1::2], out=x[1::2])
    np.cumsum(x[2::2], out=x[2::2])
    if (x < 0).any():
        i = int(np.argmax(x < 0))
        raise ValueError(f"RLE run {i} has negative length {int(x[i])}")
    return x


def encode_counts(runs: Sequence[int] | np.ndarray) -> str:
    """The compressed string of ``runs`` (alternating 0s and 1s, starting with 0s).

    Exactly pycocotools' ``rleToString``; ``[]`` gives ``""``. Runs must be non-negative
    integers below 2**32 (the width of a COCO count), else ValueError.
    """
    r = np.asarray(runs)
    if r.ndim != 1:
        raise ValueError(f"runs must be one-dimensional, got shape {r.shape}")
    if r.size == 0:
        return ""
    if r.dtype.kind not in "iu":
        raise ValueError(f"runs must be integers, got dtype {r.dtype}")
    if (r < 0).any() or (r > _MAX_RUN).any():
        i = int(np.argmax((r < 0) | (r > _MAX_RUN)))
        raise ValueError(f"run {i} has length {int(r[i])}, outside the allowed range [0, 2**32-1]")
    r = r.astype(np.int64)
    d = r.copy()
    d[3:] -= r[1:-2]
    # Number of 5-bit groups: the smallest k for which d fits in 5k signed bits, which is
    # when the loop in rleToString sees only sign bits left.
    magnitude = d ^ (d >> 63)  # d for d >= 0, ~d (= -d - 1) for d < 0
    ngroups = (magnitude >= _GROUP_LIMITS[0]).astype(np.int64) + 1
    big = np.flatnonzero(magnitude >= _GROUP_LIMITS[1])
    for limit in _GROUP_LIMITS[1:]:
        ngroups[big] += magnitude[big] >= limit
    # Level by level, as in decode_counts: every count's first character, then the second
    # character of the counts that need one, and so on.
    first = (d & 0x1F).astype(np.uint8)
    first[ngroups > 1] |= 0x20
    first += _FIRST_CHAR
    if ngroups.max() == 1:
        return first.tobytes().decode("ascii")
    starts = np.cumsum(ngroups) - ngroups
    out = np.empty(int(starts[-1] + ngroups[-1]), dtype=np.uint8)
    out[starts] = first
    for k in range(1, int(ngroups.max())):
        longer = np.flatnonzero(ngroups > k)
        group = ((d[longer] >> (5 * k)) & 0x1F).astype(np.uint8)
        group[ngroups[longer] > k + 1] |= 0x20
        group += _FIRST_CHAR
        out[starts[longer] + k] = group
    return out.tobytes().decode("ascii")


def _check_total(runs: np.ndarray, h: int, w: int) -> None:
    total = int(runs.sum())
    if total != h * w:
        raise ValueError(
            f"RLE runs cover {total} pixels but size [{h}, {w}] has {h * w}; "
            f"the counts do not belong to a mask of that size"
        )


def decode(counts: str | bytes, size: tuple[int, int] | list[int]) -> np.ndarray:
    """The mask stored in ``counts`` as a C-contiguous ``(h, w)`` uint8 array of 0/1.

    ``size`` is ``[h, w]`` and the result is indexed ``mask[y, x]``; it equals
    ``pycocotools.mask.decode({"size": size, "counts": counts})`` element-wise. Raises
    ValueError for malformed counts (see :func:`decode_counts`), a bad size, or runs that
    do not add up to ``h * w``.
    """
    h, w = _check_size(size)
    runs = decode_counts(counts)
    _check_total(runs, h, w)
    if h * w == 0:
        return np.zeros((h, w), dtype=np.uint8)
    if runs.size > h * w * _DENSE_BOUNDARIES_PER_PIXEL:
        values = np.zeros(runs.size, dtype=np.uint8)
        values[1::2] = 1
        return np.ascontiguousarray(np.repeat(values, runs).reshape(w, h).T)
    # Each run after the first flips the value at its start; pixel (y, x) is 1 iff an odd
    # number of flips sit at column-major positions <= x*h + y. Building that row-major:
    # row 0 holds the parity of the flips up to the top of each column, every other row
    # holds the flips that land on it, and an XOR prefix down the columns does the rest.
    # Done on bit-packed rows (XOR has no carries, so 64 columns go per uint64), then
    # unpacked: about 1/8 of the memory traffic of working on bytes, and no transpose.
    flips = np.cumsum(runs[:-1])
    x, y = np.divmod(flips, h)
    inside = y > 0  # a flip at y == 0 starts a column; row 0 accounts for it
    x, y = x[inside], y[inside]
    row_bytes = -(-w // 64) * 8
    packed = np.zeros((h, row_bytes), dtype=np.uint8)
    np.bitwise_xor.at(
        packed.reshape(-1), y * row_bytes + (x >> 3), (0x80 >> (x & 7)).astype(np.uint8)
    )
    column_tops = np.arange(w, dtype=np.int64) * h
    top_parity = (np.searchsorted(flips, column_tops, side="right") & 1).astype(np.uint8)
    packed[0, : -(-w // 8)] = np.packbits(top_parity)
    words = packed.view(np.uint64)
    np.bitwise_xor.accumulate(words, axis=0, out=words)
    return np.unpackbits(packed, axis=1, count=w)


def _check_samples(name: str, index: object, limit: int) -> np.ndarray:
    a = np.asarray(index)
    if a.ndim != 1 or a.dtype.kind not in "iu":
        raise ValueError(f"{name} must be a 1-D array of integer indices, got {a.dtype} "
                         f"with shape {a.shape}")
    a = a.astype(np.int64)
    if a.size and (a[0] < 0 or a[-1] >= limit or (a.size > 1 and (np.diff(a) <= 0).any())):
        raise ValueError(f"{name} must be strictly increasing indices in [0, {limit - 1}], "
                         f"got {a[:8].tolist()}{'...' if a.size > 8 else ''}")
    return a


def decode_sampled(counts: str | bytes, size: tuple[int, int] | list[int],
                   rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """The mask's pixels at ``rows`` x ``cols`` only, without building the whole mask.

    Equal to ``decode(counts, size)[np.ix_(rows, cols)]`` (a C-contiguous uint8 array of
    0/1 of shape ``(len(rows), len(cols))``) and validated like :func:`decode`; ``rows``
    and ``cols`` must be strictly increasing indices inside the mask. The work grows with
    the runs and the samples, not with ``h * w``: a 2160x2160 selection mask sampled to
    720x720 (what a preview texture needs) takes a fraction of a full decode.
    """
    h, w = _check_size(size)
    rows, cols = _check_samples("rows", rows, h), _check_samples("cols", cols, w)
    runs = decode_counts(counts)
    _check_total(runs, h, w)
    n_rows, n_cols = rows.size, cols.size
    if n_rows == 0 or n_cols == 0:
        return np.zeros((n_rows, n_cols), dtype=np.uint8)
    # As in decode: sample (r, c) is 1 iff an odd number of flips sit at column-major
    # positions <= c*h + r. Sample row 0 takes the parity of every flip up to it; a flip
    # inside a sampled column and below row 0 toggles the first sample row at or below it,
    # and an XOR prefix down the (bit-packed) sample rows does the rest.
    flips = np.cumsum(runs[:-1])
    x, y = np.divmod(flips, h)
    column = np.searchsorted(cols, x)
    row = np.searchsorted(rows, y)
    sampled = cols[np.minimum(column, n_cols - 1)] == x
    inside = sampled & (row >= 1) & (row < n_rows)
    column, row = column[inside], row[inside]
    row_bytes = -(-n_cols // 64) * 8
    packed = np.zeros((n_rows, row_bytes), dtype=np.uint8)
    np.bitwise_xor.at(packed.reshape(-1), row * row_bytes + (column >> 3),
                      (0x80 >> (column & 7)).astype(np.uint8))
    top_parity = np.searchsorted(flips, cols * h + rows[0], side="right") & 1
    packed[0, : -(-n_cols // 8)] = np.packbits(top_parity.astype(np.uint8))
    words = packed.view(np.uint64)
    np.bitwise_xor.accumulate(words, axis=0, out=words)
    return np.unpackbits(packed, axis=1, count=n_cols)


def area(counts: str | bytes, size: tuple[int, int] | list[int]) -> int:
    """Number of 1 pixels, from the runs alone (no mask is built); validates like decode."""
    h, w = _check_size(size)
    runs = decode_counts(counts)
    _check_total(runs, h, w)
    return int(runs[1::2].sum())


def _nonzero_positions(flags: np.ndarray, limit: float) -> np.ndarray | None:
    """``np.flatnonzero(flags)`` for a bool array, or None when more than ``limit`` are set.

    Scans eight flags at a time as uint64 words (a selection mask changes on few of them),
    then looks inside the words that are not zero.
    """
    raw = flags.reshape(-1).view(np.uint8)
    tail = raw.size % 8
    words = np.flatnonzero(raw[: raw.size - tail].view(np.uint64) != 0)
    if words.size > limit:
        return None
    inside = np.flatnonzero(raw[: raw.size - tail].reshape(-1, 8)[words])
    found = words[inside >> 3] * 8 + (inside & 7)
    if tail:
        found = np.concatenate((found, raw.size - tail + np.flatnonzero(raw[-tail:])))
    return found if found.size <= limit else None


def _mask_runs(b: np.ndarray) -> np.ndarray:
    """Column-major run lengths of a 2D mask of 0s and 1s, exactly as pycocotools' ``rleEncode``."""
    h, w = b.shape
    n = h * w
    if n == 0:
        return np.zeros(1, dtype=np.int64)  # pycocotools encodes an empty mask as "0"
    if b.flags.f_contiguous and not b.flags.c_contiguous:
        flat = b.ravel(order="F")  # already column-major: no copy
        changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    else:
        # Avoid transposing the pixels: changes down a column are changes between
        # consecutive rows; changes between columns compare a bottom with the next top.
        b = np.ascontiguousarray(b)
        down = b[1:] != b[:-1]
        changed = _nonzero_positions(down, limit=n * _DENSE_BOUNDARIES_PER_PIXEL)
        if changed is None:
            flat = b.T.ravel()  # one transposing copy beats sorting millions of positions
            changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
        else:
            row, col = np.divmod(changed, w)
            # ``changed`` runs row by row: a stable sort by column (a radix sort for 16-bit
            # keys) puts it in column-major order, and the seams between columns (each
            # before its column's changes) merge in as a second sorted run.
            by_column = np.argsort(col.astype(np.uint16 if w < 2**16 else np.int64),
                                   kind="stable")
            seams = np.flatnonzero(b[0, 1:] != b[h - 1, :-1]) + 1
            changes = np.sort(np.concatenate(((col * h + row + 1)[by_column], seams * h)),
                              kind="stable")
    # A mask starting with 1 opens with an empty run of 0s, as in pycocotools.
    head = np.zeros(2 if b[0, 0] else 1, dtype=np.int64)
    bounds = np.concatenate((head, changes.astype(np.int64), np.array([n], dtype=np.int64)))
    return np.diff(bounds)


def _zero_one(a: np.ndarray) -> np.ndarray:
    """``a`` with every nonzero as 1, without a copy when it already holds only 0 and 1.

    Runs only compare neighbouring values, so a 0/1 uint8 mask (the usual kind) is used as
    is; the copy ``a != 0`` would cost more than the rest of the encoding.
    """
    if a.dtype == np.bool_ or (a.dtype == np.uint8 and a.size and a.max() <= 1):
        return a
    return a != 0


def encode(mask: np.ndarray) -> dict:
    """``{"size": [h, w], "counts": str}`` for a 2D mask (nonzero counts as 1).

    ``counts`` is byte-identical to
    ``pycocotools.mask.encode(np.asfortranarray(mask.astype(np.uint8)))["counts"].decode()``
    for 0/1 masks; for other nonzero values pycocotools compares raw bytes and goes wrong
    (and ``astype(np.uint8)`` wraps 256 to 0), while this treats every nonzero as 1. Any
    memory layout is accepted; masks of 2**32 pixels or more cannot be COCO-encoded.
    """
    a = np.asarray(mask)
    if a.ndim != 2:
        raise ValueError(f"mask must be 2D (h, w), got shape {a.shape}")
    if a.dtype.kind not in "biufc":
        raise ValueError(f"mask must be boolean or numeric, got dtype {a.dtype}")
    h, w = a.shape
    if h * w > _MAX_RUN:
        raise ValueError(f"mask of {h}x{w} pixels is too large: COCO counts are 32-bit")
    runs = _mask_runs(_zero_one(a))
    return {"size": [h, w], "counts": encode_counts(runs)}


def _check_unit(name: str, value: float) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}={value!r} is not a number in the allowed range [0, 1]") from None
    if not 0.0 <= v <= 1.0:  # also rejects NaN
        raise ValueError(f"{name}={value!r} is outside the allowed range [0, 1]")
    return v


def overlay_rgba(mask: np.ndarray, color: tuple[float, float, float], opacity: float) -> np.ndarray:
    """A ``(h, w, 4)`` uint8 RGBA layer: ``color`` at ``opacity`` where mask is nonzero.

    Components are ``round(value * 255)``; every other pixel is ``(0, 0, 0, 0)``, fully
    transparent, so the layer can be alpha-composited over a frame as is. ``color`` is RGB
    with components in [0, 1] and ``opacity`` in [0, 1]; anything else raises ValueError.
    """
    a = np.asarray(mask)
    if a.ndim != 2:
        raise ValueError(f"mask must be 2D (h, w), got shape {a.shape}")
    if isinstance(color, (str, bytes)) or not hasattr(color, "__len__") or len(color) != 3:
        raise ValueError(f"color must be three components (r, g, b) in [0, 1], got {color!r}")
    rgb = [_check_unit(f"color[{i}]", v) for i, v in enumerate(color)]
    alpha = _check_unit("opacity", opacity)
    pixel = np.array([round(v * 255) for v in (*rgb, alpha)], dtype=np.uint8)
    # One uint32 per pixel in native byte order, so the bytes land as R, G, B, A.
    layer = np.where(a != 0, pixel.view(np.uint32)[0], np.uint32(0))
    return layer.view(np.uint8).reshape(*a.shape, 4)
