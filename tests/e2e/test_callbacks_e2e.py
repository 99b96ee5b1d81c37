"""Callbacks from the command line: ``edit --listen`` ends its wait on the sandbox's final
delivery (one confirming query, no polling), and ``kling-elements callbacks`` receives,
verifies, deduplicates, prints and records a signed sandbox's deliveries."""

from __future__ import annotations

import base64
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from kling_elements.cli import main

from ..support.fixtures import sandbox_fixture
from ..support.sandbox import API, REMOVE_PROMPT, client, ok, upload

SECRET = "whsec_" + base64.b64encode(b"e2e-callbacks-secret-0123456789ab").decode()


def _task_queries(caplog) -> int:
    return sum(r.getMessage().startswith("sandbox GET get ") for r in caplog.records)


@pytest.mark.slow
def test_edit_with_listen_is_told_instead_of_polling(sandbox, clip, tmp_path, monkeypatch,
                                                      capsys, caplog):
    for name, value in (("KLINGAI_BASE_URL", sandbox.base_url),
                        ("KLINGAI_API_KEY", sandbox.api_key)):
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    caplog.set_level(logging.DEBUG, logger="kling_elements.sandbox")
    x, y = clip.center(0)
    code = main(["edit", str(clip.path), "--point", f"0:{x!r},{y!r}", "--edit", "removal",
                 "--prompt", REMOVE_PROMPT, "-o", "out.mp4", "--listen", "127.0.0.1:0"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert (tmp_path / "out.mp4").stat().st_size > 0
    assert "receiving callbacks on http://127.0.0.1:" in err
    assert ": succeed [legacy, unverified, applied]" in err
    assert _task_queries(caplog) == 1
    state = json.loads((tmp_path / "out.mp4.kling.json").read_text())
    task = next(t for t in sandbox.state.all_tasks() if t.id == state["task_id"])
    assert task.callback_url.startswith("http://127.0.0.1:")


signed_sandbox = sandbox_fixture(scope="module", name="signed_sandbox", task_seconds=0.5,
                                 webhook_secret=SECRET, callback_format="both")


def _receiver(tmp_path: Path, secret: str | None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("KLINGAI_")}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parents[2] / "core"),
                                         env.get("PYTHONPATH", "")])
    if secret:
        env["KLINGAI_WEBHOOK_SECRET"] = secret
    process = subprocess.Popen(
        [sys.executable, "-m", "kling_elements.cli", "callbacks", "--listen", "127.0.0.1:0",
         "--record", str(tmp_path / "calls")],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = process.stderr.readline()
    assert "receiving Kling callbacks on http://127.0.0.1:" in line, line
    return process, line.split(" on ")[1].strip()


@pytest.mark.slow
def test_callbacks_command_verifies_deduplicates_prints_and_records(signed_sandbox, clip,
                                                                      tmp_path):
    process, url = _receiver(tmp_path, SECRET)
    try:
        with client(signed_sandbox) as api:
            session = ok(api.post(f"{API}/init-selection",
                                  json={"video_url": upload(api, clip.path)}))
            x, y = clip.center(0)
            ok(api.post(f"{API}/add-selection", json={
                "session_id": session["session_id"], "frame_index": 0,
                "points": [{"x": x, "y": y}]}))
            task = ok(api.post(API, json={
                "session_id": session["session_id"], "edit_mode": "removal",
                "prompt": REMOVE_PROMPT + " [[fail]]", "external_task_id": "cli-cb-1",
                "callback_url": url}))
            ok(api.post("/sandbox/clock", json={"advance_s": 1.0}))
        forged = httpx.post(url, json={"task_id": task["task_id"], "task_status": "succeed"},
                            headers={"webhook-id": "m", "webhook-timestamp": str(int(time.time())),
                                     "webhook-signature": "v1,AAAA"}, trust_env=False)
        assert forged.status_code == 401
        deadline = time.monotonic() + 20
        calls = tmp_path / "calls"
        while len(list(calls.glob("*.json"))) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # the last new-format duplicate
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=10)
    lines = out.splitlines()
    ident = f"task {task['task_id']} (cli-cb-1)"
    assert lines == [f"{ident}: {status} [{fmt}, verified, {outcome}]"
                     for status in ("submitted", "processing", "failed")
                     for fmt, outcome in (("legacy", "applied"), ("new", "duplicate"))]
    records = sorted(calls.glob("*.json"))
    assert [json.loads(p.read_text())["task"]["status"] for p in records] == [
        "submitted", "processing", "failed"]
    assert "succeed" not in out and SECRET not in out + err


@pytest.mark.parametrize(("argv", "words"), [
    (["--listen", "8766"], ["--listen '8766'", "HOST:PORT"]),
    (["--listen", "127.0.0.1:0", "--webhook-secret", "whsec_not base64!"], ["not base64"]),
])
def test_callbacks_command_bad_input_is_one_error_line(argv, words, capsys):
    assert main(["callbacks", *argv]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert captured.err.startswith("error: ") and all(w in captured.err for w in words)
    assert "not base64!" not in captured.err
