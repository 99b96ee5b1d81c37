"""The ``kling-elements`` command against a real sandbox over loopback HTTP.

Most runs are in-process (``cli.main``) with the credentials in the environment, so stdout,
stderr and every log record can be inspected; a few run the installed console script. Every
run is checked for leaked keys and tokens.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from kling_elements import download as download_module
from kling_elements.cli import main
from kling_elements.sandbox.sample import SampleClip, make_clip, make_reference_image
from kling_elements.workflow import EditJob

from ..support.media import decode, frame_count, sha256
from ..support.sandbox import (
    ADD_PROMPT,
    JWT_PATTERN,
    REMOVE_PROMPT,
    add_faults,
    advance,
    created,
    decode_rle,
    iou,
    ok,
    pending_faults,
    set_tripwires,
)

pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation:DeprecationWarning"  # pycocotools on numpy 2
)
INIT_ROUTE = "POST /v1/videos/multi-elements/init-selection"
SWAP_PROMPT = "swap the star from <<<image_1>>> for the ball from <<<video_1>>>"


@dataclass
class Run:
    code: int
    out: str
    err: str

    def error_line(self) -> str:
        """The one line a failure prints; fails unless stderr is exactly that."""
        lines = self.err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), self.err
        return lines[0]


def _assert_no_secrets(text: str, secrets: tuple[str, ...]) -> None:
    for secret in secrets:
        assert secret not in text
    assert not JWT_PATTERN.search(text), JWT_PATTERN.search(text)


def _point(clip: SampleClip, frame: int = 0) -> str:
    x, y = (float(v) for v in clip.center(frame))
    return f"{x!r},{y!r}"


@pytest.fixture
def secrets(sandbox) -> tuple[str, ...]:
    return (sandbox.secret_key, sandbox.api_key)


@pytest.fixture
def cli(sandbox, secrets, monkeypatch, capsys, caplog, tmp_path,
        tmp_path_factory) -> Callable[..., Run]:
    """``cli(*argv)`` runs the command in ``tmp_path`` with the sandbox's JWT keys in the
    environment and returns its exit code and output; all logging is captured (DEBUG).
    The user cache folder (where ``init`` records sessions) is a fresh one outside it."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("user-cache")))
    monkeypatch.setenv("KLINGAI_BASE_URL", sandbox.base_url)
    monkeypatch.setenv("KLINGAI_ACCESS_KEY", sandbox.access_key)
    monkeypatch.setenv("KLINGAI_SECRET_KEY", sandbox.secret_key)
    monkeypatch.delenv("KLINGAI_API_KEY", raising=False)
    monkeypatch.chdir(tmp_path)
    caplog.set_level(logging.DEBUG)

    def run(*argv: object) -> Run:
        capsys.readouterr()
        try:
            code = main([str(arg) for arg in argv])
        except SystemExit as exc:  # argparse: --help, usage errors
            code = exc.code
        out, err = capsys.readouterr()
        _assert_no_secrets(out, secrets)
        _assert_no_secrets(err, secrets)
        return Run(code, out, err)

    yield run
    _assert_no_secrets(caplog.text, secrets)


def _edit_argv(clip: SampleClip, output: str = "out.mp4", *extra: object) -> list[object]:
    return ["edit", clip.path, "--point", f"0:{_point(clip)}", "--edit", "removal",
            "--prompt", REMOVE_PROMPT, "-o", output, *extra]


# ---------------------------------------------------------------- edit


@pytest.mark.slow
def test_edit_runs_the_whole_job_and_reports_it_as_json(cli, admin, clip, tmp_path):
    run = cli(*_edit_argv(clip, "out.mp4", "--watermark", "--json"))
    assert run.code == 0, run.err
    report = json.loads(run.out)
    task = report["task"]
    assert task["status"] == "succeed" and len(task["videos"]) == 1
    assert Path(report["output"]) == Path("out.mp4")
    assert Path(report["watermarked_output"]) == Path("out.watermarked.mp4")
    assert created(admin)[task["external_task_id"]] == 1

    count, result = decode(tmp_path / "out.mp4", keep=(0,))
    assert count == 60
    where = clip.mask(0)  # the ball is gone from where it was
    assert np.abs(result[0][where].astype(float) - clip.background[where]).mean() < 20
    count, marked = decode(tmp_path / "out.watermarked.mp4", keep=(0,))
    assert count == 60 and not np.array_equal(marked[0], result[0])

    state = json.loads((tmp_path / "out.mp4.kling.json").read_text())
    assert state["done"] is True and state["task_id"] == task["task_id"]
    assert state["external_task_id"] == task["external_task_id"]
    assert "error" not in run.err and "created:" in run.err  # progress, on stderr


@pytest.mark.slow
def test_edit_interrupted_three_times_resumes_without_publishing_or_paying_twice(
    cli, admin, clip, tmp_path, monkeypatch
):
    monkeypatch.setattr(download_module, "backoff", lambda *args, **kwargs: 0.0)
    argv = _edit_argv(clip, "res.mp4", "--quiet")
    output, part = tmp_path / "res.mp4", tmp_path / "res.mp4.part"
    state_file = tmp_path / "res.mp4.kling.json"

    # 1. the account is out of credits when the task is created
    add_faults(admin, {"route": "create", "times": 1, "error": {"http": 429, "code": 1102}})
    first = cli(*argv)
    assert first.code == 1 and "resource pack" in first.error_line()
    state = json.loads(state_file.read_text())
    ext = state["external_task_id"]
    assert ext not in created(admin) and state["selection"]["points"]

    # 2. credits bought: the saved session is used (no second upload, session or click),
    #    the task is created, but the user stops waiting for it
    wires = add_faults(admin, *({"route": route, "times": 1,
                                 "error": {"http": 500, "code": 5000}}
                                for route in ("uploads", "init-selection", "add-selection")))
    second = cli(*argv, "--wait-timeout", "0.2")
    assert second.code == 1 and "is still" in second.error_line()
    assert pending_faults(admin) == wires
    assert created(admin)[ext] == 1 and not output.exists()
    ok(admin.delete("/sandbox/faults"))

    # 3. the download breaks more often than the client retries it
    advance(admin, 1.0)
    add_faults(admin, {"route": "files", "times": 5, "truncate": 0.5})
    third = cli(*argv)
    assert third.code == 1 and "download interrupted" in third.error_line()
    assert pending_faults(admin) == []
    assert part.stat().st_size > 0 and not output.exists()

    # 4. finishes: the same task, the partial file continued
    fourth = cli(*argv[:-1])
    assert fourth.code == 0, fourth.err
    assert "resumed:" in fourth.err
    assert created(admin)[ext] == 1
    assert output.exists() and not part.exists()
    assert frame_count(output) == 60

    status = cli("status", ext, "--json")
    url = json.loads(status.out)["videos"][0]["url"]
    assert cli("download", url, "clean.mp4").code == 0
    assert sha256(output) == sha256(tmp_path / "clean.mp4")

    # 5. once done, running it again creates nothing new
    assert cli(*argv).code == 0
    assert created(admin)[ext] == 1


def _stopped_with_a_forgotten_session(cli, admin, clip, folder, name: str):
    """An edit stopped before its create (1102), whose saved session Kling no longer knows:
    its argv and state file."""
    argv = _edit_argv(clip, name, "--quiet")
    add_faults(admin, {"route": "create", "times": 1, "error": {"http": 429, "code": 1102}})
    assert cli(*argv).code == 1
    state_file = folder / f"{name}.kling.json"
    state = json.loads(state_file.read_text())
    state["selection"]["session_id"] = "no-such-session"
    state_file.write_text(json.dumps(state))
    return argv, state_file


@pytest.mark.slow
def test_a_saved_session_the_server_forgot_is_replaced_not_fatal(cli, admin, clip, tmp_path):
    argv, state_file = _stopped_with_a_forgotten_session(cli, admin, clip, tmp_path, "gone.mp4")

    run = cli(*argv)
    assert run.code == 0, run.err
    saved = json.loads(state_file.read_text())
    assert saved["selection"]["session_id"] != "no-such-session"
    assert created(admin)[saved["external_task_id"]] == 1


@pytest.mark.slow
def test_no_restore_stops_instead_of_paying_for_a_new_session(cli, admin, clip, tmp_path):
    argv, state_file = _stopped_with_a_forgotten_session(cli, admin, clip, tmp_path,
                                                         "strict.mp4")
    inits = ok(admin.get("/sandbox/stats"))["requests"].get(INIT_ROUTE, 0)

    refused = cli(*argv, "--no-restore")
    assert refused.code == 1
    line = refused.error_line()
    assert "replay 1 marked frame(s)" in line and "--no-restore" in line
    assert ok(admin.get("/sandbox/stats"))["requests"].get(INIT_ROUTE, 0) == inits
    assert json.loads(state_file.read_text())["selection"]["session_id"] == "no-such-session"

    assert cli(*argv).code == 0  # allowed, the same edit restores and finishes


def test_state_file_of_another_edit_is_refused(cli, admin, clip, tmp_path):
    other = EditJob(output="out.mp4", edit_mode="removal",
                    prompt="Delete the tree from <<<video_1>>>",
                    video_path=str(clip.path.resolve()), selections=((0, ((0.5, 0.5),)),))
    state = tmp_path / "out.mp4.kling.json"
    state.write_text(json.dumps({"job": other.key(), "external_task_id": "ke-someone-else"}))
    before = state.read_text()
    wires = set_tripwires(admin)

    run = cli(*_edit_argv(clip, "out.mp4"))
    assert run.code == 1
    line = run.error_line()
    assert "belongs to a different edit" in line and "out.mp4.kling.json" in line
    assert pending_faults(admin) == wires  # nothing was sent
    assert state.read_text() == before and not (tmp_path / "out.mp4").exists()


@pytest.mark.parametrize("content", ["", "[]", '{"job": '], ids=["empty", "list", "cut"])
def test_damaged_state_file_is_named_in_one_error_line(cli, admin, clip, tmp_path, content):
    state = tmp_path / "out.mp4.kling.json"
    state.write_text(content)
    wires = set_tripwires(admin)
    run = cli(*_edit_argv(clip, "out.mp4"))
    assert run.code == 1
    line = run.error_line()
    assert "out.mp4.kling.json is damaged" in line and "remove it" in line
    assert pending_faults(admin) == wires
    assert state.read_text() == content


# ---------------------------------------------------------------- single steps


@pytest.mark.slow
def test_single_steps_from_session_to_downloaded_result(cli, admin, clip, tmp_path):
    started = cli("init", "--file", clip.path, "--json")
    assert started.code == 0, started.err
    init = json.loads(started.out)
    assert (init["width"], init["height"], init["total_frames"]) == (1280, 720, 60)
    sid, point = init["session_id"], _point(clip)

    selected = cli("select", sid, "0", point, "--json")
    assert selected.code == 0, selected.err
    masks = json.loads(selected.out)["masks"]
    assert len(masks) == 1
    assert iou(decode_rle({"size": masks[0]["size"], "counts": masks[0]["counts"]}),
               clip.mask(0)) >= 0.9

    # a point one bit away is not the point that was added
    x, y = (float(v) for v in clip.center(0))
    near = cli("unselect", sid, "0", f"{float(np.nextafter(x, 1.0))!r},{y!r}")
    assert near.code == 1 and "not selected" in near.error_line()
    # the same text parses to bit-identical floats: the point goes
    gone = cli("unselect", sid, "0", point)
    assert gone.code == 0, gone.err
    assert gone.out.strip() == "frame 0: 0 object(s); cost: 0 units"
    twice = cli("unselect", sid, "0", point)
    assert twice.code == 1 and "not selected" in twice.error_line()

    again = cli("select", sid, "0", point).out
    assert again.startswith("frame 0: 1 object(s)")
    # sizes read as editors read them: width x height of this landscape clip
    assert f"px of a {clip.width}x{clip.height} frame" in again, again
    cleared = cli("clear", sid)
    assert cleared.code == 0 and cleared.out.strip() == "selection cleared; cost: 0 units"
    empty = cli("preview", sid)
    assert empty.code == 1 and "nothing is selected" in empty.error_line()

    assert cli("select", sid, "0", point).code == 0
    previewed = cli("preview", sid, "--download", "p.mp4", "--json")
    assert previewed.code == 0, previewed.err
    assert json.loads(previewed.out)["video_url"].startswith("http://127.0.0.1:")
    assert frame_count(tmp_path / "p.mp4") == 60

    ext = "e2e-cli-steps"
    made = cli("create", sid, "--edit", "removal", "--prompt", REMOVE_PROMPT,
               "--external-task-id", ext, "--json")
    assert made.code == 0, made.err
    task = json.loads(made.out)
    assert task["external_task_id"] == ext and task["status"] in ("submitted", "processing")
    task_id = task["task_id"]

    shown = cli("status", ext)
    assert shown.code == 0 and shown.out.startswith(f"{task_id} ")
    listed = cli("list", "--page-size", "500", "--json")
    assert listed.code == 0
    assert task_id in [t["task_id"] for t in json.loads(listed.out)]

    advance(admin, 1.0)
    waited = cli("wait", task_id, "--json")
    assert waited.code == 0, waited.err
    finished = json.loads(waited.out)
    assert finished["status"] == "succeed"
    fetched = cli("download", finished["videos"][0]["url"], "out2.mp4")
    assert fetched.code == 0 and fetched.out.strip() == "out2.mp4"
    assert frame_count(tmp_path / "out2.mp4") == 60
    assert created(admin)[ext] == 1


@pytest.fixture(scope="module")
def seven_s(tmp_path_factory) -> SampleClip:
    """A 7 s clip: a "10" input, which Kling's default duration ("5") would cut."""
    return make_clip(tmp_path_factory.mktemp("cli-seven") / "seven.mp4", width=720,
                     height=720, fps=24, seconds=7.0)


@pytest.mark.slow
def test_create_after_a_separate_init_sends_the_duration_the_session_needs(
    cli, sandbox, admin, seven_s, tmp_path, tmp_path_factory, monkeypatch
):
    star = make_reference_image(tmp_path / "star.png", "star", (400, 400))
    started = cli("init", "--file", seven_s.path)
    assert started.code == 0, started.err
    assert "7.00 s" in started.out and "--duration 10" in started.out
    sid = started.out.split()[1].rstrip(":")
    create = ["create", sid, "--edit", "addition", "--image", star, "--prompt", ADD_PROMPT]

    mismatch = cli(*create, "--duration", "5")
    assert mismatch.code == 1 and "does not match" in mismatch.error_line()
    made = cli(*create, "--json")
    assert made.code == 0, made.err
    task_id = json.loads(made.out)["task_id"]
    assert sandbox.state.tasks[task_id].duration == "10"  # derived, not Kling's "5"
    advance(admin, 1.0)
    finished = json.loads(cli("wait", task_id, "--json").out)
    assert finished["videos"][0]["duration"] == "7.0"

    # another machine (no record of the session): asked, and nothing is sent until answered
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("other-machine")))
    wires = set_tripwires(admin)
    refused = cli(*create)
    assert refused.code == 1 and refused.out == ""
    assert refused.error_line().endswith(
        "pass --duration 5|10: Kling defaults to 5 s and would cut a 7-10 s clip")
    assert pending_faults(admin) == wires
    ok(admin.delete("/sandbox/faults"))
    told = cli(*create, "--duration", "10", "--json")
    assert told.code == 0, told.err
    assert sandbox.state.tasks[json.loads(told.out)["task_id"]].duration == "10"


def test_a_prompt_without_video_1_is_sent_with_advice(cli, sandbox, clip, tmp_path, caplog):
    """<<<video_1>>> is Kling's advice, not a documented requirement: no refusal."""
    star = make_reference_image(tmp_path / "star.png", "star", (400, 400))
    sid = json.loads(cli("init", "--file", clip.path, "--json").out)["session_id"]
    made = cli("create", sid, "--edit", "addition", "--image", star, "--prompt",
               "add the star from <<<image_1>>> [[fail]]", "--json")
    assert made.code == 0, made.err
    assert sandbox.state.tasks[json.loads(made.out)["task_id"]].prompt.startswith("add the star")
    assert "does not mention <<<video_1>>>" in caplog.text


# ---------------------------------------------------------------- bad input


BAD_INPUT = {
    "create on a session unknown here, without --duration": (
        lambda clip: ["create", "some-session", "--edit", "removal", "--prompt", REMOVE_PROMPT],
        1, "pass --duration 5|10: Kling defaults to 5 s and would cut a 7-10 s clip"),
    "point outside the frame": (
        lambda clip: ["edit", clip.path, "--point", "0:1.5,0.4", "--edit", "removal",
                      "--prompt", REMOVE_PROMPT, "-o", "out.mp4"],
        1, "1.5"),
    "removal without a point": (
        lambda clip: ["edit", clip.path, "--edit", "removal", "--prompt", REMOVE_PROMPT,
                      "-o", "out.mp4"],
        1, "selection"),
    "swap without an image": (
        lambda clip: ["edit", clip.path, "--point", f"0:{_point(clip)}", "--edit", "swap",
                      "--prompt", SWAP_PROMPT, "-o", "out.mp4"],
        1, "image"),
    "swap with a missing image": (
        lambda clip: ["edit", clip.path, "--point", f"0:{_point(clip)}", "--edit", "swap",
                      "--prompt", SWAP_PROMPT, "--image", "missing.png", "-o", "out.mp4"],
        1, "missing.png"),
    "missing clip": (
        lambda clip: ["edit", "missing.mp4", "--point", "0:0.5,0.5", "--edit", "removal",
                      "--prompt", REMOVE_PROMPT, "-o", "out.mp4"],
        1, "missing.mp4"),
    "select outside the frame": (
        lambda clip: ["select", "some-session", "0", "1.5,0.4"], 1, "1.5"),
    "create swap without an image": (
        lambda clip: ["create", "some-session", "--edit", "swap", "--prompt", SWAP_PROMPT],
        1, "image"),
    "page 0": (lambda clip: ["list", "--page", "0"], 1, "page"),
    "download from a non-URL": (lambda clip: ["download", "notaurl", "o.mp4"], 1, "http(s)"),
    "download from a URL without host": (
        lambda clip: ["download", "http://", "o.mp4"], 1, "cannot be used"),
    "base URL without a scheme": (
        lambda clip: ["list", "--base-url", "127.0.0.1:8765"], 1, "not an http(s) URL"),
    "task id with a slash": (lambda clip: ["status", "a/b"], 1, "'/'"),
    "unreadable point": (
        lambda clip: ["edit", clip.path, "--point", "0:abc", "--edit", "removal",
                      "--prompt", REMOVE_PROMPT, "-o", "out.mp4"],
        2, "--point"),
    "unknown edit mode": (
        lambda clip: ["create", "some-session", "--edit", "erase", "--prompt", REMOVE_PROMPT],
        2, "erase"),
}


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_fails_with_one_error_line_and_sends_nothing(cli, admin, clip, tmp_path, case):
    argv, code, words = BAD_INPUT[case]
    wires = set_tripwires(admin)
    run = cli(*argv(clip))
    assert run.code == code
    assert words in run.error_line()
    assert run.out == ""
    assert pending_faults(admin) == wires  # no request reached the sandbox
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no output, no state file


def test_missing_credentials_are_one_clear_error(cli, admin, monkeypatch):
    monkeypatch.delenv("KLINGAI_SECRET_KEY")
    wires = set_tripwires(admin)
    run = cli("list")
    assert run.code == 1 and "KLINGAI_SECRET_KEY" in run.error_line()
    assert pending_faults(admin) == wires


@pytest.mark.parametrize("auth", ["jwt", "api_key"])
def test_verbose_logging_never_shows_keys_or_tokens(cli, sandbox, monkeypatch, caplog, auth):
    if auth == "api_key":  # the API key is the bearer token itself
        monkeypatch.setenv("KLINGAI_API_KEY", sandbox.api_key)
    listed = cli("list", "--verbose", "--json")
    assert listed.code == 0 and isinstance(json.loads(listed.out), list)
    missing = cli("status", "no-such-task", "--verbose")
    assert missing.code == 1 and "does not exist" in missing.err
    assert "HTTP Request: GET" in caplog.text  # the requests were logged (without secrets)


# ---------------------------------------------------------------- the console script


def _console_script() -> str:
    beside = Path(sys.executable).parent / "kling-elements"
    found = str(beside) if beside.exists() else shutil.which("kling-elements")
    assert found, "the kling-elements console script is not installed"
    return found


def _script(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([_console_script(), *argv], capture_output=True, text=True,
                          timeout=60, env=env, check=False)


@pytest.fixture
def script_env(sandbox) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KLINGAI_")}
    env.update(KLINGAI_BASE_URL=sandbox.base_url, KLINGAI_ACCESS_KEY=sandbox.access_key,
               KLINGAI_SECRET_KEY=sandbox.secret_key)
    return env


@pytest.mark.slow
def test_console_script_help_lists_the_commands():
    done = _script("--help")
    assert done.returncode == 0 and done.stderr == ""
    for command in ("init", "select", "unselect", "clear", "preview", "create", "status",
                    "list", "wait", "download", "edit", "sandbox"):
        assert command in done.stdout


@pytest.mark.slow
def test_console_script_failure_is_exit_1_and_one_error_line(script_env, secrets):
    done = _script("status", "no-such-task", env=script_env)
    assert done.returncode == 1 and done.stdout == ""
    assert Run(done.returncode, done.stdout, done.stderr).error_line().startswith(
        "error: task 'no-such-task' does not exist")
    assert "code 1203" in done.stderr


@pytest.mark.slow
def test_console_script_verbose_logs_without_secrets(script_env, secrets):
    done = _script("list", "--verbose", "--json", env=script_env)
    assert done.returncode == 0, done.stderr
    assert isinstance(json.loads(done.stdout), list)
    assert "HTTP Request: GET" in done.stderr  # debug logging really went to stderr
    _assert_no_secrets(done.stdout + done.stderr, secrets)
