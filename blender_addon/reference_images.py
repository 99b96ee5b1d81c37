"""Reference images as Blender images: facts for the panel, and a file for the worker.

An image opened from disk is sent as that file (the core converts it when needed). An image
made or painted in Blender has no file, so its pixels are written to a temporary PNG on
the main thread (the only thread that may read ``bpy`` data) before the task is queued.
"""


import os
import tempfile

import bpy

from .edit_check import ImageFacts

__all__ = ["image_facts", "image_file", "slot_images"]


def _disk_path(image: bpy.types.Image) -> str:
    if image.packed_file is not None or image.is_dirty or image.source != "FILE":
        return ""
    path = bpy.path.abspath(image.filepath)
    return path if os.path.isfile(path) else ""


def slot_images(edit, edit_mode: str) -> list[bpy.types.Image]:
    """The images the mode uses, in order (Swap uses image 1 only, Remove none)."""
    slots = {"addition": (edit.image_1, edit.image_2), "swap": (edit.image_1,)}.get(edit_mode, ())
    return [image for image in slots if image is not None]


def image_facts(image: bpy.types.Image, label: str) -> ImageFacts:
    path = _disk_path(image)
    width, height = (int(v) for v in image.size)
    return ImageFacts(label=label, width=width, height=height, path=path,
                      size_bytes=os.path.getsize(path) if path else 0)


def image_file(image: bpy.types.Image, folder: str | None = None) -> str:
    """A file holding the image: its own file when saved, else a PNG written now."""
    path = _disk_path(image)
    if path:
        return path
    import numpy as np
    from PIL import Image

    width, height = (int(v) for v in image.size)
    pixels = np.empty(width * height * 4, dtype=np.float32)
    image.pixels.foreach_get(pixels)
    rgba = (np.clip(pixels.reshape(height, width, 4)[::-1], 0, 1) * 255 + 0.5).astype(np.uint8)
    fd, out = tempfile.mkstemp(prefix="kling-ref-", suffix=".png", dir=folder)
    os.close(fd)
    Image.fromarray(rgba, "RGBA").save(out)
    return out
