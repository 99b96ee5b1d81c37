"""Cost end to end, against a sandbox of its own (so its account counts only these tests):
the CLI's edit shows each step and the total, ``account`` shows what is left and agrees with
the sum of the answers, restores say what they cost or are refused."""

from __future__ import annotations

import json
import logging
from decimal import Decimal

import httpx
import pytest

import kling_elements as ke
from kling_elements.cli import main
from kling_elements.cost import SELECTION_UNITS, TASK_UNITS
from kling_elements.hosting import SandboxHost

from ..support.fixtures import sandbox_fixture
from ..support.sandbox import REMOVE_PROMPT, advance

pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation:DeprecationWarning"  # pycocotools on numpy 2
)
D = Decimal
PACK = 500.0
DAY_S = 24 * 3600
INIT, ADD = SELECTION_UNITS["init-selection"], SELECTION_UNITS["add-selection"]


own = sandbox_fixture(scope="function", name="own", task_seconds=0.3, pack_units=PACK)


@pytest.fixture
def cli(own, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("KLINGAI_BASE_URL", own.base_url)
    monkeypatch.setenv("KLINGAI_API_KEY", own.api_key)
    monkeypatch.chdir(tmp_path)

    def run(*argv):
        capsys.readouterr()
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def _point(clip, frame=0) -> str:
    x, y = (float(v) for v in clip.center(frame))
    return f"{frame}:{x!r},{y!r}"


@pytest.mark.slow
def test_edit_shows_each_step_and_the_total_and_the_account_agrees(cli, clip):
    code, out, err = cli("edit", clip.path, "--point", _point(clip, 0), "--point",
                         _point(clip, 30), "--edit", "removal", "--prompt", REMOVE_PROMPT,
                         "--mode", "pro", "-o", "out.mp4", "--json")
    assert code == 0, err
    cost = json.loads(out)["cost"]
    steps = [(s["step"], s.get("frame_index"), D(repr(s["cost"]["units"])))
             for s in cost["steps"]]
    task_units = TASK_UNITS[("pro", "5")]
    assert steps == [("init-selection", None, INIT), ("add-selection", 0, ADD),
                     ("add-selection", 30, ADD), ("task", None, task_units)]
    total = INIT + 2 * ADD + task_units
    assert D(repr(cost["total"]["units"])) == total
    # Each step on stderr as it is charged, then the summary with the total.
    assert "cost: add-selection (frame 30): 0.1 units (edit so far: 0.4 units)" in err
    assert f"  total: {total} units" in err

    code, out, err = cli("account", "--json")
    assert code == 0, err
    data = json.loads(out)
    (pack,) = data["packs"]
    assert D(repr(data["remaining"])) == D(repr(PACK)) - total
    assert pack["status"] == "online" and pack["total"] == PACK
    # A second query within the second is paced by the sandbox's 1302 and retried, not lost.
    code, out, err = cli("account", "--pack", "Sandbox video pack")
    assert code == 0, err
    assert out.splitlines()[0].startswith(f"Sandbox video pack: {D(repr(PACK)) - total} of "
                                          "500 units left (online; decreasing_total;")
    assert "may lag" in out


def test_account_refuses_a_bad_date_before_sending(cli):
    with pytest.raises(SystemExit) as usage:
        cli("account", "--start", "last tuesday")
    assert usage.value.code == 2


@pytest.mark.slow
def test_restores_say_what_they_cost_or_are_refused(own, clip, caplog):
    reports = []
    with ke.Client(api_key=own.api_key, base_url=own.base_url,
                   on_restore=reports.append) as client:
        url = SandboxHost(client.http).publish(clip.path)
        init = client.init_selection(video_url=url)
        for frame in (0, 30):
            client.add_selection(init.session_id, frame, [clip.center(frame)])
        with ke.Client(api_key=own.api_key, base_url=own.base_url,
                       auto_restore=False) as strict:
            strict.sessions[init.session_id] = ke.SelectionState.from_dict(
                client.sessions[init.session_id].to_dict())
            with own.state.lock:
                sessions_before = len(own.state.sessions)
            with httpx.Client(base_url=own.base_url, headers={
                    "Authorization": f"Bearer {own.api_key}"}) as admin:
                advance(admin, DAY_S + 60)  # both copies of the session expired at Kling
                with pytest.raises(ke.RestoreDisabledError, match="auto_restore=False"):
                    strict.add_selection(init.session_id, 10, [clip.center(10)])
                with own.state.lock:  # refused by Kling (1203), and no new session started
                    assert len(own.state.sessions) == sessions_before
                # The same call with restores allowed: Kling says the session is gone
                # (1203), the client restores it (init + 2 adds) and carries on.
                with caplog.at_level(logging.INFO, logger="kling_elements"):
                    client.add_selection(init.session_id, 10, [clip.center(10)])
        (report,) = reports
        assert report.frames == 2 and report.cost.units == INIT + 2 * ADD
        state = client.sessions[init.session_id]
        assert state.restores == 1 and state.restore_spent.units == INIT + 2 * ADD
        assert state.spent.units == (INIT + 2 * ADD) * 2 + ADD
        assert f"cost {INIT + 2 * ADD} units" in caplog.text

        # A restore asked for (what the add-on once did with a copy of its own) carries the
        # total on too.
        spent = state.spent.units
        fresh = client.restore(state)
        assert fresh.restores == 2 and len(reports) == 2
        assert reports[-1].cost.units == INIT + 3 * ADD
        assert fresh.spent.units == spent + INIT + 3 * ADD
