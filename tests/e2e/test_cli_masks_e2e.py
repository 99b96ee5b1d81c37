"""The CLI's masks against a sandbox that writes ``size`` as ``[w, h]``, as the docs' own
example does: ``select`` in a process of its own (after a separate ``init``) must still read
each mask with the session's ``(h, w)``, in both orientations of a non-square frame."""

from __future__ import annotations

import json

import pytest

from ..support.fixtures import sandbox_fixture
from ..support.sandbox import decode_rle, iou
from .test_cli_e2e import cli, secrets  # noqa: F401 - fixtures

sandbox = sandbox_fixture(scope="module", mask_size_order="wh", task_seconds=0.5)


@pytest.mark.slow
@pytest.mark.parametrize(("width", "height"), [(720, 1280), (1280, 720)],
                         ids=["portrait", "landscape"])
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
    assert f"of a {width}x{height} mask" in shown.out
