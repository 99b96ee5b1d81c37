"""Meta, colour and effect strips hide a marked strip as the sequencer renders them.

Reference: a real render of the scene, as for the other cover tests. A strip is hidden at a
point when the rendered pixel there is the same with the marked strip drawn and muted; the
add-on must name a covering strip exactly then. Cases: a meta strip above the marked one
(its content decides where it is opaque), the marked strip inside a meta (strips above it
in the meta, and strips above the meta at the top), a colour strip above, and effects that
show one input strip (the marked one: it is seen only through the effect).
"""

from __future__ import annotations

import pytest

from .conftest import bpy, drain, render_pixels
from .test_addon_sources import _sent, _start

W, H = 1280, 720
CENTRE, CORNER = (0.0, 0.0), (-500.0, -300.0)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    from kling_elements.sandbox.sample import make_clip

    folder = tmp_path_factory.mktemp("meta")
    return [make_clip(folder / f"{seed}.mp4", width=W, height=H, fps=30, seconds=0.5, seed=seed)
            for seed in (3, 11)]


def _scene():
    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    scene.render.resolution_x, scene.render.resolution_y = W, H
    scene.render.fps = 30
    scene.sequence_editor_create()
    scene.frame_set(1)
    return scene


def _movie(scene, name, clip, channel, scale=1.0):
    from blender_addon import compat

    strip = compat.new_movie(scene.sequence_editor, name, str(clip.path), channel, 1)
    strip.transform.scale_x = strip.transform.scale_y = scale
    return strip


def _meta(scene, channel, *inside):
    from blender_addon import compat

    meta = compat.top_level(scene.sequence_editor).new_meta("meta", channel, 1)
    for strip in inside:
        strip.move_to_meta(meta)
    return meta


def meta_above(scene, plate, over, blend="ALPHA_OVER", scale=1.0, inner_blend="ALPHA_OVER"):
    over.transform.scale_x = over.transform.scale_y = 0.25
    over.blend_type = inner_blend
    meta = _meta(scene, 3, over)
    meta.blend_type = blend
    meta.transform.scale_x = meta.transform.scale_y = scale


def plate_in_meta(scene, plate, over, over_channel=5, meta_channel=2):
    over.channel = over_channel
    _meta(scene, meta_channel, plate)


def sibling_in_meta(scene, plate, over):
    _meta(scene, 2, plate, over)


def _effect(scene, kind: str, channel: int, source=None):
    from blender_addon import compat

    strips = compat.top_level(scene.sequence_editor)
    takes = strips.bl_rna.functions["new_effect"].parameters.keys()
    options = {"length": 10} if "length" in takes else {"frame_end": 10}  # renamed in 5.0
    if source is not None:
        options["input1" if "input1" in takes else "seq1"] = source
    return strips.new_effect("fx", kind, channel, 1, **options)


def colour_above(scene, plate, over):
    over.mute = True
    colour = _effect(scene, "COLOR", 6)
    colour.transform.scale_x = colour.transform.scale_y = 0.25


def effect_on_plate(scene, plate, over, kind):
    over.mute = True
    _effect(scene, kind, 6, plate)


def effect_on_inset(scene, plate, over, kind):
    over.transform.scale_x = over.transform.scale_y = 0.25
    _effect(scene, kind, 6, over)


CASES = {
    "meta above, inset content": (meta_above, {}),
    "meta above, Replace": (meta_above, {"blend": "REPLACE"}),
    "meta above, Add": (meta_above, {"blend": "ADD"}),
    "meta above, scaled": (meta_above, {"scale": 0.5}),
    "meta above, content Replace": (meta_above, {"inner_blend": "REPLACE"}),
    "in meta, strip above the meta": (plate_in_meta, {}),
    "in meta, strip above the meta on a lower channel number": (
        plate_in_meta, {"over_channel": 4, "meta_channel": 2}),
    "in meta, strip below the meta": (plate_in_meta, {"over_channel": 3, "meta_channel": 5}),
    "in meta, sibling above": (sibling_in_meta, {}),
    "colour strip above": (colour_above, {}),
    "glow on the plate": (effect_on_plate, {"kind": "GLOW"}),
    "speed control on the plate": (effect_on_plate, {"kind": "SPEED"}),
    "blur of an inset above": (effect_on_inset, {"kind": "GAUSSIAN_BLUR"}),
}


# Blender 5.2.0's own renders differ from every other tested release in these cases: a
# colour strip with a transform is not drawn at all, and a full-opacity Alpha Over meta
# hides its whole placed picture, transparent parts too (measured; 5.2.3 and 5.2.4 render
# as 5.3; 5.2.1 and 5.2.2 were not measured).
# The add-on follows the later releases: under 5.2.0 it refuses a click on a colour strip's
# place that 5.2.0 shows, and takes one in a meta's transparent part that 5.2.0 hides.
RENDERED_OTHERWISE_IN_520 = {"meta above, inset content", "meta above, content Replace",
                             "colour strip above"}


def _case(name: str):
    if tuple(bpy.app.version[:3]) == (5, 2, 0) and name in RENDERED_OTHERWISE_IN_520:
        return pytest.param(name, marks=pytest.mark.xfail(
            strict=True, reason="Blender 5.2.0 renders this case unlike 5.2.4 and later"))
    return name


@pytest.mark.parametrize("case", [_case(name) for name in CASES])
def test_hidden_means_what_the_sequencer_renders(addon, clips, tmp_path, case):
    import numpy as np

    from blender_addon.bridge import geometry

    scene = _scene()
    plate = _movie(scene, "plate", clips[0], 2)
    over = _movie(scene, "over", clips[1], 4, scale=0.25 if "in meta" in case else 1.0)
    build, options = CASES[case]
    build(scene, plate, over, **options)
    shown = render_pixels(scene, tmp_path, CENTRE, CORNER)
    plate.mute = True
    without = render_pixels(scene, tmp_path, CENTRE, CORNER)
    plate.mute = False
    for point, pixel, pixel_without in zip((CENTRE, CORNER), shown, without, strict=True):
        hidden = bool(np.allclose(pixel, pixel_without, atol=1 / 255))
        found = geometry.covering_strip(scene, plate, scene.frame_current, *point)
        assert (found is not None) is hidden, (case, point, found)


def test_the_point_follows_a_transformed_meta(addon, clips, tmp_path):
    """The marked strip inside a meta scaled to a half and moved: a strip above the meta
    covers the top-right quarter of the canvas; the plate's corner point lands under it only
    through the meta's transform."""
    import numpy as np

    from blender_addon import compat
    from blender_addon.bridge import geometry

    scene = _scene()
    plate = _movie(scene, "plate", clips[0], 2)
    over = _movie(scene, "over", clips[1], 5, scale=0.5)
    over.transform.offset_x, over.transform.offset_y = W / 4, H / 4
    meta = _meta(scene, 3, plate)
    meta.transform.scale_x = meta.transform.scale_y = 0.5
    meta.transform.offset_x, meta.transform.offset_y = W / 4, H / 4
    inner = (200.0, 100.0)  # in the meta's canvas: shows at (W/4 + 100, H/4 + 50)
    outer = (W / 4 + inner[0] / 2, H / 4 + inner[1] / 2)
    # 4.2.0's occlusion is modelled as "the whole frame" (compat); measured here, it does
    # not skip a transformed meta beside the strip above: that case is left out on 4.2.0.
    placements = ((W / 4, True),) if compat.ALPHA_OVER_HIDES_WHOLE_FRAME else (
        (W / 4, True), (-W / 4, False))
    for offset_x, expected in placements:  # over the point, then beside it
        over.transform.offset_x = offset_x
        [shown] = render_pixels(scene, tmp_path, outer)
        plate.mute = True
        [without] = render_pixels(scene, tmp_path, outer)
        hidden = bool(np.allclose(shown, without, atol=1 / 255))
        plate.mute = False
        assert hidden is expected
        assert (geometry.covering_strip(scene, plate, 1, *inner) is not None) is hidden


def test_a_click_on_a_strip_inside_a_meta_under_another_strip_sends_nothing(
        connected, sandbox, clip, clips):
    from blender_addon.bridge.props import load_selection
    from blender_addon.ops import select as ops_select
    from kling_elements import ValidationError

    scene = _scene()
    plate = _movie(scene, "plate", clip, 2)
    _meta(scene, 2, plate)
    scene.sequence_editor.active_strip = plate
    _start(plate)
    over = _movie(scene, "over", clips[1], 4)
    before = _sent(sandbox)
    with pytest.raises(ValidationError, match="the strip is covered by 'over' at this frame"):
        ops_select.request_add(bpy.context, plate, 0, [(0.5, 0.5)])
    drain()
    assert _sent(sandbox) == before and not load_selection(plate).points.get(0)
    over.mute = True
    ops_select.request_add(bpy.context, plate, 0, [(0.5, 0.5)])
    drain()
    assert len(load_selection(plate).points.get(0, [])) == 1, \
        bpy.context.window_manager.kling.error
