"""The CLI's masks against a sandbox that writes ``size`` as ``[w, h]``, as the docs' own
example does, with and without ``width``/``height`` in its init answers (documented as
"currently unused"): ``select`` after a separate ``init``, and ``edit``, must read every
mask with the session's ``(h, w)`` in both orientations of a non-square frame."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from kling_elements.sandbox import RunningSandbox, running

from ..support.sandbox import REMOVE_PROMPT, decode_rle, iou
from .test_cli_e2e import cli, secrets  # noqa: F401 - fixtures

ORIENTATIONS = pytest.mark.parametrize(("width", "height"), [(720, 1280), (1280, 720)],
                                       ids=["portrait", "landscape"])


@pytest.fixture(scope="module", params=[True, False],
                ids=["init-gives-size", "init-leaves-size-out"])
def sandbox(request) -> Iterator[RunningSandbox]:
    with running(mask_size_order="wh", init_frame_size=request.param,
                 task_seconds=0.5) as sb:
        yield sb


@pytest.mark.slow
@ORIENTATIONS
def test_select_after_a_separate_init_reads_a_wh_size_with_the_session_frame(
    cli, make_plate, width, height  # noqa: F811
):
    clip = make_plate(width, height, 30, 2.0)
    started = cli("init", "--file", clip.path, "--json")
    assert started.code == 0, started.err
    sid = json.loads(started.out)["session_id"]
    x, y = (float(v) for v in clip.center(0))

    selected = cli("select", sid, "0", f"{x!r},{y!r}", "--json")
    assert selected.code == 0, selected.err
    (mask,) = json.loads(selected.out)["masks"]
    assert mask["size"] == [height, width]
    assert iou(decode_rle(mask), clip.mask(0)) >= 0.9

    shown = cli("select", sid, "0", f"{x!r},{y!r}")  # a second identical point, as text
    assert shown.code == 0, shown.err
    assert f"of a {width}x{height} frame" in shown.out


@pytest.mark.slow
@ORIENTATIONS
def test_edit_keeps_masks_read_with_the_session_frame(cli, make_plate, tmp_path,  # noqa: F811
                                                     width, height):
    clip = make_plate(width, height, 30, 2.0)
    x, y = (float(v) for v in clip.center(0))
    run = cli("edit", clip.path, "--point", f"0:{x!r},{y!r}", "--edit", "removal",
              "--prompt", REMOVE_PROMPT, "-o", "out.mp4", "--quiet")
    assert run.code == 0, run.err
    state = json.loads((tmp_path / "out.mp4.kling.json").read_text())
    (mask,) = state["selection"]["masks"]["0"]
    assert mask["size"] == [height, width]
    assert iou(decode_rle(mask), clip.mask(0)) >= 0.9
