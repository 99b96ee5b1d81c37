"""Strip timing through ``compat``: the values Blender shows, under any Blender, without a warning.

Blender 5.1 renamed the strip timing properties (``frame_final_start`` -> ``left_handle``, ...)
and deprecates the old names; 4.2-5.0 have only the old ones. The add-on names timing by the
new names; ``compat`` reads whichever this Blender has.
"""

from __future__ import annotations

import warnings

import pytest

from .conftest import bpy


def _old(strip, name: str):
    """The value under the 4.2-5.0 name (deprecated in 5.1+, so its warning is silenced)."""
    from blender_addon import compat

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return getattr(strip, compat.TIMING_NAMES[name])


@pytest.fixture
def edited_strip(movie_strip):
    """The 60-frame clip moved to frame 11, its first 4 file frames trimmed off the content,
    its left handle 5 frames in and its right handle 7 frames in (set under the old names,
    the way every Blender understands them)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        movie_strip.animation_offset_start = 4
        movie_strip.frame_start = 11
        movie_strip.frame_offset_start = 5
        movie_strip.frame_offset_end = 7
    return movie_strip


def test_every_timing_name_reads_what_the_old_property_shows(edited_strip):
    from blender_addon import compat

    got = {name: compat.timing(edited_strip, name) for name in compat.TIMING_NAMES}
    assert got == {name: _old(edited_strip, name) for name in compat.TIMING_NAMES}
    # The clip has 60 frames; 4 are trimmed from the content, 5 + 7 hidden by the handles.
    assert got["content_start"] == 11 and got["content_trim_start"] == 4
    assert (got["left_handle"], got["right_handle"]) == (16, 11 + 56 - 7)
    assert got["duration"] == 56 - 5 - 7 and got["content_duration"] == 56


def test_writes_move_what_blender_shows(edited_strip):
    from blender_addon import compat

    compat.set_timing(edited_strip, "left_handle", 20)
    compat.set_timing(edited_strip, "right_handle", 40)
    assert (_old(edited_strip, "left_handle"), _old(edited_strip, "right_handle")) == (20, 40)
    assert _old(edited_strip, "duration") == 20
    compat.set_timing(edited_strip, "content_trim_end", 2)
    assert _old(edited_strip, "content_trim_end") == 2
    compat.set_timing(edited_strip, "content_start", 1)  # moves the strip, handles along
    assert compat.timing(edited_strip, "left_handle") == 10


def test_no_timing_access_warns(edited_strip):
    """Under 5.1+ every old name warns "expected to be removed in Blender 6.0"."""
    from blender_addon import compat

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        properties = edited_strip.bl_rna.properties
        for name in compat.TIMING_NAMES:
            value = compat.timing(edited_strip, name)
            # content_duration is read-only in every version, duration in 5.1.0
            if not properties[compat._timing_attribute(edited_strip, name)].is_readonly:
                compat.set_timing(edited_strip, name, value)
    assert [str(w.message) for w in caught] == []


def test_new_names_are_used_where_blender_has_them(edited_strip):
    from blender_addon import compat

    properties = edited_strip.bl_rna.properties
    renamed = bpy.app.version >= (5, 1, 0)
    for name, old in compat.TIMING_NAMES.items():
        assert (name in properties) == renamed, name
        assert compat._timing_attribute(edited_strip, name) == (name if renamed else old)


def test_a_strip_without_the_property_and_an_unknown_name(movie_strip):
    from blender_addon import compat

    editor = bpy.context.scene.sequence_editor
    strips = compat.top_level(editor)
    takes = {p.identifier for p in strips.bl_rna.functions["new_effect"].parameters}
    length = {"length": 10} if "length" in takes else {"frame_end": 11}  # 5.0 / 4.2
    color = strips.new_effect("matte", "COLOR", 3, frame_start=1, **length)
    assert compat.timing(color, "left_handle") == 1
    assert compat.timing(color, "content_trim_start", 0) == 0
    with pytest.raises(AttributeError, match="content_trim_start"):
        compat.timing(color, "content_trim_start")
    with pytest.raises(KeyError, match=r"frame_final_start.*left_handle"):
        compat.timing(movie_strip, "frame_final_start")
