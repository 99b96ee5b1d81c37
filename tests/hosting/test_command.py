"""The command provider: argv without a shell, the last stdout line, limits and failures."""

from __future__ import annotations

import shlex
import sys
import textwrap
import time
from pathlib import Path
from urllib.parse import quote

import pytest

from kling_elements.errors import ValidationError
from kling_elements.hosting import CommandHost, HostingError
from kling_elements.hosting import command as command_module


@pytest.fixture(autouse=True)
def _any_file_is_a_clip(monkeypatch):
    monkeypatch.setattr(command_module, "check_clip", lambda path: None)


@pytest.fixture
def clip(tmp_path) -> Path:
    path = tmp_path / "my shot; $(touch pwned) 'q'.mp4"
    path.write_bytes(b"video")
    return path


def _script(tmp_path: Path, body: str) -> str:
    """A Python script file; returns the start of a command template that runs it."""
    script = tmp_path / "tool.py"
    script.write_text(textwrap.dedent(body))
    return f"{shlex.quote(sys.executable)} {shlex.quote(str(script))}"


def test_the_last_stdout_line_is_the_url_and_placeholders_stay_single_arguments(tmp_path, clip):
    tool = _script(tmp_path, """
        import json, sys, urllib.parse
        print("uploading...")
        print(json.dumps(sys.argv[1:]), file=sys.stderr)
        print("Transferred: 5 B")
        print("https://cdn.example.com/clips/" + urllib.parse.quote(sys.argv[2]))
        print("   ")
    """)
    host = CommandHost(f"{tool} --src={{path}} {{name}} literal{{path}}x", timeout_s=30)
    assert host.argv(clip)[-3:] == [f"--src={clip}", clip.name, f"literal{clip}x"]
    progress: list[tuple[int, int | None]] = []
    url = host.publish(clip, on_progress=lambda *p: progress.append(p))
    assert url == "https://cdn.example.com/clips/" + quote(clip.name)
    assert progress == [(0, 5), (5, 5)]
    assert not (tmp_path / "pwned").exists()  # no shell ever saw the name


def test_a_failing_command_quotes_its_stderr_and_exit_status(tmp_path, clip):
    tool = _script(tmp_path, """
        import sys
        print("https://cdn.example.com/partial")
        print("ERROR : r2: bucket does not exist", file=sys.stderr)
        sys.exit(3)
    """)
    with pytest.raises(HostingError) as caught:
        CommandHost(f"{tool} {{path}}").publish(clip)
    text = str(caught.value)
    assert "exit status 3" in text and "bucket does not exist" in text
    assert caught.value.provider == "command"


def test_output_that_is_not_a_url_is_refused_with_the_hint(tmp_path, clip):
    tool = _script(tmp_path, """
        import sys
        print("https://example.com/a")
        print("done, uploaded to remote:clips/x.mp4")
        print("token=abc X-Amz-Signature=deadbeef", file=sys.stderr)
    """)
    with pytest.raises(HostingError) as caught:
        CommandHost(f"{tool} {{path}}").publish(clip)
    text = str(caught.value)
    assert "last output line" in text and "print the clip's public URL" in text
    assert "deadbeef" not in text


def test_a_command_over_its_time_limit_is_killed_with_what_it_started(tmp_path, clip):
    tool = _script(tmp_path, """
        import subprocess, sys, time
        # A grandchild holding stdout open: it must die with the command.
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        print("still uploading", file=sys.stderr, flush=True)
        time.sleep(60)
    """)
    started = time.monotonic()
    with pytest.raises(HostingError) as caught:
        CommandHost(f"{tool} {{path}}", timeout_s=1.0).publish(clip)
    assert time.monotonic() - started < 15
    text = str(caught.value)
    assert "within 1 s" in text and "command_timeout_s" in text and "still uploading" in text


def test_a_missing_program_is_named(clip):
    with pytest.raises(HostingError, match=r"'no-such-uploader-xyz' could not start.*PATH"):
        CommandHost("no-such-uploader-xyz {path}").publish(clip)


def test_a_bad_template_is_refused_before_anything_runs():
    with pytest.raises(ValidationError, match=r"unknown placeholder\(s\) \{file\}"):
        CommandHost("rclone copyto {file} r2:x/{name}")


def test_a_refused_clip_runs_nothing(tmp_path, clip, monkeypatch):
    def refuse(path):
        raise ValidationError("frame rate 25 fps is not 24, 30 or 60: conform the clip")

    monkeypatch.setattr(command_module, "check_clip", refuse)
    marker = tmp_path / "ran"
    tool = _script(tmp_path, f"open({str(marker)!r}, 'w')\nprint('https://x.example.com/a')\n")
    with pytest.raises(ValidationError, match="conform"):
        CommandHost(f"{tool} {{path}}").publish(clip)
    assert not marker.exists()


def test_repr_and_identity_do_not_show_the_command_line():
    host = CommandHost("uploader --token=hunter2 {path}")
    assert "hunter2" not in repr(host) and "hunter2" not in host.identity


def test_a_url_with_spaces_is_refused(tmp_path, clip):
    tool = _script(tmp_path, "print('https://cdn.example.com/my clip.mp4')\n")
    with pytest.raises(HostingError, match="percent-encode"):
        CommandHost(f"{tool} {{path}}").publish(clip)
