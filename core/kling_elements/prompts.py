"""Kling's documented prompt templates, one per edit mode and language.

The ``[x]`` / ``【】`` parts are for the user to fill in; ``placeholders_left`` finds them so
a front end can warn before a template is sent unfinished.
"""

from __future__ import annotations

__all__ = ["LANGUAGES", "TEMPLATES", "placeholders_left", "template", "token"]

LANGUAGES = ("en", "zh")

TEMPLATES: dict[str, dict[str, str]] = {
    "addition": {
        "en": "Using the context of <<<video_1>>>, seamlessly add [x] from <<<image_1>>>",
        "zh": "基于<<<video_1>>>中的原始内容，以自然生动的方式，将<<<image_1>>>中的【】，"
              "融入<<<video_1>>>的【】",
    },
    "swap": {
        "en": "swap [x] from <<<image_1>>> for [x] from <<<video_1>>>",
        "zh": "使用<<<image_1>>>中的【】，替换<<<video_1>>>中的【】",
    },
    "removal": {
        "en": "Delete [x] from <<<video_1>>>",
        "zh": "删除<<<video_1>>>中的【】",
    },
}


def template(edit_mode: str, language: str = "en") -> str:
    """The template for ``edit_mode`` (addition/swap/removal) in ``language`` (en/zh)."""
    try:
        return TEMPLATES[edit_mode][language]
    except KeyError:
        raise ValueError(
            f"no prompt template for edit mode {edit_mode!r} in language {language!r}: modes are "
            f"{', '.join(TEMPLATES)}, languages {', '.join(LANGUAGES)}"
        ) from None


def token(kind: str, number: int = 1) -> str:
    """The reference Kling expects for an input: ``<<<video_1>>>``, ``<<<image_2>>>``."""
    if kind not in ("video", "image") or number < 1:
        raise ValueError(f"no input reference {kind!r} #{number}: use video 1 or image 1-2")
    return f"<<<{kind}_{number}>>>"


def placeholders_left(text: str) -> int:
    """How many template blanks (``[x]``, ``【】``) are still in ``text``."""
    return text.count("[x]") + text.count("【】")
