"""``batch --no-restore``: a job whose saved session is gone stops with an error naming the
option, sends no init and keeps its state; a run without the flag restores it and ends it."""

from __future__ import annotations

import json

import pytest

from kling_elements.cli import main

from ..support.batch import assert_complete, write_manifest
from ..support.sandbox import add_faults, ok

INIT_ROUTE = "POST /v1/videos/multi-elements/init-selection"


def _inits(admin) -> int:
    return ok(admin.get("/sandbox/stats"))["requests"].get(INIT_ROUTE, 0)


@pytest.mark.slow
def test_no_restore_fails_the_job_without_a_new_session_and_a_rerun_restores_it(
        sandbox, admin, shots, plates, tmp_path, monkeypatch, capsys):
    manifest, names = write_manifest(shots, plates, 1, name="strict.jsonl")
    monkeypatch.setenv("KLINGAI_BASE_URL", sandbox.base_url)
    monkeypatch.setenv("KLINGAI_ACCESS_KEY", sandbox.access_key)
    monkeypatch.setenv("KLINGAI_SECRET_KEY", sandbox.secret_key)
    monkeypatch.delenv("KLINGAI_API_KEY", raising=False)
    out = tmp_path / "out"
    argv = ["batch", str(manifest), "--out", str(out), "--json", "--quiet"]
    # The first run makes the session and its click, then the create is refused (1102).
    add_faults(admin, {"route": "create", "times": 1, "error": {"http": 429, "code": 1102}})
    assert main(argv) == 1
    (state_file,) = (out / ".state" / "jobs").glob("*.json")
    state = json.loads(state_file.read_text())
    state["selection"]["session_id"] = "no-such-session"
    state_file.write_text(json.dumps(state))
    inits = _inits(admin)
    capsys.readouterr()

    assert main([*argv, "--no-restore"]) == 1
    (job,) = json.loads(capsys.readouterr().out)["jobs"]
    assert job["status"] == "failed" and "--no-restore" in job["error"]
    assert _inits(admin) == inits
    assert json.loads(state_file.read_text())["selection"]["session_id"] == "no-such-session"

    assert main(argv) == 0
    assert_complete(out, names)
    assert _inits(admin) == inits + 1  # the restore's one init
