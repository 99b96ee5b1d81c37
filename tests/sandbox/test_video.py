"""Video I/O: what goes in comes back out (frame count, size, rate), files appear atomically."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from PIL import Image

from kling_elements.sandbox.video import fps_fraction, read_frames, write_jpeg, write_mp4


def _gradient_clip(n: int, height: int, width: int) -> np.ndarray:
    """Smooth moving gradients: compress well, so decoded pixels stay close to the input."""
    rows, cols = np.mgrid[0:height, 0:width]
    frames = np.empty((n, height, width, 3), np.uint8)
    for i in range(n):
        frames[i, ..., 0] = (cols * 255 // max(1, width - 1) + 3 * i) % 256
        frames[i, ..., 1] = rows * 255 // max(1, height - 1)
        frames[i, ..., 2] = 128
    return frames


@pytest.mark.parametrize(
    ("fps", "expected"),
    [(30, Fraction(30)), (24, Fraction(24)), (60, Fraction(60)), (29.97, Fraction(30000, 1001))],
)
def test_round_trip_keeps_frame_count_size_and_rate(tmp_path, fps, expected):
    frames = _gradient_clip(23, 96, 160)
    path = tmp_path / "clip.mp4"
    write_mp4(path, frames, fps)
    decoded, rate = read_frames(path)
    assert decoded.shape == frames.shape
    assert decoded.dtype == np.uint8
    assert rate == pytest.approx(float(expected), abs=1e-6)
    assert np.abs(decoded.astype(int) - frames).mean() < 4


def test_fps_fraction_is_exact_for_broadcast_rates():
    assert fps_fraction(30.0) == 30
    assert fps_fraction(59.94) == Fraction(60000, 1001)
    assert fps_fraction(23.976) == Fraction(24000, 1001)
    with pytest.raises(ValueError):
        fps_fraction(0)


def test_write_accepts_a_generator_and_pads_odd_sides(tmp_path):
    path = tmp_path / "odd.mp4"
    write_mp4(path, (np.full((51, 75, 3), i * 20, np.uint8) for i in range(5)), 24)
    decoded, rate = read_frames(path)
    assert decoded.shape == (5, 52, 76, 3)
    assert rate == 24
    assert abs(int(decoded[4, 10, 10, 0]) - 80) <= 3


def test_read_downscales_to_the_long_side_keeping_aspect(tmp_path):
    path = tmp_path / "big.mp4"
    write_mp4(path, _gradient_clip(4, 180, 320), 30)
    decoded, _ = read_frames(path, max_long_side=160)
    assert decoded.shape == (4, 90, 160, 3)
    same, _ = read_frames(path, max_long_side=640)
    assert same.shape == (4, 180, 320, 3)


def test_files_appear_atomically_and_failures_leave_nothing(tmp_path):
    path = tmp_path / "out.mp4"

    def broken():
        yield np.zeros((64, 64, 3), np.uint8)
        yield np.zeros((64, 64), np.uint8)  # not RGB: the writer must give up cleanly

    with pytest.raises(ValueError):
        write_mp4(path, broken(), 30)
    assert list(tmp_path.iterdir()) == []
    write_mp4(path, np.zeros((3, 64, 64, 3), np.uint8), 30)
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]


def test_write_jpeg_round_trip(tmp_path):
    frame = _gradient_clip(1, 120, 200)[0]
    path = tmp_path / "cover.jpg"
    write_jpeg(path, frame)
    with Image.open(path) as image:
        assert image.format == "JPEG"
        assert image.size == (200, 120)
        assert np.abs(np.asarray(image).astype(int) - frame).mean() < 4
    assert [p.name for p in tmp_path.iterdir()] == ["cover.jpg"]
