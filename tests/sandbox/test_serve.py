"""``serve()`` in the foreground, as the CLI runs it: announces its URL, stops on Ctrl-C."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading

import httpx
import pytest

SCRIPT = textwrap.dedent("""
    import sys, tempfile
    from kling_elements.sandbox import SandboxConfig, serve
    data = tempfile.mkdtemp()
    serve(SandboxConfig(port=0, data_dir=data), on_ready=lambda url: print(url, flush=True))
    print("stopped", flush=True)
""")


@pytest.mark.slow
def test_serve_announces_its_url_and_stops_on_interrupt():
    process = subprocess.Popen(
        [sys.executable, "-c", SCRIPT], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base_url = process.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:"), process.stderr.read()
        response = httpx.get(f"{base_url}/v1/videos/multi-elements",
                             headers={"Authorization": "Bearer sandbox-api-key"},
                             trust_env=False)
        assert response.status_code == 200 and response.json()["code"] == 0
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=20)
        assert process.returncode == 0, err
        assert out.strip() == "stopped"
        assert err == ""  # nothing printed besides what on_ready printed
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_running_binds_loopback_and_cleans_up():
    from kling_elements.sandbox import running

    with running() as sandbox:
        assert sandbox.base_url.startswith("http://127.0.0.1:")
        assert sandbox.data_dir.is_dir()
        assert sandbox.secret_key not in repr(sandbox)
        assert sandbox.api_key not in repr(sandbox)
        threads_before = {t.name for t in threading.enumerate()}
        assert {"sandbox-http", "sandbox-render", "sandbox-ticker"} <= threads_before
    assert not sandbox.data_dir.exists()
    names = {t.name for t in threading.enumerate()}
    assert not names & {"sandbox-http", "sandbox-render", "sandbox-ticker", "sandbox-callbacks"}
    with pytest.raises(httpx.ConnectError):
        httpx.get(sandbox.base_url, trust_env=False)


def test_the_sandbox_command_keeps_clips_up_to_max_long_side(monkeypatch):
    from kling_elements import cli, sandbox

    served = []
    monkeypatch.setattr(sandbox, "serve", lambda config, on_ready=None: served.append(config))
    assert cli.main(["sandbox", "--port", "0", "--max-long-side", "2160"]) == 0
    assert served[0].max_long_side == 2160
    assert cli.main(["sandbox", "--port", "0"]) == 0
    assert served[1].max_long_side == 1280


def test_the_sandbox_command_refuses_a_bad_max_long_side(monkeypatch, capsys):
    from kling_elements import cli, sandbox

    monkeypatch.setattr(sandbox, "serve", lambda config, on_ready=None: pytest.fail("served"))
    assert cli.main(["sandbox", "--max-long-side", "0"]) == 1
    err = capsys.readouterr().err
    assert "max_long_side 0" in err and ">= 2" in err and "2160" in err


def test_answers_are_not_held_back_by_nagle(monkeypatch):
    """Headers and body are two writes: with Nagle on, the body waits for the client's
    delayed ACK (~40 ms per request). The server's connections must have it off."""
    import socket

    from kling_elements.sandbox import files, running

    seen = []
    made = files.SandboxH11Protocol.connection_made

    def connection_made(self, transport):
        sock = transport.get_extra_info("socket")
        seen.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        made(self, transport)

    monkeypatch.setattr(files.SandboxH11Protocol, "connection_made", connection_made)
    with running() as sandbox:
        httpx.get(f"{sandbox.base_url}/v1/videos/multi-elements", trust_env=False,
                  headers={"Authorization": f"Bearer {sandbox.api_key}"})
    assert seen and all(seen)
