"""Reference images as Blender images: facts for the panel, and what the worker sends.

An image opened from disk is sent as that file (the core converts it when needed). An image
made or painted in Blender has no file: its pixels are copied on the main thread (the only
thread that may read ``bpy`` data) and encoded by the worker, straight into the request
body. No temporary file is written, so nothing is left behind in the temp folder.
"""


import os

import bpy

from ..pure.edit_check import ImageFacts
from ..work.task_calls import ImagePixels

__all__ = ["image_facts", "image_input", "slot_images"]


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


def image_input(image: bpy.types.Image) -> str | ImagePixels:
    """What to send for the image: its own file when saved, else a copy of its pixels."""
    path = _disk_path(image)
    if path:
        return path
    import numpy as np

    width, height = (int(v) for v in image.size)
    pixels = np.empty(width * height * 4, dtype=np.float32)
    image.pixels.foreach_get(pixels)
    return ImagePixels(width, height, pixels)
