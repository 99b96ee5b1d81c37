"""The Edit step's reasons and the result placement, without Blender."""

from __future__ import annotations

import pytest

from blender_addon.pure.edit_check import ImageFacts, edit_problems, image_notes
from blender_addon.pure.placement import first_free_channel, result_name

GOOD = ImageFacts("image 1", 800, 600, "/x/ref.png", 1000)


def problems(**overrides):
    args = dict(edit_mode="removal", images=[], prompt="Delete the cup from <<<video_1>>>",
                negative_prompt="", has_session=True, marked_frames=1)
    args.update(overrides)
    return edit_problems(**args)


def test_a_complete_edit_has_no_problem():
    assert problems() == []
    assert problems(edit_mode="swap", images=[GOOD],
                    prompt="swap the ball from <<<image_1>>> for the cup in <<<video_1>>>") == []
    assert problems(edit_mode="addition", images=[GOOD, GOOD], marked_frames=0,
                    prompt="Using <<<video_1>>>, add <<<image_1>>> and <<<image_2>>>") == []


@pytest.mark.parametrize(("overrides", "reason"), [
    ({"has_session": False}, "Start a session first"),
    ({"marked_frames": 0}, "Mark the element to remove first"),
    ({"edit_mode": "swap", "marked_frames": 0, "images": [GOOD]}, "Mark the element to swap"),
    ({"edit_mode": "swap"}, "Choose a reference image"),
    ({"edit_mode": "removal", "images": [GOOD]}, "Remove the reference images"),
    ({"edit_mode": "swap", "images": [GOOD, GOOD]}, "at most 1 reference image"),
    ({"prompt": ""}, "prompt is required"),
    ({"prompt": "x" * 2501 + "<<<video_1>>>"}, "over the limit of 2500"),
    ({"negative_prompt": "y" * 2501}, "negative_prompt has 2501 characters"),
    ({"edit_mode": "swap", "images": [ImageFacts("image 1", 299, 600, "/a.png", 10)],
      "prompt": "swap <<<image_1>>> in <<<video_1>>>"}, "at least 300 px"),
    ({"edit_mode": "swap", "images": [ImageFacts("image 1", 1300, 500, "/a.png", 10)],
      "prompt": "swap <<<image_1>>> in <<<video_1>>>"}, "outside 1:2.5-2.5:1"),
])
def test_each_missing_piece_is_named(overrides, reason):
    found = problems(**overrides)
    assert found and reason in " | ".join(found)


def test_a_prompt_without_video_1_does_not_block_generate():
    """Kling's docs advise <<<video_1>>> but do not require it: the core sends such a prompt
    (with a logged hint), so the panel does not hold it back."""
    assert problems(prompt="Delete the cup") == []


def test_a_missing_image_is_reported_once_not_again_as_a_dangling_reference():
    found = problems(edit_mode="swap", prompt="swap <<<image_1>>> for the cup in <<<video_1>>>")
    assert found == ["Choose a reference image of the element"]


@pytest.mark.parametrize(("facts", "error", "note"), [
    (GOOD, "", ""),
    (ImageFacts("image 1", 800, 600, "/x/ref.webp", 1000), "", "converted to JPEG"),
    (ImageFacts("image 1", 800, 600, "/x/ref.jpg", 11 * 2**20), "", "11.0 MB"),
    (ImageFacts("image 1", 800, 600, "", 0), "", "sent as PNG"),
    (ImageFacts("image 1", 0, 0, "/x/missing.png", 0), "has no pixels", ""),
])
def test_image_notes(facts, error, note):
    got_error, got_note = image_notes(facts)
    assert (error in got_error) and (not error or got_error)
    assert (note in got_note) and (not note or got_note)


def test_first_free_channel_skips_channels_busy_over_the_source_range():
    occupied = [(1, 0, 100), (2, 50, 60), (3, 100, 200), (4, 0, 10)]
    assert first_free_channel(occupied, above=1, start=0, end=100) == 3
    assert first_free_channel(occupied, above=1, start=60, end=100) == 2
    with pytest.raises(ValueError, match="no free channel above 5"):
        first_free_channel([(c, 0, 10) for c in range(6, 129)], above=5, start=0, end=10)


def test_result_names_fit_blenders_63_bytes():
    assert result_name("plate", "Remove") == "plate · Remove"
    long = result_name("é" * 60, "Swap")
    assert len(long.encode()) <= 63 and long.endswith(" · Swap")
