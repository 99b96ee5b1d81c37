"""``kling-elements wait --listen``: a wait started after a separate ``create
--callback-url`` ends on the task's callback (one lookup, one confirming query, no polling),
and a task that ended before the wait began is not waited on for the callback grace period."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time

import pytest

from kling_elements.cli import main

from ..support.fixtures import sandbox_fixture
from ..support.sandbox import REMOVE_PROMPT, advance

# Tasks long enough on the sandbox clock that the wait starts before the task ends.
sandbox = sandbox_fixture(scope="module", task_seconds=30)


def _task_queries(caplog) -> int:
    return sum(r.getMessage().startswith("sandbox GET get ") for r in caplog.records)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def run(sandbox, monkeypatch, capsys, caplog, tmp_path_factory):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("user-cache")))
    monkeypatch.setenv("KLINGAI_BASE_URL", sandbox.base_url)
    monkeypatch.setenv("KLINGAI_API_KEY", sandbox.api_key)
    caplog.set_level(logging.DEBUG, logger="kling_elements.sandbox")

    def call(*argv: object) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err

    return call


@pytest.mark.slow
def test_wait_listen_ends_on_the_callback_and_a_finished_task_at_once(
    run, sandbox, admin, make_plate, caplog
):
    clip = make_plate(1280, 720, 30, 2.0)
    code, out, err = run("init", "--file", clip.path, "--json")
    assert code == 0, err
    sid = json.loads(out)["session_id"]
    x, y = (float(v) for v in clip.center(0))
    assert run("select", sid, "0", f"{x!r},{y!r}")[0] == 0
    port = _free_port()
    code, out, err = run("create", sid, "--edit", "removal", "--prompt", REMOVE_PROMPT,
                         "--callback-url", f"http://127.0.0.1:{port}/", "--json")
    assert code == 0, err
    task_id = json.loads(out)["task_id"]

    caplog.clear()
    result: dict[str, int] = {}
    waiter = threading.Thread(target=lambda: result.update(code=main(
        ["wait", task_id, "--listen", f"127.0.0.1:{port}", "--json", "--quiet"])))
    waiter.start()
    deadline = time.monotonic() + 30
    while _task_queries(caplog) < 1 and time.monotonic() < deadline:  # its first lookup
        time.sleep(0.05)
    advance(admin, 31)
    waiter.join(120)
    assert not waiter.is_alive() and result["code"] == 0
    assert sandbox.state.tasks[task_id].callback_url == f"http://127.0.0.1:{port}/"
    assert _task_queries(caplog) == 2  # the lookup and the confirming query: no polling

    caplog.clear()
    started = time.monotonic()
    code, out, err = run("wait", task_id, "--listen", f"127.0.0.1:{port}", "--json")
    assert code == 0, err
    assert json.loads(out)["status"] == "succeed"
    assert time.monotonic() - started < 15  # not after the 30 s callback grace
    assert _task_queries(caplog) == 2
