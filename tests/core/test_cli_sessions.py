"""The CLI's memory of the sessions ``init`` started: what ``create`` derives duration from."""

from __future__ import annotations

import os
import stat

from kling_elements import cli_sessions
from kling_elements.models import InitResult
from kling_elements.validate import SESSION_TTL_S

INIT = InitResult(session_id="860285172012138611", fps=24.0, total_frames=168, width=720,
                  height=1280, original_duration=1000)


def test_a_record_round_trips_with_the_length_from_frames(tmp_path):
    record = cli_sessions.SessionRecord.of(INIT, now=1000.0)
    path = cli_sessions.save(record, tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert INIT.session_id not in path.name  # hashed: any server id is a safe file name
    loaded = cli_sessions.load(INIT.session_id, tmp_path, now=1001.0)
    assert loaded == record and loaded.duration_s == 7.0


def test_expired_unknown_and_damaged_records_are_unknown(tmp_path):
    cli_sessions.save(cli_sessions.SessionRecord.of(INIT, now=1000.0), tmp_path)
    assert cli_sessions.load(INIT.session_id, tmp_path, now=1000.0 + SESSION_TTL_S) is None
    assert cli_sessions.load("another-session", tmp_path, now=1001.0) is None
    (path,) = tmp_path.glob("*.json")
    path.write_text("{not json")
    assert cli_sessions.load(INIT.session_id, tmp_path, now=1001.0) is None


def test_writing_a_record_removes_those_of_expired_sessions(tmp_path):
    old = cli_sessions.save(cli_sessions.SessionRecord.of(INIT, now=1000.0), tmp_path)
    os.utime(old, (1000.0, 1000.0))
    newer = InitResult(session_id="2", fps=30.0, total_frames=60)
    kept = cli_sessions.save(cli_sessions.SessionRecord.of(newer, now=1000.0 + SESSION_TTL_S),
                             tmp_path)
    assert sorted(tmp_path.glob("*.json")) == [kept]
