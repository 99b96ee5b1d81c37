"""Sessions expire after 24 h; the user's marks must not. The sandbox clock is moved a day
forward mid-work and the next selection call must restore the session: a new session on the
same video holding exactly the points marked before (bit-identical floats, in order), then
the call itself. The same for a whole edit resumed a day later through ``run_edit``.

The clients use the API key: a day on the sandbox clock would expire any JWT they signed.
"""

from __future__ import annotations

import math
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import kling_elements as ke
from kling_elements.hosting import SandboxHost
from kling_elements.sandbox import RunningSandbox
from kling_elements.sandbox.sample import SampleClip
from kling_elements.selection import same_point
from kling_elements.workflow import EditJob, run_edit

from ..support.fixtures import sandbox_fixture
from ..support.sandbox import client as admin_client
from ..support.sandbox import ok

pytestmark = pytest.mark.slow

DAY_S = 24 * 3600
PROMPT = "Delete the ball from <<<video_1>>>"


# A sandbox of this module's own: its clock moves by days.
daybox = sandbox_fixture(scope="module", name="daybox", task_seconds=0.3, max_concurrent_tasks=50)


@pytest.fixture(scope="module")
def daybox_admin(daybox: RunningSandbox) -> Iterator[httpx.Client]:
    with admin_client(daybox) as api:
        yield api


@pytest.fixture(scope="module")
def plate(make_plate) -> SampleClip:
    return make_plate(720, 720, 24, 2.0)


@pytest.fixture
def client(daybox: RunningSandbox) -> Iterator[ke.Client]:
    with ke.Client(api_key=daybox.api_key, base_url=daybox.base_url) as c:
        yield c


@pytest.fixture(scope="module")
def plate_url(daybox: RunningSandbox, plate: SampleClip) -> str:
    with ke.Client(api_key=daybox.api_key, base_url=daybox.base_url) as c:
        return SandboxHost(c.http).publish(plate.path)


def _a_day_passes(admin: httpx.Client) -> None:
    ok(admin.post("/sandbox/clock", json={"advance_s": DAY_S}))


def _server_points(sandbox: RunningSandbox, session_id: str) -> dict[int, list]:
    session = sandbox.state.sessions[session_id]
    with session.lock:
        return {f: list(p) for f, p in session.points.items() if p}


def _same(a: dict[int, list], b: dict[int, list]) -> bool:
    """Equal frame by frame, point by point, bit for bit and in order."""
    return set(a) == set(b) and all(
        len(a[f]) == len(b[f]) and all(same_point(p, q) for p, q in zip(a[f], b[f], strict=True))
        for f in a)


def _marks(plate: SampleClip) -> dict[int, list[tuple[float, float]]]:
    """The ball on two frames, with floats that do not survive any rounding."""
    x0, y0 = plate.center(0)
    x1, y1 = plate.center(30)
    return {0: [(x0, y0), (math.nextafter(x0, 1.0), y0 + 1e-9)], 30: [(x1 + 1 / 3e4, y1)]}


def test_next_click_after_a_day_restores_the_session_with_every_mark(
        daybox, daybox_admin, client, plate, plate_url):
    init = client.init_selection(video_url=plate_url)
    for frame, points in _marks(plate).items():
        client.add_selection(init.session_id, frame, points)
    state = client.sessions[init.session_id]
    before = {f: list(p) for f, p in state.points.items()}

    _a_day_passes(daybox_admin)
    extra = plate.center(12)
    result = client.add_selection(init.session_id, 12, [extra])

    assert result.frame_index == 12 and result.masks
    assert state.session_id != init.session_id  # a new session ...
    assert client.sessions[state.session_id] is state  # ... answering to both ids
    expected = {**before, 12: [extra]}
    assert _same(state.points, expected)  # the user's marks survived, exactly
    assert _same(_server_points(daybox, state.session_id), expected)  # and Kling has them
    assert set(state.masks) == {0, 12, 30} and all(state.masks.values())
    with pytest.raises(ke.NotFoundError, match="expired"):  # the old one is really gone
        ke.Client(api_key=daybox.api_key, base_url=daybox.base_url).preview_selection(
            init.session_id)

    # Deleting a mark and previewing work on the restored session, under either id.
    client.delete_selection(init.session_id, 0, [before[0][1]])
    preview = client.preview_selection(init.session_id)
    assert preview.video_url
    assert _same(_server_points(daybox, state.session_id),
                 {0: [before[0][0]], 12: [extra], 30: before[30]})


def test_a_delete_or_a_clear_after_a_day_also_restores_first(
        daybox, daybox_admin, client, plate, plate_url):
    init = client.init_selection(video_url=plate_url)
    marks = _marks(plate)
    for frame, points in marks.items():
        client.add_selection(init.session_id, frame, points)
    _a_day_passes(daybox_admin)
    client.delete_selection(init.session_id, 30, marks[30])
    live = client.sessions[init.session_id].session_id
    assert live != init.session_id
    assert _same(_server_points(daybox, live), {0: marks[0]})

    _a_day_passes(daybox_admin)
    client.clear_selection(init.session_id)  # a new, empty session is what clearing means
    cleared = client.sessions[init.session_id]
    assert cleared.session_id not in (init.session_id, live) and cleared.points == {}
    assert _server_points(daybox, cleared.session_id) == {}


def test_an_edit_resumed_a_day_later_is_created_on_a_fresh_session_with_the_marks(
        daybox, daybox_admin, client, plate, plate_url, tmp_path):
    marks = _marks(plate)
    job = EditJob(output=str(tmp_path / "result.mp4"), edit_mode="removal", prompt=PROMPT,
                  video_url=plate_url,
                  selections=tuple((f, tuple(p)) for f, p in sorted(marks.items())))
    state_path = tmp_path / "edit.json"
    # The first run marks the selection, then is refused at create (out of credits).
    ok(daybox_admin.post("/sandbox/faults", json={"rules": [
        {"route": "create", "error": {"code": 1102}}]}))
    with pytest.raises(ke.AccountError):
        run_edit(client, job, state_path=state_path)
    with ke.Client(api_key=daybox.api_key, base_url=daybox.base_url) as later:
        _a_day_passes(daybox_admin)
        result = run_edit(later, job, state_path=state_path)
    assert result.output.exists()
    with daybox.state.lock:
        (task,) = [t for t in daybox.state.tasks.values()
                   if t.external_task_id == result.task.external_task_id]
    assert _same(_server_points(daybox, task.session_id), marks)


def test_the_stateless_select_command_says_the_session_expired(
        daybox, daybox_admin, client, plate, plate_url):
    """The CLI's select knows only the session id (no memory of the points, no video): it
    cannot restore, so it says what happened and exits 1."""
    init = client.init_selection(video_url=plate_url)
    _a_day_passes(daybox_admin)
    x, y = plate.center(0)
    env = {"KLINGAI_BASE_URL": daybox.base_url, "KLINGAI_API_KEY": daybox.api_key,
           "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-m", "kling_elements.cli", "select",
                           init.session_id, "0", f"{x!r},{y!r}"],
                          env=env, capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).parent)
    assert done.returncode == 1
    assert done.stderr.startswith("error: ") and "expired" in done.stderr
    assert "1203" in done.stderr
