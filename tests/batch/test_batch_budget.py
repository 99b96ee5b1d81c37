"""A batch's spend limit: jobs held back before they spend, or just before their task; the
report's costs per job and in total; a rerun with a larger budget continues the held jobs."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from kling_elements import batch
from kling_elements.batch.budget import Budget, BudgetHeld
from kling_elements.batch.manifest import from_records
from kling_elements.cli import main
from kling_elements.cost import SELECTION_UNITS, TASK_UNITS
from kling_elements.hosting import SandboxHost
from kling_elements.sandbox.sample import make_clip

from ..support.batch import FRAMES, job
from ..support.media import frame_count
from ..support.sandbox import created_total

D = Decimal
# What one removal of the 2 s plates costs at the sandbox: init, one add, a std 5 s task.
JOB_UNITS = (SELECTION_UNITS["init-selection"] + SELECTION_UNITS["add-selection"]
             + TASK_UNITS[("std", "5")])


def manifest(folder, plates, names, header=None):
    (plate, clip), _ = sorted(plates.items())
    lines = ([{"batch": header}] if header is not None else []) + [
        job(name, plate, clip) for name in names]
    path = folder / "budget.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def statuses(report) -> dict[str, str]:
    return {j.name: j.status for j in report.jobs}


# -- the pieces ------------------------------------------------------------------------------


def test_the_budget_reserves_what_running_jobs_are_expected_to_cost():
    budget = Budget(D("3"))
    budget.reserve("a", D("1.3"))
    budget.reserve("b", D("1.3"))
    with pytest.raises(BudgetHeld, match=r"held: budget: 2.6 of 3 units .* about 1.3 more"):
        budget.reserve("c", D("1.3"))
    budget.report("a", D("0.3"))  # a's selection was charged: 1 unit is still expected
    assert budget.spent() == D("0.3") and budget.committed() == D("2.6")
    budget.report("a", D("1.3"), settled=True)
    budget.settle("b")  # b ended without spending
    budget.reserve("c", D("1.3"))
    assert budget.committed() == D("2.6")
    with pytest.raises(ValueError, match="budget -1"):
        Budget(D("-1"))


@pytest.mark.parametrize(("lines", "budget", "problem"), [
    ([{"batch": {"budget": 12.5}}], D("12.5"), None),
    ([{"batch": {"budget": "40"}}], D("40"), None),
    ([{"batch": {}}], None, None),
    ([{"batch": {"budget": -2}}], None, "budget -2 must be a number of units >= 0"),
    ([{"batch": {"budget": "lots"}}], None, "budget 'lots'"),
    ([{"batch": {"budget": True}}], None, "budget True"),
    ([{"batch": {"spend": 3}}], None, "unknown setting(s) 'spend'"),
    ([{"batch": {"budget": 3}, "name": "x"}], None, "no job fields"),
    ([None, {"batch": {"budget": 3}}], D("3"), "must be the first line"),
])
def test_the_manifest_can_set_a_default_budget_on_its_first_line(tmp_path, lines, budget,
                                                                 problem):
    records = [(i + 1, line if line is not None else {"name": "a"}) for i, line in
               enumerate(lines)]
    parsed = from_records(records, tmp_path, local_ok=False)
    assert parsed.budget == budget
    messages = [p.message for p in parsed.problems if p.line == records[-1][0]]
    if problem is None:
        assert messages == []
    else:
        assert any(problem in m for m in messages), messages


# -- against the sandbox ---------------------------------------------------------------------


@pytest.mark.slow
def test_jobs_past_the_budget_are_held_before_anything_is_sent_and_continue_with_more(
        sandbox, admin, client, shots, plates, tmp_path):
    names = ["b1", "b2", "b3", "b4"]
    path = manifest(shots, plates, names)
    out = tmp_path / "out"
    before = created_total(admin)
    report = batch.run(path, out, client=client, host=SandboxHost(client.http),
                       concurrency=1, budget=D("3"))
    status = statuses(report)
    ran = [n for n in names if status[n] == "succeed"]
    held = [n for n in names if status[n] == "held"]
    assert (len(ran), len(held)) == (2, 2), status
    assert created_total(admin) - before == 2
    data = json.loads((out / "report.json").read_text())
    assert data["counts"]["held"] == 2 and data["budget"] == 3
    assert data["cost"]["units"] == pytest.approx(float(2 * JOB_UNITS))
    for item in data["jobs"]:
        if item["status"] == "succeed":
            assert D(repr(item["cost"]["units"])) == JOB_UNITS
        else:  # held before starting: nothing sent, nothing spent, no state
            assert item["cost"] is None and item["error"].startswith("held: budget")
            assert "--budget" in item["error"]
            assert not (out / ".state" / "jobs" / f"{item['name']}.json").exists()

    again = batch.run(path, out, client=client, host=SandboxHost(client.http), budget=D("3"))
    assert statuses(again) == status  # what was spent counts in every run
    assert created_total(admin) - before == 2

    more = batch.run(path, out, client=client, host=SandboxHost(client.http), budget=D("6"))
    assert set(statuses(more).values()) == {"succeed"}
    assert created_total(admin) - before == 4
    assert more.cost().units == 4 * JOB_UNITS
    for name in held:
        assert frame_count(out / f"{name}.mp4") == FRAMES


@pytest.fixture(scope="module")
def long_plate(tmp_path_factory):
    """A 7 s plate: its task is a "10" one, twice the 5 s price assumed before its session."""
    folder = tmp_path_factory.mktemp("long")
    return make_clip(folder / "long.mp4", width=720, height=720, fps=24, seconds=7.0, seed=3)


@pytest.mark.slow
def test_a_local_clip_s_length_sets_its_task_estimate_before_anything_is_sent(
        sandbox, admin, client, shots, long_plate, tmp_path):
    (shots / "plates" / "long.mp4").symlink_to(long_plate.path)
    path = shots / "long-local.jsonl"
    path.write_text(json.dumps(job("long", "long.mp4", long_plate)) + "\n")
    out = tmp_path / "out"
    before = created_total(admin)
    # The manifest measured the clip: 7 s makes a "10" task (2 units), so 0.3 of clicks + 2
    # does not fit in 2, and the job is held before its clicks are paid for.
    held = batch.run(path, out, client=client, host=SandboxHost(client.http), budget=D("2"))
    (record,) = held.jobs
    assert record.status == "held" and "about 2.3 more" in record.error
    assert record.cost is None and created_total(admin) == before
    assert not (out / ".state" / "jobs" / "long.json").exists()


@pytest.mark.slow
def test_a_job_whose_task_would_pass_the_budget_is_held_just_before_it_and_resumes(
        sandbox, admin, client, shots, long_plate, tmp_path):
    # Given as a URL, the clip's length is known only once its session says.
    url = SandboxHost(client.http).publish(long_plate.path)
    path = shots / "long.jsonl"
    path.write_text(json.dumps(job("long", "unused", long_plate, video=url)) + "\n")
    out = tmp_path / "out"
    events = []
    before = created_total(admin)
    # Expected before the session: 0.3 of clicks + 1 (a 5 s task): fits in 2. Once the
    # session says 7 s, the task is a 10 s one (2 units): 0.3 + 2 does not.
    held = batch.run(path, out, client=client, host=SandboxHost(client.http), budget=D("2"),
                     on_event=lambda name, kind, info: events.append((name, kind)))
    (record,) = held.jobs
    assert record.status == "held" and "about 2 more" in record.error
    assert created_total(admin) == before
    assert D(repr(record.cost["units"])) == D("0.3")  # the clicks were charged
    kinds = [kind for name, kind in events if name == "long"]
    assert "session" in kinds and "waiting_slot" not in kinds and "created" not in kinds
    assert kinds[-1] == "held" and kinds.count("held") == 1
    state = json.loads((out / ".state" / "jobs" / "long.json").read_text())
    assert state["selection"] and "task_id" not in state

    done = batch.run(path, out, client=client, host=SandboxHost(client.http), budget=D("3"))
    (record,) = done.jobs
    assert record.status == "succeed" and created_total(admin) == before + 1
    # The saved session was reused (no second init), the 10 s task cost 2.
    assert D(repr(record.cost["units"])) == D("0.3") + TASK_UNITS[("std", "10")]


@pytest.mark.slow
def test_the_cli_takes_the_budget_from_the_manifest_or_the_command_line(
        sandbox, shots, plates, tmp_path, monkeypatch, capsys):
    path = manifest(shots, plates, ["c1", "c2"], header={"budget": 0})
    monkeypatch.setenv("KLINGAI_BASE_URL", sandbox.base_url)
    monkeypatch.setenv("KLINGAI_ACCESS_KEY", sandbox.access_key)
    monkeypatch.setenv("KLINGAI_SECRET_KEY", sandbox.secret_key)
    out = tmp_path / "out"
    capsys.readouterr()
    assert main(["batch", str(path), "--out", str(out), "--json"]) == 1
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["counts"]["held"] == 2 and report["budget"] == 0
    assert "2 held" in captured.err and "larger --budget" in captured.err.splitlines()[-1]
    assert main(["batch", str(path), "--out", str(out), "--budget", "5", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["counts"]["succeed"] == 2 and report["budget"] == 5
    assert D(repr(report["cost"]["units"])) == 2 * JOB_UNITS
    with pytest.raises(SystemExit) as usage:
        main(["batch", str(path), "--out", str(out), "--budget", "-1"])
    assert usage.value.code == 2
    assert "budget '-1' must be a number of units" in capsys.readouterr().err
