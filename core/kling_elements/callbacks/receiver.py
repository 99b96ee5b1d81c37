"""A small HTTP receiver (standard library only) that feeds POSTed callbacks to an inbox.

One thread per connection, bodies capped at ``MAX_BODY_BYTES``, a per-connection timeout,
any path accepted (the callback URL may carry a path of the caller's choosing). Answers:
``200`` with ``{"outcome": ...}`` for a delivery taken (duplicates too, so a sender whose
acknowledgement was lost stops retrying), ``401`` for a bad or stale signature, ``400``
for a body that is no callback, ``411``/``413`` for a missing or oversized length.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .inbox import CallbackInbox, Refused

__all__ = ["MAX_BODY_BYTES", "CallbackServer", "is_loopback", "parse_listen"]

log = logging.getLogger("kling_elements.callbacks")
MAX_BODY_BYTES = 1024 * 1024  # a callback is a few KB; a result list fits many times over
DISCARD_BYTES = 8 * MAX_BODY_BYTES  # read and dropped from a refused body before closing


def parse_listen(text: str) -> tuple[str, int]:
    """``(host, port)`` from ``HOST:PORT``, ``[IPv6]:PORT`` or ``:PORT`` (loopback)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"--listen {text!r} must be HOST:PORT with a port 0-65535, e.g. "
                         "127.0.0.1:8766 (0 picks a free port)")
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = 10  # a client that stalls mid-request frees its thread
    protocol_version = "HTTP/1.1"
    # Headers and body leave in two writes: with Nagle's algorithm on, a kept-alive
    # sender's next delivery waits ~40 ms for the delayed ACK of each answer.
    disable_nagle_algorithm = True

    def _answer(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if self.close_connection:  # else a kept-alive sender reuses a socket we close
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def _refuse_body(self, status: int, message: str, declared: int) -> None:
        """Answer without reading the body, then close. Up to ``DISCARD_BYTES`` of the body
        are read and dropped first: closing a socket with unread bytes resets it, and the
        sender could lose the answer that says why."""
        self.close_connection = True
        self._answer(status, {"error": message})
        left = min(declared, DISCARD_BYTES)
        try:
            while left > 0:
                chunk = self.rfile.read(min(left, 65536))
                if not chunk:
                    break
                left -= len(chunk)
        except OSError:  # the sender gave up, or the connection's timeout
            pass

    def do_POST(self) -> None:
        declared = self.headers.get("Content-Length", "")
        if not declared.isdigit():
            self._refuse_body(411, "Content-Length is required", 0)
            return
        if int(declared) > MAX_BODY_BYTES:
            self._refuse_body(413, f"the body is over {MAX_BODY_BYTES} bytes", int(declared))
            return
        body = self.rfile.read(int(declared))
        try:
            delivery = self.server.inbox.accept(dict(self.headers.items()), body)
        except Refused as exc:
            log.info("callback refused (HTTP %s): %s", exc.status, exc)
            self._answer(exc.status, {"error": str(exc)})
            return
        except Exception:
            log.exception("callback handling failed")
            self._answer(500, {"error": "internal error"})
            return
        self._answer(200, {"outcome": delivery.outcome})

    def do_GET(self) -> None:
        self._answer(405, {"error": "POST callbacks here"})

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("callback receiver: " + format, *args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    inbox: CallbackInbox

    def __init__(self, address: tuple[str, int], inbox: CallbackInbox) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)
        self.inbox = inbox


class CallbackServer:
    """Serves ``inbox`` on ``host:port`` (port 0: any free one) from a background thread.

    ``with CallbackServer(inbox) as server:`` starts it and stops it (joining the thread);
    ``url`` is where it listens (give it, or a public URL forwarding to it, as
    ``callback_url``). ``serve_forever()`` serves in the calling thread instead.
    """

    def __init__(self, inbox: CallbackInbox, host: str = "127.0.0.1", port: int = 0) -> None:
        self.inbox = inbox
        self._server = _Server((host, port), inbox)
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        host, port = self.address
        if host in ("0.0.0.0", "::"):
            host = "127.0.0.1"
        return f"http://{f'[{host}]' if ':' in host else host}:{port}/kling-callback"

    def start(self) -> CallbackServer:
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.2},
                                        name="kling-callbacks", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        try:
            self._server.serve_forever(poll_interval=0.2)
        finally:
            self._server.server_close()

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(5)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> CallbackServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
