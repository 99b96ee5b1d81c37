"""The Edit panel's checks read the core's rules and limits, not copies of them."""

from __future__ import annotations

from blender_addon.pure.edit_check import ImageFacts, edit_problems, image_notes
from kling_elements import validate


def test_the_size_note_names_the_cores_limit(monkeypatch):
    big = ImageFacts("image 1", 800, 600, "/x/ref.jpg", 7 * 2**20)
    assert image_notes(big) == ("", "")
    monkeypatch.setattr(validate, "IMAGE_MAX_BYTES", 5 * 2**20)
    assert image_notes(big)[1] == "image 1 is 7.0 MB, over 5 MB: it will be re-encoded smaller"


def test_the_selection_rule_is_the_cores(monkeypatch):
    def ask(edit_mode: str) -> list[str]:
        return edit_problems(edit_mode=edit_mode, images=[], prompt="Delete <<<video_1>>>",
                             negative_prompt="", has_session=True, marked_frames=0)

    assert ask("removal") == ["Mark the element to remove first (Select Elements)"]
    monkeypatch.setattr(validate, "SELECTION_EDIT_MODES", ())
    assert ask("removal") == []
