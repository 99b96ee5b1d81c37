"""What the worker sends for a Generate: reference images read from Blender."""

from __future__ import annotations


def test_pixels_of_a_blender_image_become_the_picture_the_user_sees():
    """Blender stores rows bottom-up in floats 0..1; the picture sent is top-down 8-bit."""
    import numpy as np

    from blender_addon.work.task_calls import ImagePixels

    rows = np.zeros((3, 2, 4), np.float32)
    rows[0] = (0.0, 0.0, 1.0, 1.0)  # bottom row: blue
    rows[2] = (1.5, 0.5, 0.0, 1.0)  # top row: red-orange, out of range clipped
    image = ImagePixels(2, 3, rows.ravel()).to_image()
    assert image.size == (2, 3) and image.mode == "RGBA"
    assert image.getpixel((0, 0)) == (255, 128, 0, 255)
    assert image.getpixel((1, 2)) == (0, 0, 255, 255)
