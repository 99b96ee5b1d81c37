"""A batch whose waits end on callbacks: the CLI's ``batch --listen`` receives the sandbox's
deliveries, every task is created with the callback URL, and each is queried once (to
confirm its final delivery) instead of polled; with deliveries lost, polling still ends it."""

from __future__ import annotations

import json
import logging

import pytest

from kling_elements.cli import main

from ..support.batch import assert_complete, write_manifest
from ..support.sandbox import add_faults


def _task_queries(caplog) -> int:
    """GETs of one task the sandbox answered (its log names the route, not the task)."""
    return sum(r.getMessage().startswith("sandbox GET get ") for r in caplog.records)


def _tasks(sandbox, out) -> list:
    ids = {json.loads(p.read_text())["task_id"] for p in (out / ".state" / "jobs").glob("*")}
    return [t for t in sandbox.state.all_tasks() if t.id in ids]


@pytest.mark.slow
def test_batch_listen_ends_each_wait_on_its_callback(sandbox, shots, plates, tmp_path,
                                                     monkeypatch, capsys, caplog):
    manifest, names = write_manifest(shots, plates, 4, name="callbacks.jsonl")
    out = tmp_path / "out"
    for name, value in (("KLINGAI_BASE_URL", sandbox.base_url),
                        ("KLINGAI_ACCESS_KEY", sandbox.access_key),
                        ("KLINGAI_SECRET_KEY", sandbox.secret_key)):
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("KLINGAI_API_KEY", raising=False)
    caplog.set_level(logging.DEBUG, logger="kling_elements.sandbox")
    code = main(["batch", str(manifest), "--out", str(out), "--concurrency", "2", "--quiet",
                 "--listen", "127.0.0.1:0"])
    assert code == 0, capsys.readouterr().err
    assert_complete(out, names)
    tasks = _tasks(sandbox, out)
    assert len(tasks) == 4
    urls = {t.callback_url for t in tasks}
    assert len(urls) == 1 and urls.pop().startswith("http://127.0.0.1:")
    assert _task_queries(caplog) == 4  # one confirming query per task, no polling


@pytest.mark.slow
def test_lost_callbacks_fall_back_to_polling(sandbox, admin, shots, plates, tmp_path,
                                             monkeypatch):
    from kling_elements import batch
    from kling_elements import client as client_module
    from kling_elements.callbacks import CallbackInbox, CallbackServer
    from kling_elements.client import Client
    from kling_elements.hosting import SandboxHost

    monkeypatch.setattr(client_module, "CALLBACK_GRACE_S", 0.5)  # the sandbox's tasks are quick
    manifest, names = write_manifest(shots, plates, 2, name="lost.jsonl")
    add_faults(admin, {"route": "callback", "times": 100, "drop": "before_commit"})
    out = tmp_path / "out"
    inbox = CallbackInbox()
    with CallbackServer(inbox) as server, Client(sandbox.access_key, sandbox.secret_key,
                                                 base_url=sandbox.base_url) as client:
        report = batch.run(manifest, out, client=client, host=SandboxHost(client.http),
                           callback_url=server.url, inbox=inbox)
    assert report.ok, report.summary()
    assert_complete(out, names)
    assert sum(inbox.counts.values()) == 0  # nothing arrived, and the jobs ended anyway
