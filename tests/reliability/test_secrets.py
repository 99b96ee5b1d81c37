"""No secret key, API key, access key or JWT in anything the project writes.

A sandbox of its own runs with freshly generated keys, so a hit can only be a leak. Every
flow here (library calls, the CLI in-process and as a process with ``--verbose``, failures
of every kind) runs with all loggers at DEBUG; then logs, stdout/stderr, every file written
(state files, results, ``.part`` files, the sandbox's data dir) and every exception's text,
repr and formatted traceback are scanned for the keys, their base64 forms, each token the
client actually sent (recorded at the transport) and anything shaped like a JWT.
(Saved .blend files are covered by the add-on's own test.)
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import secrets
import subprocess
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import kling_elements as ke
from kling_elements import cli
from kling_elements.sandbox import RunningSandbox, SandboxConfig, running

from ..support.fixtures import sandbox_fixture
from ..support.sandbox import ADD_PROMPT, JWT_PATTERN, REMOVE_PROMPT, ok, png_b64, upload

ACCESS = "ak-" + secrets.token_hex(12)
SECRET = "sk-" + secrets.token_urlsafe(24)
API_KEY = "api-" + secrets.token_urlsafe(24)


own = sandbox_fixture(scope="module", name="own", access_key=ACCESS, secret_key=SECRET,
                      api_key=API_KEY, task_seconds=0.2, max_concurrent_tasks=20)


@pytest.fixture(scope="module")
def own_admin(own: RunningSandbox) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=own.base_url, timeout=60, trust_env=False,
                      headers={"Authorization": f"Bearer {API_KEY}"}) as api:
        yield api


class Evidence:
    """Everything written during one test: log text, outputs, exceptions, files."""

    def __init__(self) -> None:
        self.log = io.StringIO()
        self.texts: list[str] = []
        self.tokens: set[str] = set()
        self.paths: list[Path] = []

    def exception(self, exc: BaseException) -> None:
        self.texts += [str(exc), repr(exc), "".join(traceback.format_exception(exc))]

    def needles(self) -> list[str]:
        words = [SECRET, API_KEY, ACCESS]
        for word in (SECRET, API_KEY):
            raw = word.encode()
            words += [base64.b64encode(raw).decode().rstrip("="),
                      base64.urlsafe_b64encode(raw).decode().rstrip("=")]
        return words + sorted(self.tokens)

    def scan(self) -> int:
        """Assert zero hits; return how many texts and files were looked at."""
        texts = [self.log.getvalue(), *self.texts]
        for text in texts:
            for needle in self.needles():
                assert needle not in text, f"secret leaked into: {text[:300]!r}"
            assert not JWT_PATTERN.search(text), JWT_PATTERN.search(text)
        files = [p for root in self.paths for p in ([root] if root.is_file()
                                                    else root.rglob("*")) if p.is_file()]
        for path in files:
            data = path.read_bytes()
            for needle in self.needles():
                assert needle.encode() not in data, f"secret leaked into {path}"
            assert not JWT_PATTERN.search(data.decode("latin-1")), path
        assert self.tokens, "the flow sent no token: the scan would prove nothing"
        return len(texts) + len(files)


@pytest.fixture
def evidence(monkeypatch, own) -> Iterator[Evidence]:
    found = Evidence()
    handler = logging.StreamHandler(found.log)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    real = httpx.HTTPTransport.handle_request

    def recording(transport, request):
        value = request.headers.get("authorization", "")
        if value.lower().startswith("bearer ") and value[7:] != API_KEY:
            found.tokens.add(value[7:])
        return real(transport, request)

    monkeypatch.setattr(httpx.HTTPTransport, "handle_request", recording)
    found.paths.append(own.data_dir)
    try:
        yield found
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def _client(own: RunningSandbox, **kw) -> ke.Client:
    keys = {"access_key": ACCESS, "secret_key": SECRET, "base_url": own.base_url, **kw}
    return ke.Client(keys.pop("access_key"), keys.pop("secret_key"), sleep=lambda s: None,
                     max_retries=1, **keys)


@pytest.mark.slow
def test_library_calls_and_their_failures_leak_nothing(own, own_admin, valid_clip, evidence,
                                                       tmp_path):
    evidence.paths.append(tmp_path)
    with _client(own) as client:
        evidence.texts += [repr(client), repr(client._auth), str(client.http.headers.keys())]
        init = client.init_selection(video_url=upload(own_admin, valid_clip))
        client.add_selection(init.session_id, 0, [(0.5, 0.5)])
        client.delete_selection(init.session_id, 0, [(0.5, 0.5)])
        client.add_selection(init.session_id, 0, [(0.25, 0.75)])
        state = tmp_path / "selection.json"
        state.write_text(json.dumps(client.sessions[init.session_id].to_dict()))
        preview = client.preview_selection(init.session_id)
        client.download(preview.video_url, tmp_path / "preview.mp4")
        task = client.create_task(session_id=init.session_id, edit_mode="addition",
                                  prompt=ADD_PROMPT, images=[base64.b64decode(png_b64(400, 400))],
                                  watermark=True)
        done = client.wait(task.task_id, timeout=120, poll_interval=0.05)
        client.download(done.videos[0].url, tmp_path / "result.mp4")
        evidence.texts += [repr(done), repr(client.list_tasks())]
        for failing in (lambda: client.get_task("no-such-task"),
                        lambda: client.add_selection(init.session_id, 99_999, [(0.5, 0.5)]),
                        lambda: client.add_selection("no-such-session", 0, [(0.5, 0.5)]),
                        lambda: client.download(done.videos[0].url, tmp_path / "result.mp4"),
                        lambda: client.wait(task.task_id, timeout=0)):
            try:
                failing()
            except (ke.KlingError, ValueError) as exc:
                evidence.exception(exc)
    for wrong in ({"secret_key": SECRET + "x"}, {"access_key": "ak-unknown"},
                  {"base_url": "http://127.0.0.1:9"}):
        with _client(own, **wrong) as client:
            with pytest.raises(ke.KlingError) as exc:
                client.list_tasks()
            evidence.exception(exc.value)
    for bad in ({"api_key": "key\nwith-newline" + SECRET}, {"api_key": "ké" + SECRET}):
        with pytest.raises(ValueError) as exc:
            ke.Client(**bad)
        evidence.exception(exc.value)
    assert evidence.scan() > 15


def test_an_expired_token_leaks_nothing(evidence):
    """Its own sandbox: moving the clock two hours on expires every later token too."""
    with running(access_key=ACCESS, secret_key=SECRET, api_key=API_KEY) as late:
        evidence.paths.append(late.data_dir)
        with _client(late) as client:
            client.list_tasks()
            ok(httpx.post(f"{late.base_url}/sandbox/clock", json={"advance_s": 7200},
                          headers={"Authorization": f"Bearer {API_KEY}"}))
            with pytest.raises(ke.AuthError) as exc:
                client.list_tasks()
            evidence.exception(exc.value)
        assert exc.value.code == 1004 and "clock" in str(exc.value)
        evidence.scan()


@pytest.fixture
def run_cli(own, monkeypatch, capsys, tmp_path, evidence):
    monkeypatch.setenv("KLINGAI_BASE_URL", own.base_url)
    monkeypatch.setenv("KLINGAI_ACCESS_KEY", ACCESS)
    monkeypatch.setenv("KLINGAI_SECRET_KEY", SECRET)
    monkeypatch.delenv("KLINGAI_API_KEY", raising=False)
    monkeypatch.chdir(tmp_path)
    evidence.paths.append(tmp_path)

    def run(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        try:
            code = cli.main(list(argv))
        except SystemExit as exc:
            code = exc.code
        out, err = capsys.readouterr()
        evidence.texts += [out, err]
        return code, out, err

    return run


@pytest.mark.slow
def test_the_cli_with_verbose_leaks_nothing_in_output_logs_or_state(run_cli, evidence,
                                                                    valid_clip, tmp_path):
    code, out, err = run_cli("edit", str(valid_clip), "--point", "0:0.5,0.5", "--edit",
                             "removal", "--prompt", REMOVE_PROMPT, "-o", "out.mp4",
                             "--watermark", "--verbose", "--json")
    assert code == 0, err
    task_id = json.loads(out)["task"]["task_id"]
    assert (tmp_path / "out.mp4.kling.json").exists() and (tmp_path / "out.mp4").exists()
    assert run_cli("status", task_id, "--verbose", "--json")[0] == 0
    assert run_cli("list", "--verbose")[0] == 0
    code, _, err = run_cli("status", task_id, "--verbose", "--secret-key", SECRET + "-wrong")
    assert code == 1 and "error:" in err
    code, _, err = run_cli("status", "nope", "--verbose", "--api-key", API_KEY + "-wrong")
    assert code == 1 and "error:" in err
    assert "DEBUG" in evidence.log.getvalue(), "debug logging was on"
    assert evidence.scan() > 10


def test_the_sandbox_command_prints_only_its_public_demo_keys(monkeypatch, capsys):
    import kling_elements.sandbox as sandbox_package

    def fake_serve(config, on_ready=None):
        on_ready("http://127.0.0.1:1")

    monkeypatch.setattr(sandbox_package, "serve", fake_serve)
    assert cli.main(["sandbox", "--access-key", ACCESS, "--secret-key", SECRET,
                     "--api-key", API_KEY]) == 0
    out = capsys.readouterr().out
    assert SECRET not in out and API_KEY not in out and "--secret-key" in out
    assert cli.main(["sandbox"]) == 0
    assert SandboxConfig().secret_key in capsys.readouterr().out  # the public demo key


@pytest.mark.slow
def test_the_installed_command_with_verbose_leaks_nothing(own, tmp_path):
    env = {**os.environ, "KLINGAI_BASE_URL": own.base_url, "KLINGAI_ACCESS_KEY": ACCESS,
           "KLINGAI_SECRET_KEY": SECRET}
    env.pop("KLINGAI_API_KEY", None)
    runs = [subprocess.run([sys.executable, "-m", "kling_elements.cli", *argv], env=env,
                           cwd=tmp_path, capture_output=True, text=True, timeout=120)
            for argv in (["list", "--verbose"], ["status", "missing", "--verbose"],
                         ["list", "--verbose", "--secret-key", SECRET + "-wrong"])]
    assert [r.returncode for r in runs] == [0, 1, 1]
    assert "httpx" in runs[0].stderr or "kling_elements" in runs[0].stderr, "debug logs shown"
    for r in runs:
        for text in (r.stdout, r.stderr):
            assert SECRET not in text and API_KEY not in text and ACCESS not in text
            assert not JWT_PATTERN.search(text), JWT_PATTERN.search(text)
