"""The PyAV renderer on a generated matrix of real-world formats.

For every case: the output passes the core's own validator and, decoded, has the plan's
rate, size, frame count and pixel format; every output frame shows (by the number painted on
it) the source frame the record says; and nothing but the clip and its record is left.
"""

from __future__ import annotations

import bisect
import threading
from pathlib import Path

import pytest

from kling_elements import validate
from kling_elements.conform import ConformCancelled, ConformError, plan_conform, read_record
from kling_elements.conform.render import render
from kling_elements.conform.source import Mark, probe_source, source_clip
from kling_elements.hosting import check_clip
from kling_elements.media import probe

from .conftest import av, has_encoder, phone_times, read_code

CASES = {
    # name: (write_source options, plan choice, expected (fps, width, height, seconds))
    "23976-272p-5.3s.mp4": (dict(width=640, height=272, fps=23.976, seconds=5.3), "AUTO",
                            (24, 1694, 720, 5.0)),
    "25-272p-12s.mp4": (dict(width=640, height=272, fps=25, seconds=12.0), "AUTO",
                        (24, 1694, 720, 10.0)),
    "25-360p-6s.mp4": (dict(width=640, height=360, fps=25, seconds=6.0), "AUTO",
                       (24, 1280, 720, 5.0)),
    "2997-360p-3s.mp4": (dict(width=640, height=360, fps=29.97, seconds=3.0), "AUTO",
                         (30, 1280, 720, 3.0)),
    "50-270p-2.2s.mp4": (dict(width=480, height=270, fps=50, seconds=2.2), "AUTO",
                         (60, 1280, 720, 2.2)),
    "5994-prores-2.1s.mov": (dict(width=320, height=240, fps=59.94, seconds=2.1,
                                  codec="prores_ks"), "AUTO", (60, 960, 720, 2.1)),
    "2997-hevc-2.2s.mov": (dict(width=480, height=270, fps=29.97, seconds=2.2,
                                codec="libx265"), "AUTO", (30, 1280, 720, 2.2)),
    "vfr-portrait-7.2s.mp4": (dict(width=360, height=640, fps=24, times=phone_times(7.2, 24)),
                              "AUTO", (24, 720, 1280, 7.2)),
    "25-1080p-2.1s.mp4": (dict(width=1920, height=1080, fps=25, seconds=2.1), "AUTO",
                          (24, 1920, 1080, 2.0)),
    "24-portrait-1080x1920-2.1s.mp4": (dict(width=1080, height=1920, fps=24, seconds=2.1),
                                       "AUTO", (24, 1080, 1920, 2.1)),
    # The big ones, kept tiny in time: a 4K UHD frame and a 40 s take.
    "24-4k-2.05s.mp4": (dict(width=3840, height=2160, fps=24, seconds=2.05), "AUTO",
                        (24, 2160, 1216, 2.05)),
    "25-40s-tiny.mp4": (dict(width=320, height=180, fps=25, seconds=40.0), "5",
                        (24, 1280, 720, 5.0)),
}



def _needs_encoder(options: dict) -> None:
    codec = options.get("codec", "libx264")
    if not has_encoder(codec):
        pytest.skip(f"this FFmpeg has no {codec} encoder")


def check_conformed(output: Path, source, expected_fps: int, size: tuple[int, int]):
    """Kling's rules, by the validator and by decoding; the record; frames shown."""
    plan = read_record(output)
    assert plan is not None and Path(plan.output) == output
    info = probe(output)
    assert validate.video_problems(info) == [], info
    check_clip(output)  # what `edit` runs before publishing
    with av.open(str(output)) as container:
        stream = container.streams.video[0]
        assert container.format.name.startswith("mov,mp4")
        assert stream.codec_context.name == "h264"
        assert float(stream.average_rate) == expected_fps == plan.fps
        assert (stream.width, stream.height) == size == (plan.width, plan.height)
        shown, pts = [], []
        for frame in container.decode(stream):
            assert frame.format.name == "yuv420p"
            shown.append(read_code(frame))
            pts.append(frame.pts * frame.time_base)
    assert len(shown) == plan.frame_count
    assert [p * expected_fps for p in pts] == list(range(plan.frame_count))  # constant rate
    assert shown == plan.source_frames()
    # The record's frames are the nearest in time (a tie to the later frame).
    times = source.times
    t0 = times[plan.first_frame]
    for k, frame in enumerate(shown):
        t = t0 + k / plan.fps
        i = bisect.bisect_left(times, t)
        best = min(abs(times[j] - t) for j in (i - 1, i) if 0 <= j < len(times))
        assert abs(times[frame] - t) <= best + 1e-6, (k, frame)
    return plan


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_conform_matrix(name, sources, tmp_path):
    options, choice, (fps, width, height, seconds) = CASES[name]
    _needs_encoder(options)
    source = sources(name, **options)
    media = probe_source(source.path)
    assert media.frame_count == source.frame_count
    plan = plan_conform(source_clip(media), choice, out_dir=str(tmp_path))
    progress = []
    output = render(plan, media=media, on_progress=lambda d, t: progress.append((d, t)))
    assert progress[-1] == (plan.frame_count, plan.frame_count) and len(progress) == \
        plan.frame_count
    assert plan.duration_s == pytest.approx(seconds, abs=1.5 / fps)
    check_conformed(output, source, fps, (width, height))
    assert sorted(p.name for p in tmp_path.iterdir()) == [output.name, output.name + ".json"]


def test_a_variable_rate_clip_is_read_as_such(sources):
    source = sources("vfr-portrait-7.2s.mp4", **CASES["vfr-portrait-7.2s.mp4"][0])
    media = probe_source(source.path)
    assert media.variable_rate and media.times == pytest.approx(source.times, abs=1e-4)
    plan = plan_conform(source_clip(media))
    assert plan.frame_map is not None and any("variable" in r for r in plan.reasons)


@pytest.mark.slow
def test_a_range_late_in_a_long_take_is_sought_by_time(sources, tmp_path):
    source = sources("25-272p-12s.mp4", **CASES["25-272p-12s.mp4"][0])
    media = probe_source(source.path)
    clip = source_clip(media, Mark.parse("6.5"), Mark.parse("f290"))
    assert (clip.first_frame, clip.frame_count) == (162, 128)
    plan = plan_conform(clip, "5", out_dir=str(tmp_path))
    assert plan.source_frame(0) == 162 and plan.frame_count == 120
    check_conformed(render(plan, media=media), source, 24, (1694, 720))


def test_a_clip_that_only_needs_a_new_size_keeps_every_frame(sources, tmp_path):
    source = sources("24-640-2.1s.mp4", width=640, height=360, fps=24, seconds=2.1)
    plan = plan_conform(source_clip(probe_source(source.path)), out_dir=str(tmp_path))
    assert plan.reasons == ("640×360 → 1280×720",)
    check_conformed(render(plan), source, 24, (1280, 720))
    assert plan.source_frames() == list(range(50))


def test_too_short_a_clip_is_refused_with_why_and_the_fix(sources):
    source = sources("25-1.5s.mp4", width=320, height=240, fps=25, seconds=1.5)
    with pytest.raises(ConformError) as info:
        plan_conform(source_clip(probe_source(source.path)))
    message = str(info.value)
    assert "1.52 s" in message and "at least 2 s" in message and "does not pad" in message
    assert "longer" in message


# ------------------------------------------------------------------ never a partial file


def _plan(sources, tmp_path, **kwargs):
    source = sources("25-360p-6s.mp4", **CASES["25-360p-6s.mp4"][0])
    media = probe_source(source.path)
    return plan_conform(source_clip(media), out_dir=str(tmp_path), **kwargs), media


def test_cancel_leaves_nothing(sources, tmp_path):
    plan, media = _plan(sources, tmp_path)
    stop = threading.Event()

    def progress(done: int, total: int) -> None:
        if done == 5:
            stop.set()

    with pytest.raises(ConformCancelled):
        render(plan, media=media, on_progress=progress, cancel=stop)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ConformCancelled):
        render(plan, media=media, cancel=lambda: True)
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_leaves_nothing_and_names_the_fix(sources, tmp_path, monkeypatch):
    import errno

    plan, media = _plan(sources, tmp_path)
    real_open = av.open

    class FullDisk:
        """An output container whose writes fail with ENOSPC after a few packets."""

        def __init__(self, inner):
            self.inner, self.packets = inner, 0

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self.inner.__exit__(*exc)

        def mux(self, packets):
            self.packets += 1
            if self.packets > 10:
                raise OSError(errno.ENOSPC, "No space left on device")
            return self.inner.mux(packets)

    def fake_open(path, mode="r", **kw):
        container = real_open(path, mode, **kw)
        return FullDisk(container) if mode == "w" else container

    monkeypatch.setattr(av, "open", fake_open)
    old = Path(plan.output)
    old.write_bytes(b"an older clip")
    with pytest.raises(ConformError) as info:
        render(plan, media=media)
    assert "No space left" in str(info.value) and "free some space" in str(info.value)
    assert [p.name for p in tmp_path.iterdir()] == [old.name]
    assert old.read_bytes() == b"an older clip"  # replaced only by a complete clip


def test_a_source_that_changed_since_the_plan_is_refused(sources, tmp_path):
    plan, _ = _plan(sources, tmp_path)
    short = sources("25-360p-2s.mp4", width=640, height=360, fps=25, seconds=2.0)
    from dataclasses import replace

    with pytest.raises(ConformError, match="changed since the plan"):
        render(replace(plan, source=str(short.path)))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_a_seek_that_lands_past_the_span_falls_back_to_reading_from_the_start(
        sources, tmp_path, monkeypatch):
    """A container whose index sends the seek too far (or an open GOP whose leading frames
    the decoder drops) must not lose the span's first frames."""
    source = sources("25-272p-12s.mp4", **CASES["25-272p-12s.mp4"][0])
    media = probe_source(source.path)
    plan = plan_conform(source_clip(media, Mark.parse("f100")), "5", out_dir=str(tmp_path))
    real_open = av.open
    seeks = []

    class BadIndex:
        def __init__(self, inner):
            self.inner = inner

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self.inner.__exit__(*exc)

        def seek(self, offset, **kw):
            seeks.append(offset)
            return self.inner.seek(offset + 90 * media.pts[1], **kw)  # 3.6 s too far

    def fake_open(path, mode="r", **kw):
        container = real_open(path, mode, **kw)
        return BadIndex(container) if mode == "r" else container

    monkeypatch.setattr(av, "open", fake_open)
    output = render(plan, media=media)
    monkeypatch.setattr(av, "open", real_open)
    assert seeks == [media.pts[100]]
    check_conformed(output, source, 24, (1694, 720))
