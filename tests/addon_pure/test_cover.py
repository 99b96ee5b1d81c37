"""Which strips above a marked one hide it at a point of the Preview (``cover``)."""

from __future__ import annotations

import math

import pytest

from blender_addon.pure import mapping
from blender_addon.pure.cover import Layer, covering_layer, hides

CANVAS = {"canvas_w": 1280, "canvas_h": 720}
# A 1280x720 picture scaled to a quarter, moved to the right half: covers view x 160..480.
INSET = mapping.StripGeometry(image_w=1280, image_h=720, scale=(0.25, 0.25),
                              offset=(320.0, 0.0), **CANVAS)
INSIDE, OUTSIDE = (320.0, 0.0), (-400.0, 0.0)


def layer(blend="ALPHA_OVER", opacity=1.0, opaque=True, geometry=INSET, channel=3, name="top"):
    return Layer(name=name, channel=channel, blend=blend, opacity=opacity, opaque=opaque,
                 geometry=geometry)


@pytest.mark.parametrize(("top", "inside", "outside"), [
    (layer(), True, False),                                  # opaque picture: only its area
    (layer(opacity=0.5), False, False),                      # see-through: mixed, not hidden
    (layer(opaque=False), False, False),                     # may have alpha: not hidden
    (layer(blend="REPLACE"), True, True),                    # stops the stack everywhere
    (layer(blend="REPLACE", opacity=0.3), True, True),       # ... at any opacity
    (layer(blend="CROSS"), True, True),
    (layer(blend="CROSS", opacity=0.5), False, False),
    (layer(blend="GAMMA_CROSS"), True, True),
    (layer(blend="ADD"), False, False),
    (layer(blend="MULTIPLY"), False, False),
    (layer(blend="ALPHA_UNDER"), False, False),
    (layer(geometry=None), False, False),                    # size unknown: cannot tell
])
def test_what_hides_where(top, inside, outside):
    assert hides(top, *INSIDE) is inside
    assert hides(top, *OUTSIDE) is outside


def test_the_hidden_area_follows_rotation_and_crop():
    turned = mapping.StripGeometry(image_w=1280, image_h=720, scale=(0.25, 0.25),
                                   rotation=math.pi / 2, **CANVAS)
    # Upright it spans x -160..160, y -90..90; turned a quarter, x -90..90 and y -160..160.
    assert hides(layer(geometry=turned), 0.0, 150.0)
    assert not hides(layer(geometry=turned), 150.0, 0.0)
    cropped = mapping.StripGeometry(image_w=1280, image_h=720, crop=(640.0, 0.0, 0.0, 0.0),
                                    **CANVAS)
    assert not hides(layer(geometry=cropped), -320.0, 0.0)  # the cropped-away left half
    assert hides(layer(geometry=cropped), 320.0, 0.0)


def test_only_layers_above_count_and_the_highest_hiding_one_is_named():
    below = layer(blend="REPLACE", channel=1, name="under")
    mixer = layer(blend="ADD", channel=5, name="glow")
    inset = layer(channel=3, name="inset")
    full = layer(blend="REPLACE", channel=4, name="replace")
    assert covering_layer(2, [below], *INSIDE) is None
    assert covering_layer(2, [below, mixer], *INSIDE) is None
    assert covering_layer(2, [below, mixer, inset], *INSIDE).name == "inset"
    assert covering_layer(2, [below, mixer, inset], *OUTSIDE) is None
    assert covering_layer(2, [inset, full, mixer], *INSIDE).name == "replace"
    assert covering_layer(4, [inset, full], *INSIDE) is None  # same channel is the strip


def test_blender_4_2_0_rule_an_opaque_alpha_over_hides_the_whole_frame():
    """4.2.0 renders an opaque Alpha Over strip over the whole frame (a real render says so:
    tests/addon/test_addon_sources.py); only that rule changes, see-through ones still mix."""
    assert hides(layer(), *OUTSIDE, alpha_over_whole_frame=True)
    assert hides(layer(geometry=None), *OUTSIDE, alpha_over_whole_frame=True)
    assert not hides(layer(opacity=0.5), *INSIDE, alpha_over_whole_frame=True)
    assert not hides(layer(opaque=False), *INSIDE, alpha_over_whole_frame=True)
    top = layer(name="inset")
    assert covering_layer(1, [top], *OUTSIDE) is None
    assert covering_layer(1, [top], *OUTSIDE, alpha_over_whole_frame=True) is top


FULL = mapping.StripGeometry(image_w=1280, image_h=720, **CANVAS)


def meta(content, blend="ALPHA_OVER", geometry=FULL, opacity=1.0):
    return Layer(name="meta", channel=5, blend=blend, opacity=opacity, opaque=True,
                 geometry=geometry, content=tuple(content))


def test_a_meta_hides_where_its_content_is_opaque():
    assert hides(meta([layer()]), *INSIDE)
    assert not hides(meta([layer()]), *OUTSIDE)  # transparent where its strips draw nothing
    assert not hides(meta([]), *INSIDE)
    assert not hides(meta([layer(opacity=0.5)]), *INSIDE)
    assert not hides(meta([layer(blend="ADD")]), *INSIDE)
    # Inside the meta, Replace stops its stack but leaves the canvas transparent outside it.
    assert not hides(meta([layer(blend="REPLACE"), layer(geometry=FULL, channel=1)]), *OUTSIDE)
    assert hides(meta([layer(blend="ADD"), layer(geometry=FULL, channel=1)]), *OUTSIDE)
    assert hides(meta([layer()], blend="REPLACE"), *OUTSIDE)  # the meta's own blend
    assert hides(meta([layer()]), *OUTSIDE, alpha_over_whole_frame=True)


def test_a_meta_moves_its_content_with_its_transform():
    half_left = mapping.StripGeometry(image_w=1280, image_h=720, scale=(0.5, 0.5),
                                      offset=(-320.0, 0.0), **CANVAS)
    full_inside = meta([layer(geometry=FULL)], geometry=half_left)
    assert hides(full_inside, -320.0, 0.0) and not hides(full_inside, 320.0, 0.0)
    # The inset at view x 160..480 of the meta's canvas shows at x -240..-80 in the scene.
    inset_inside = meta([layer()], geometry=half_left)
    assert hides(inset_inside, -160.0, 0.0) and not hides(inset_inside, *INSIDE)


def test_a_point_of_a_meta_canvas_follows_the_meta_up():
    from blender_addon.pure.cover import canvas_to_view

    half = mapping.StripGeometry(image_w=1280, image_h=720, scale=(0.5, 0.5),
                                 offset=(320.0, 180.0), **CANVAS)
    assert canvas_to_view(half, 200.0, 100.0) == pytest.approx((420.0, 230.0))
    cropped = mapping.StripGeometry(image_w=1280, image_h=720, crop=(640.0, 0.0, 0.0, 0.0),
                                    **CANVAS)
    assert canvas_to_view(cropped, -320.0, 0.0) is None  # the meta's crop cut it away
    assert canvas_to_view(cropped, 320.0, 0.0) == pytest.approx((320.0, 0.0))
