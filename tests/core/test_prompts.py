from __future__ import annotations

import pytest

from kling_elements import prompts, validate


@pytest.mark.parametrize("mode", validate.EDIT_MODES)
@pytest.mark.parametrize("language", prompts.LANGUAGES)
def test_every_template_passes_the_prompt_rules_for_its_mode(mode, language):
    images = {"addition": 1, "swap": 1, "removal": 0}[mode]
    text = prompts.template(mode, language)
    assert validate.prompt(text, images) == text
    assert "<<<video_1>>>" in text
    assert prompts.placeholders_left(text) >= 1


def test_unknown_mode_or_language_names_the_choices():
    with pytest.raises(ValueError, match="addition, swap, removal"):
        prompts.template("remove")
    with pytest.raises(ValueError, match="en, zh"):
        prompts.template("swap", "fr")


def test_tokens():
    assert prompts.token("video") == "<<<video_1>>>"
    assert prompts.token("image", 2) == "<<<image_2>>>"
    with pytest.raises(ValueError):
        prompts.token("audio")
    assert prompts.placeholders_left("swap a cat from <<<image_1>>> for the dog") == 0
