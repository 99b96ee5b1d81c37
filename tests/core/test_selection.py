"""SelectionState: the exact memory of what was sent, and the per-frame/per-session limits."""

from __future__ import annotations

import json
import math
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kling_elements import validate
from kling_elements.errors import ValidationError
from kling_elements.selection import SelectionState, same_point
from kling_elements.validate import MAX_FRAMES_PER_SESSION, MAX_POINTS_PER_FRAME, SESSION_TTL_S

AWKWARD = [
    (0.1 + 0.2, 1 / 3),
    (5e-324, 1.0),
    (0.0, 0.9999999999999999),
    (math.nextafter(0.5, 1.0), math.nextafter(0.5, 0.0)),
    (2**-30, 0.7071067811865476),
]


def bits(x: float) -> bytes:
    return struct.pack("<d", x)


def test_json_round_trip_preserves_floats_bit_exactly():
    state = SelectionState(session_id="sess-1", total_frames=120, fps=24.0, duration_s=5.0,
                           started_at=1_700_000_000.123456, video_id="vid-7")
    state.record(3, AWKWARD, [{"object_id": 1, "size": [720, 1280], "counts": "abc"}],
                 added=True)
    state.record(7, [(0.25, 0.75)], [], added=True)

    restored = SelectionState.from_dict(json.loads(json.dumps(state.to_dict())))

    assert restored == state
    assert restored.frames() == [3, 7]
    for got, want in zip(restored.points[3], AWKWARD, strict=True):
        assert bits(got[0]) == bits(want[0]) and bits(got[1]) == bits(want[1])
    assert restored.masks[3] == [{"object_id": 1, "size": [720, 1280], "counts": "abc"}]
    assert bits(restored.started_at) == bits(state.started_at)
    # a restored session still deletes exactly what was added
    assert restored.exact_points(3, [AWKWARD[0]]) == [AWKWARD[0]]


def test_same_point_is_bit_identity():
    assert same_point((0.1, 0.2), (0.1, 0.2))
    assert not same_point((-0.0, 0.5), (0.0, 0.5))
    assert not same_point((0.5, -0.0), (0.5, 0.0))
    assert not same_point((0.3, 0.5), (0.1 + 0.2, 0.5))
    assert not same_point((0.5, 0.5), (math.nextafter(0.5, 1.0), 0.5))


def test_exact_points_refuses_a_point_that_was_not_added():
    state = SelectionState(session_id="s")
    state.record(0, [(0.1 + 0.2, 0.5)], [], added=True)
    with pytest.raises(ValidationError) as info:
        state.exact_points(0, [(0.3, 0.5)])
    assert "0.3" in str(info.value) and "0.30000000000000004" in str(info.value)
    with pytest.raises(ValidationError, match="frame 1"):
        state.exact_points(1, [(0.1 + 0.2, 0.5)])


def test_eleventh_frame_is_refused_but_existing_frames_still_accept_points():
    state = SelectionState(session_id="s")
    for frame in range(MAX_FRAMES_PER_SESSION):
        state.check_add(frame, [(0.5, 0.5)])
        state.record(frame, [(0.5, 0.5)], [], added=True)
    with pytest.raises(ValidationError) as info:
        state.check_add(99, [(0.5, 0.5)])
    assert "99" in str(info.value) and str(MAX_FRAMES_PER_SESSION) in str(info.value)
    state.check_add(4, [(0.1, 0.1)])  # an already marked frame is fine
    # deleting a frame's last point frees its slot
    state.record(4, [(0.5, 0.5)], [], added=False)
    assert 4 not in state.frames()
    state.check_add(99, [(0.5, 0.5)])


def test_eleventh_point_on_a_frame_is_refused():
    state = SelectionState(session_id="s")
    state.record(2, [(i / 20, 0.5) for i in range(MAX_POINTS_PER_FRAME - 1)], [], added=True)
    state.check_add(2, [(0.99, 0.99)])
    with pytest.raises(ValidationError) as info:
        state.check_add(2, [(0.98, 0.98), (0.99, 0.99)])
    assert "9 point" in str(info.value) and str(MAX_POINTS_PER_FRAME) in str(info.value)


def test_record_delete_keeps_remaining_points_and_new_masks():
    state = SelectionState(session_id="s")
    state.record(5, [(0.1, 0.1), (0.2, 0.2)], [{"object_id": 1}], added=True)
    state.record(5, [(0.1, 0.1)], [{"object_id": 2}], added=False)
    assert state.points[5] == [(0.2, 0.2)]
    assert state.masks[5] == [{"object_id": 2}]


def test_a_point_added_twice_is_kept_twice_and_one_delete_removes_one_copy():
    """As Kling keeps it, so a restore replays the same list and the two never diverge."""
    state = SelectionState(session_id="s")
    state.record(5, [(0.1, 0.1)], [], added=True)
    state.record(5, [(0.1, 0.1), (0.2, 0.2)], [], added=True)
    assert state.points[5] == [(0.1, 0.1), (0.1, 0.1), (0.2, 0.2)]
    state.record(5, [(0.1, 0.1)], [], added=False)
    assert state.points[5] == [(0.1, 0.1), (0.2, 0.2)]
    with pytest.raises(ValidationError, match="was not added"):
        state.exact_points(5, [(0.2, 0.2), (0.2, 0.2)])  # one copy cannot be deleted twice


def test_old_state_dicts_without_the_video_still_load():
    data = SelectionState(session_id="s").to_dict()
    del data["video_url"], data["video_id"]
    state = SelectionState.from_dict(data)
    assert not state.restorable and state.video_url is None


def test_clear_forgets_everything():
    state = SelectionState(session_id="s")
    state.record(1, [(0.1, 0.1)], [{"object_id": 1}], added=True)
    state.clear()
    assert state.frames() == [] and state.points == {} and state.masks == {}


def test_expiry_is_a_day_after_start():
    state = SelectionState(session_id="s", started_at=1000.0)
    assert state.expires_at == 1000.0 + SESSION_TTL_S == 1000.0 + 86400
    assert state.seconds_left(now=2000.0) == 86400 - 1000


coordinate = st.one_of(st.just(-0.0), st.floats(min_value=0.0, max_value=1.0))


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(coordinate, coordinate), min_size=1, max_size=10))
def test_any_valid_point_survives_send_store_and_reload_bit_exactly(points):
    sent = validate.points(points)
    assert [x for p in sent for x in p] == [x for p in points for x in p]  # same values
    on_the_wire = json.loads(json.dumps([{"x": x, "y": y} for x, y in sent]))
    state = SelectionState(session_id="s")
    state.record(0, sent, [], added=True)
    reloaded = SelectionState.from_dict(json.loads(json.dumps(state.to_dict())))
    for wire, kept, original in zip(on_the_wire, reloaded.points[0], sent, strict=True):
        assert same_point((wire["x"], wire["y"]), original)
        assert same_point(kept, original)
        assert math.copysign(1.0, kept[0]) == 1.0 and math.copysign(1.0, kept[1]) == 1.0
    # the user deletes with the very values they clicked: it matches what was stored
    assert reloaded.exact_points(0, validate.points(points)) == sent
