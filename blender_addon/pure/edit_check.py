"""Why "Generate" cannot run yet, and what each reference image needs; no ``bpy``.

The panel shows these reasons and the Generate operator refuses with the first one, so a
task that Kling would refuse is never sent (credits are only spent on a valid request).
The rules are the core's (``kling_elements.validate``); this module only gathers them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from kling_elements import ValidationError, validate

__all__ = ["ImageFacts", "edit_problems", "image_notes", "images_needed"]

_SUFFIX_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG"}


@dataclass(frozen=True)
class ImageFacts:
    """What Blender knows of a reference image without reading its pixels."""

    label: str
    width: int
    height: int
    path: str = ""
    size_bytes: int = 0

    @property
    def file_format(self) -> str:
        return _SUFFIX_FORMATS.get(os.path.splitext(self.path)[1].lower(), "")


def images_needed(edit_mode: str) -> tuple[int, int]:
    """(minimum, maximum) reference images for ``edit_mode``."""
    return validate.IMAGE_COUNTS[validate.edit_mode(edit_mode)]


def image_notes(image: ImageFacts) -> tuple[str, str]:
    """``(error, note)``: an error a human must fix, or a note on what will be converted."""
    if image.width <= 0 or image.height <= 0:
        return f"{image.label} has no pixels: open an existing image file", ""
    try:
        validate.image_geometry(image.width, image.height, image.label)
    except ValidationError as exc:
        return str(exc), ""
    if not image.path:
        return "", f"{image.label} is not a file: it will be sent as PNG"
    if not image.file_format:
        return "", f"{image.label} is not JPEG/PNG: it will be converted to JPEG"
    if image.size_bytes > validate.IMAGE_MAX_BYTES:
        mb = image.size_bytes / 2**20
        limit = validate.IMAGE_MAX_BYTES / 2**20
        return "", (f"{image.label} is {mb:.1f} MB, over {limit:g} MB: it will be re-encoded "
                    "smaller")
    return "", ""


def edit_problems(
    *,
    edit_mode: str,
    images: list[ImageFacts],
    prompt: str,
    negative_prompt: str,
    has_session: bool,
    marked_frames: int,
) -> list[str]:
    """Every reason the edit cannot be sent yet, in the order the user should fix them.

    The rules are ``validate.task``'s; only the fixes are worded for the panel (which step to
    open). A missing image is reported once, not again as a dangling ``<<<image_1>>>``.
    """
    problems = []
    if not has_session:
        problems.append("Start a session first (Session > Start Editing)")
    low, high = images_needed(edit_mode)
    usable = max(len(images), low)  # missing images count as given for the prompt's check
    found = validate.task(
        edit_mode=edit_mode, prompt=prompt, images=[*images, *[None] * (usable - len(images))],
        negative_prompt=negative_prompt or None,
        marked_frames=marked_frames if has_session else None, duration_later=True)
    if any(p.field == "selection" for p in found):
        problems.append(f"Mark the element to {'swap' if edit_mode == 'swap' else 'remove'} "
                        "first (Select Elements)")
    if len(images) < low:
        problems.append(f"Choose {'a reference image' if low == 1 else f'{low} images'} "
                        "of the element")
    elif any(p.field == "images" for p in found):
        problems.append("Remove the reference images: Remove takes none"
                        if high == 0 else f"Use at most {high} reference image(s)")
    problems.extend(error for error in (image_notes(i)[0] for i in images) if error)
    problems.extend(p.message for p in found if p.field in ("prompt", "negative_prompt"))
    return problems
