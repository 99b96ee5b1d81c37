"""An offline emulator of Kling's Multi-Elements API, for tests, demos and development.

``serve(config)`` runs it in the foreground (the CLI's ``kling-elements sandbox``);
``running(**overrides)`` runs it in a background thread for tests::

    with running(task_seconds=1.0) as sandbox:
        httpx.get(sandbox.base_url + "/v1/videos/multi-elements",
                  headers={"Authorization": f"Bearer {sandbox.api_key}"})

It binds loopback by default, downloads only from loopback URLs, and keeps everything under
``data_dir`` (a temporary directory, removed on exit, unless one is given).
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import uvicorn

from .config import SandboxConfig
from .files import SandboxH11Protocol
from .jobs import Jobs
from .server import create_app
from .state import State

__all__ = ["RunningSandbox", "SandboxConfig", "running", "serve"]

_START_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class RunningSandbox:
    """A started sandbox: where it listens, its keys, its files; ``state`` for white-box
    assertions in tests only."""

    base_url: str
    access_key: str
    secret_key: str
    api_key: str
    data_dir: Path
    state: State
    config: SandboxConfig

    def __repr__(self) -> str:
        return f"RunningSandbox(base_url={self.base_url!r}, data_dir={str(self.data_dir)!r})"


class _Server(uvicorn.Server):
    """uvicorn's server, except that after a graceful shutdown on SIGINT/SIGTERM it does not
    raise the signal again: ``serve`` returns normally and cleans up (worker, temp dir)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        with super().capture_signals():
            try:
                yield
            finally:
                captured = getattr(self, "_captured_signals", None)
                if isinstance(captured, list):
                    captured.clear()


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP by name: asyncio turns Nagle off only on sockets that say so, and with it
    # on, every answer's body waited ~40 ms for the client's delayed ACK of the headers.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


@contextlib.contextmanager
def _started(
    config: SandboxConfig,
) -> Iterator[tuple[RunningSandbox, uvicorn.Server, socket.socket]]:
    """Bind, build state, app and jobs; on exit stop jobs and remove an owned data dir."""
    owned = config.data_dir is None
    data_dir = Path(tempfile.mkdtemp(prefix="kling-sandbox-") if owned else config.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    sock = _bind(config.host, config.port)
    port = sock.getsockname()[1]
    config = replace(config, port=port, data_dir=data_dir)
    state = State(data_dir)
    state.base_url = f"http://{_url_host(config.host)}:{port}"
    server = _Server(uvicorn.Config(
        create_app(config, state), http=SandboxH11Protocol, ws="none", lifespan="off",
        log_config=None, access_log=False, log_level="warning", timeout_graceful_shutdown=5,
    ))
    jobs = Jobs(state, config)
    jobs.start()
    handle = RunningSandbox(
        base_url=state.base_url, access_key=config.access_key, secret_key=config.secret_key,
        api_key=config.api_key, data_dir=data_dir, state=state, config=config,
    )
    try:
        yield handle, server, sock
    finally:
        jobs.stop()
        sock.close()
        if owned:
            shutil.rmtree(data_dir, ignore_errors=True)


@contextlib.contextmanager
def running(**overrides: object) -> Iterator[RunningSandbox]:
    """Run a sandbox in a background thread (port 0 = any free port unless given).

    Yields once it accepts connections; on exit the server shuts down, its thread is
    joined and the render worker stopped. ``overrides`` are :class:`SandboxConfig` fields.
    """
    overrides.setdefault("port", 0)
    config = SandboxConfig(**overrides)  # type: ignore[arg-type]
    with _started(config) as (handle, server, sock):
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="sandbox-http", daemon=True
        )
        thread.start()
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                server.should_exit = True
                thread.join(5)
                raise RuntimeError("the sandbox server did not start")
            time.sleep(0.01)
        try:
            yield handle
        finally:
            server.should_exit = True
            thread.join(15)


def serve(
    config: SandboxConfig | None = None,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Run a sandbox in the foreground until SIGINT/SIGTERM, then shut down and return.

    ``on_ready(base_url)`` is called once it accepts connections (e.g. to print it);
    nothing is printed otherwise.
    """
    with _started(config or SandboxConfig()) as (handle, server, sock):
        if on_ready is not None:
            def announce() -> None:
                while not server.started and not server.should_exit:
                    time.sleep(0.01)
                if server.started:
                    on_ready(handle.base_url)

            threading.Thread(target=announce, name="sandbox-ready", daemon=True).start()
        server.run(sockets=[sock])
