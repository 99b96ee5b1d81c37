"""A short run of ``scripts/load_sandbox.py``: 8 clients for 5 s against a sandbox in its own
process (only the intended 1303 may be refused; selection latencies are measured), then 20
whole edits at once through the core client, 3 tasks at a time: all finish, none twice.

The full load (32 clients for 60 s) is the script's default; its figures are in
docs/reliability.md.
"""

from __future__ import annotations

import pytest

from .test_campaign import _script

pytestmark = pytest.mark.slow


def test_short_load_then_twenty_edits_at_once(tmp_path):
    load = _script("load_sandbox")
    report = load.run_load(load.LoadConfig(clients=8, seconds=5.0, edits=20, task_seconds=0.5),
                           folder=tmp_path)
    print("\n" + load.summary(report))
    assert report["ok"], load.summary(report)
    phase = report["load"]
    assert phase["unintended"] == {}
    assert phase["latency"]["selection"]["n"] > 20
    edits = report["edits"]
    assert edits["succeeded"] == 20 and edits["duplicate_tasks"] == 0
    assert edits["retries_by_code"].get("1303", 0) > 0  # the limit was met, and waited out
