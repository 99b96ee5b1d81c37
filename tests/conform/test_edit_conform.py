"""``edit --conform`` against the sandbox: a 25 fps plate is conformed, then edited.

Also: ``edit`` on such a plate without ``--conform`` is refused, naming ``--conform``, with
nothing sent; a second run reuses the conformed clip instead of rendering it again.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kling_elements.cli import main
from kling_elements.conform import read_record

from ..support.fixtures import sandbox_fixture
from .conftest import av

PROMPT = "Delete the ball from <<<video_1>>>"


sandbox = sandbox_fixture(scope="module", task_seconds=0.2)


@pytest.fixture(scope="module")
def plate(make_plate):
    """A 25 fps, 640x360, 2.6 s plate with the sample's orange ball."""
    return make_plate(640, 360, 25, 2.6, seed=4)


@pytest.fixture
def run(sandbox, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("KLINGAI_BASE_URL", sandbox.base_url)
    monkeypatch.setenv("KLINGAI_ACCESS_KEY", sandbox.access_key)
    monkeypatch.setenv("KLINGAI_SECRET_KEY", sandbox.secret_key)
    monkeypatch.delenv("KLINGAI_API_KEY", raising=False)
    monkeypatch.chdir(tmp_path)

    def call(*argv: object) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err

    return call


def _stats(sandbox) -> dict:
    import httpx

    response = httpx.get(f"{sandbox.base_url}/sandbox/stats",
                         headers={"Authorization": f"Bearer {sandbox.api_key}"})
    stats = response.json()["data"]
    # What reached the sandbox, not counting these queries of its statistics.
    stats["requests"] = {route: n for route, n in stats.get("requests", {}).items()
                         if not route.endswith("/sandbox/stats")}
    return stats


def _edit(plate, *extra):
    x, y = plate.center(0)
    return ["edit", plate.path, "--point", f"0:{x!r},{y!r}", "--edit", "removal",
            "--prompt", PROMPT, "-o", "out.mp4", *extra]


def test_edit_without_conform_names_it_and_sends_nothing(run, plate, sandbox, tmp_path):
    before = _stats(sandbox)
    code, out, err = run(*_edit(plate))
    assert code == 1 and out == ""
    (line,) = err.splitlines()
    assert line.startswith("error: video ") and "frame rate 25 fps is not 24, 30 or 60" in line
    assert "Add --conform to conform it first" in line
    assert _stats(sandbox) == before and list(tmp_path.iterdir()) == []


def test_start_without_conform_is_refused(run, plate, tmp_path):
    code, _, err = run(*_edit(plate, "--start", "0.5"))
    assert code == 1 and "--start/--end choose the span to conform: add --conform" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_edit_conform_conforms_then_edits_and_reuses_the_clip(run, plate, tmp_path):
    code, out, err = run(*_edit(plate, "--conform", "--json"))
    assert code == 0, err
    assert "25 fps → 24 fps" in err and "window: 0.00-2.58 s of 2.60 s" in err
    conformed = sorted(tmp_path.glob("out.conformed-*.mp4"))
    assert len(conformed) == 1
    plan = read_record(conformed[0])
    assert (plan.fps, plan.width, plan.height, plan.frame_count) == (24, 1280, 720, 62)
    report = json.loads(out)
    assert Path(report["output"]) == Path("out.mp4")
    with av.open(str(tmp_path / "out.mp4")) as container:
        stream = container.streams.video[0]
        assert float(stream.average_rate) == 24
        assert sum(1 for _ in container.decode(stream)) == 62
    state = json.loads((tmp_path / "out.mp4.kling.json").read_text())
    assert state["done"] is True

    stamp = conformed[0].stat().st_mtime_ns
    code, _, err = run(*_edit(plate, "--conform"))
    assert code == 0, err
    assert "is up to date: reused" in err and conformed[0].stat().st_mtime_ns == stamp


def _mask_iou(state: dict, frame: int, truth) -> float:
    import numpy as np
    from PIL import Image

    from kling_elements import rle

    (mask,) = state["selection"]["masks"][str(frame)]
    got = rle.decode(mask["counts"], mask["size"]).astype(bool)
    h, w = got.shape
    expected = np.asarray(Image.fromarray(truth).resize((w, h), Image.Resampling.NEAREST))
    return float((got & expected).sum() / (got | expected).sum())


@pytest.mark.slow
def test_a_point_in_source_terms_lands_on_the_object_in_the_session(run, plate, tmp_path):
    """Source frame 50 (2.0 s) of the 25 fps plate is session frame 48 of the 24 fps clip;
    the ball is there, so the sandbox's mask covers it."""
    x, y = plate.center(50)
    mark = "f50"
    code, _, err = run("edit", plate.path, "--conform", "--point", f"{mark}:{x!r},{y!r}",
                       "--edit", "removal", "--prompt", PROMPT, "-o", "out.mp4")
    assert code == 0, err
    assert f"point {mark} (source frame f50) -> session frame 48" in err
    state = json.loads((tmp_path / "out.mp4.kling.json").read_text())
    assert list(state["selection"]["points"]) == ["48"]
    truth = plate.mask(50)
    assert _mask_iou(state, 48, truth.astype(bool)) > 0.8


def test_a_point_outside_the_conformed_span_is_refused(run, plate, tmp_path):
    code, _, err = run("edit", plate.path, "--conform", "--start", "f10", "--point",
                       "f5:0.5,0.5", "--edit", "removal", "--prompt", PROMPT, "-o", "out.mp4")
    assert code == 1
    (line,) = [text for text in err.splitlines() if text.startswith("error:")]
    assert "point f5 is source frame f5, outside the conformed span f10-f63 (0.40-2.57 s)" \
        in line and "--start/--end" in line
    assert list(tmp_path.iterdir()) == []  # refused before the render


@pytest.mark.parametrize(("text", "session"), [("f50", 48), ("2.0s", 48), ("2.01", 48),
                                               ("f0", 0), ("f64", 62 - 1)])
def test_source_times_map_through_the_record(plate, text, session):
    from kling_elements.conform.cli import session_frame, source_mark
    from kling_elements.conform.run import prepare

    prepared = prepare(plate.path)
    assert session_frame(source_mark(text), prepared.media, prepared.plan) == session


def test_a_malformed_point_shows_the_forms(run, plate):
    with pytest.raises(SystemExit):
        main(["edit", str(plate.path), "--point", "soon:0.5,0.5", "--edit", "removal",
              "--prompt", PROMPT, "-o", "out.mp4"])


@pytest.mark.slow
def test_match_source_gives_back_the_plates_rate_size_and_span(run, plate, tmp_path):
    """The 25 fps 640x360 plate is edited at 24 fps 1280x720; --match-source writes the
    result at 25 fps, 640x360, the plate's own frame times; Kling's file is kept beside."""
    x, y = plate.center(0)
    code, out, err = run("edit", plate.path, "--conform", "--match-source", "--point",
                         f"f0:{x!r},{y!r}", "--edit", "removal", "--prompt", PROMPT, "-o",
                         "final.mp4", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert Path(report["output"]) == Path("final.mp4")
    assert Path(report["kling_output"]) == Path("final.kling.mp4")
    with av.open(str(tmp_path / "final.kling.mp4")) as container:
        assert container.streams.video[0].codec_context.width == 1280
    with av.open(str(tmp_path / "final.mp4")) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == (640, 360)
        assert float(stream.average_rate) == 25
        times = [float(f.pts * f.time_base) for f in container.decode(stream)]
    plan = read_record(next(tmp_path.glob("final.conformed-*.mp4")))
    span = plan.duration_s  # 62 frames at 24 fps: 2.583 s -> the plate's f0..f64
    assert times == pytest.approx([i / 25 for i in range(65)]) and span > 64 / 25

    # Run again: the edit is done, the matched file is kept; a new -o over a file is refused.
    code, _, err = run("edit", plate.path, "--conform", "--match-source", "--point",
                       f"f0:{x!r},{y!r}", "--edit", "removal", "--prompt", PROMPT, "-o",
                       "final.mp4")
    assert code == 0 and "already: kept" in err
    (tmp_path / "other.mp4").write_bytes(b"mine")
    code, _, err = run("edit", plate.path, "--conform", "--match-source", "--edit", "removal",
                       "--point", "0:0.5,0.5", "--prompt", PROMPT, "-o", "other.mp4")
    assert code == 1 and "other.mp4' already exists" in err
    assert (tmp_path / "other.mp4").read_bytes() == b"mine"


def test_match_source_needs_conform(run, plate):
    code, _, err = run(*_edit(plate, "--match-source"))
    assert code == 1 and "--match-source brings a conformed clip's result back" in err
