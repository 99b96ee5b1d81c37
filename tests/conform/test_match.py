"""``match_source``: a result brought back to the source's rate, size, timing and span."""

from __future__ import annotations

import pytest

from kling_elements.conform import ConformCancelled, plan_conform
from kling_elements.conform.match import match_source, matched_frames
from kling_elements.conform.render import render
from kling_elements.conform.source import Mark, probe_source, source_clip

from .conftest import av, phone_times, read_code

CASES = {
    "m-2997-6s.mp4": dict(width=640, height=360, fps=29.97, seconds=6.0),
    "m-25-odd-3s.mp4": dict(width=641, height=361, fps=25, seconds=3.0),
    "m-vfr-3s.mp4": dict(width=360, height=640, fps=24, times=phone_times(3.0, 24)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_a_conformed_clip_matched_back_shows_the_source_frames_at_their_times(
        name, sources, tmp_path):
    """The conformed clip stands in for Kling's result (it shows the same frames): matched
    back, every source frame of the span is there at its own time, showing itself or its
    neighbour (the conformed clip repeats or drops a frame where the rates differ)."""
    source = sources(name, **CASES[name])
    media = probe_source(source.path)
    plan = plan_conform(source_clip(media, Mark.parse("f3")), out_dir=str(tmp_path))
    result = render(plan, media=media)
    matched = match_source(result, plan, tmp_path / "matched.mp4", media=media)
    with av.open(str(matched)) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height) == (source.width + source.width % 2,
                                                 source.height + source.height % 2)
        frames = [(f.pts * f.time_base, read_code(f)) for f in container.decode(stream)]
        rate = float(stream.average_rate)  # read while open: a closed container's is garbage
    t0 = source.times[3]
    span = [i for i in range(3, source.frame_count) if source.times[i] - t0 < plan.duration_s
            - 1e-6]
    assert len(frames) == len(span)
    pairs = matched_frames(plan, media, plan.fps, plan.frame_count)
    assert [s for s, _ in pairs] == span
    for (t, shown), (i, k) in zip(frames, pairs, strict=True):
        assert float(t) == pytest.approx(source.times[i] - t0, abs=2e-5)
        assert shown == plan.source_frame(k), (i, k, shown)  # the result frame nearest in time
        if not media.variable_rate:
            assert abs(shown - i) <= 1, (i, shown)
    if not media.variable_rate:
        assert rate == pytest.approx(source.fps, abs=1e-3)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_cancel_leaves_nothing(sources, tmp_path):
    source = sources("m-2997-6s.mp4", **CASES["m-2997-6s.mp4"])
    media = probe_source(source.path)
    plan = plan_conform(source_clip(media), out_dir=str(tmp_path / "c"))
    result = render(plan, media=media)
    with pytest.raises(ConformCancelled):
        match_source(result, plan, tmp_path / "m.mp4", cancel=lambda: True)
    assert not any(p.name.startswith("m.mp4") or ".part" in p.name for p in tmp_path.iterdir())
