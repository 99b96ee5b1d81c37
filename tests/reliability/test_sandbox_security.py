"""The sandbox's security promises, each proven without touching anything but loopback:

* it listens on loopback unless told otherwise;
* it fetches only loopback URLs (video, images) and calls back only loopback URLs, refusing
  *before* any lookup or connection: hosts are under ``.invalid`` and a patched resolver
  records every name anyone tries to resolve, so "never asked" is an assertion;
* it caps uploads and JSON bodies as they arrive (also without a Content-Length);
* whatever an upload's filename, the file lands under its data dir, under a name of its own.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from tempfile import SpooledTemporaryFile

import httpx
import pytest
import starlette.formparsers

from kling_elements.cli import _parser
from kling_elements.sandbox import SandboxConfig, server
from kling_elements.sandbox.config import ApiError
from kling_elements.sandbox.fetch import loopback_url

from ..support.sandbox import ADD_PROMPT, ok, png_b64, refused, upload
from .conftest import API


@pytest.fixture
def lookups(monkeypatch) -> list[str]:
    """Every host name resolved in this process (any thread); non-loopback ones fail."""
    seen: list[str] = []
    real = socket.getaddrinfo

    def recording(host, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else str(host)
        seen.append(name)
        if name not in ("127.0.0.1", "::1", "localhost"):
            raise socket.gaierror(f"test resolver: {name} is not loopback")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", recording)
    return seen


def _outside(lookups: list[str]) -> list[str]:
    return [h for h in lookups if h not in ("127.0.0.1", "::1", "localhost")]


# ---------------------------------------------------------------- binding


def test_it_binds_loopback_by_default(sandbox):
    assert SandboxConfig().host == "127.0.0.1"
    assert _parser().parse_args(["sandbox"]).host == "127.0.0.1"
    assert sandbox.base_url.startswith("http://127.0.0.1:")
    port = int(sandbox.base_url.rsplit(":", 1)[1])
    table = Path("/proc/net/tcp")
    if not table.exists():
        pytest.skip("no /proc/net/tcp to read listening sockets from")
    listening = [line.split()[1] for line in table.read_text().splitlines()[1:]
                 if line.split()[3] == "0A"]  # state LISTEN
    ours = [addr for addr in listening if int(addr.split(":")[1], 16) == port]
    assert ours == ["0100007F:" + f"{port:04X}"], "listens on 127.0.0.1 only"


# ---------------------------------------------------------------- SSRF

NOT_LOOPBACK = {
    "invalid-name": "http://metadata.invalid/clip.mp4",
    "private-ip": "http://10.0.0.1/clip.mp4",
    "link-local-metadata": "http://169.254.169.254/latest/meta-data/",
    "all-interfaces": "http://0.0.0.0:8765/clip.mp4",
    "ipv6-unspecified": "http://[::]/clip.mp4",
    "ipv4-mapped-ipv6": "http://[::ffff:7f00:1]/clip.mp4",
    "decimal-ip": "http://2130706433/clip.mp4",
    "hex-ip": "http://0x7f000001/clip.mp4",
    "short-ip": "http://127.1/clip.mp4",
    "loopback-lookalike-name": "http://127.0.0.1.invalid/clip.mp4",
    "localhost-subdomain": "http://localhost.invalid/clip.mp4",
    "localhost-trailing-dot": "http://localhost./clip.mp4",
    "userinfo-trick": "http://127.0.0.1@evil.invalid/clip.mp4",
    "fragment-trick": "http://evil.invalid#@127.0.0.1/clip.mp4",
    "query-trick": "http://evil.invalid?@127.0.0.1/clip.mp4",
    "port-trick": "http://127.0.0.1:80@evil.invalid/clip.mp4",
    "idn-name": "http://ⓛⓞⓒⓐⓛⓗⓞⓢⓣ/clip.mp4",
}
NOT_HTTP = {"file-url": "file:///etc/passwd", "ftp-url": "ftp://127.0.0.1/clip.mp4",
            "gopher-url": "gopher://127.0.0.1:70/_x", "no-host": "http:///clip.mp4"}


@pytest.mark.parametrize("url", list(NOT_LOOPBACK.values()) + list(NOT_HTTP.values()),
                         ids=list(NOT_LOOPBACK) + list(NOT_HTTP))
def test_a_video_url_off_loopback_is_refused_before_any_lookup(url, admin, lookups, sandbox):
    sessions = len(sandbox.state.sessions)
    response = admin.post(f"{API}/init-selection", json={"video_url": url})
    message = refused(response, 400, 1201, "video_url")
    assert any(w in message for w in ("not loopback", "not an http(s) URL", "not a valid URL",
                                      "has no host", "ambiguous")), message
    assert _outside(lookups) == [], "refused before any name was resolved"
    assert len(sandbox.state.sessions) == sessions


@pytest.mark.parametrize("url", list(NOT_LOOPBACK.values()), ids=list(NOT_LOOPBACK))
def test_the_url_check_itself_refuses_every_form(url):
    with pytest.raises(ApiError) as exc:
        loopback_url("video_url", url)
    assert exc.value.code == 1201


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/c.mp4", "http://127.8.9.10/c.mp4",
                                 "http://[::1]:9/c.mp4", "http://localhost:9/c.mp4",
                                 "https://LOCALHOST/c.mp4"])
def test_loopback_urls_pass_the_check(url):
    assert loopback_url("video_url", url) == url


def test_an_image_url_off_loopback_is_refused_before_any_lookup(admin, session_id, lookups):
    before = ok(admin.get("/sandbox/stats"))["tasks"]
    response = admin.post(API, json={
        "session_id": session_id, "edit_mode": "addition", "prompt": ADD_PROMPT,
        "image_list": [{"image": "http://images.invalid/star.png"}]})
    refused(response, 400, 1201, "image_list[0].image", "not loopback")
    assert _outside(lookups) == [] and ok(admin.get("/sandbox/stats"))["tasks"] == before


@pytest.mark.parametrize("url", ["http://hooks.invalid/cb", "http://192.168.1.1/cb",
                                 "https://[2001:db8::1]/cb"], ids=["name", "lan-ip", "ipv6"])
def test_a_callback_off_loopback_is_refused_and_no_task_is_made(admin, session_id, lookups,
                                                                url):
    before = ok(admin.get("/sandbox/stats"))["tasks"]
    response = admin.post(API, json={
        "session_id": session_id, "edit_mode": "addition", "prompt": ADD_PROMPT,
        "image_list": [{"image": png_b64(400, 400)}], "callback_url": url})
    refused(response, 400, 1201, "callback_url", "not loopback")
    assert _outside(lookups) == [] and ok(admin.get("/sandbox/stats"))["tasks"] == before


class _Redirector:
    """A loopback server answering every request with a redirect to an outside address."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        hits = self.hits

        class Handler(BaseHTTPRequestHandler):
            def _redirect(self) -> None:
                hits.append(self.command)
                length = int(self.headers.get("content-length") or 0)
                self.rfile.read(length)
                self.send_response(302)
                self.send_header("location", "http://evil.invalid/steal")
                self.send_header("content-length", "0")
                self.end_headers()

            do_GET = do_POST = _redirect

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/x.mp4"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def redirector():
    r = _Redirector()
    yield r
    r.close()


def test_a_loopback_video_url_that_redirects_outside_is_not_followed(admin, redirector,
                                                                     lookups):
    response = admin.post(f"{API}/init-selection", json={"video_url": redirector.url})
    refused(response, 400, 1201, "video_url", "HTTP 302")
    assert redirector.hits == ["GET"] and "evil.invalid" not in lookups


def test_a_callback_that_redirects_outside_is_not_followed(admin, session_id, redirector,
                                                           lookups):
    task = ok(admin.post(API, json={
        "session_id": session_id, "edit_mode": "addition", "prompt": ADD_PROMPT,
        "image_list": [{"image": png_b64(400, 400)}], "callback_url": redirector.url,
        "external_task_id": "redirecting-callback"}))
    deadline = time.monotonic() + 30
    while not redirector.hits and time.monotonic() < deadline:
        time.sleep(0.02)
    assert redirector.hits and set(redirector.hits) == {"POST"}
    assert "evil.invalid" not in lookups
    assert task["task_id"]


# ---------------------------------------------------------------- size caps


def _multipart(boundary: str, filename: str, chunks) -> bytes:
    yield (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
           f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n').encode()
    yield from chunks
    yield f"\r\n--{boundary}--\r\n".encode()


@pytest.fixture
def small_caps(monkeypatch) -> int:
    cap = 256 * 1024
    monkeypatch.setattr(server, "MAX_UPLOAD_BYTES", cap)
    monkeypatch.setattr(server, "MAX_JSON_BYTES", cap)
    return cap


@pytest.fixture
def spooled(monkeypatch) -> list[int]:
    """Bytes the multipart parser wrote to its temporary files (in the system temp dir)."""
    written = [0]

    class Counting(SpooledTemporaryFile):
        def write(self, data):
            written[0] += len(data)
            return super().write(data)

    monkeypatch.setattr(starlette.formparsers, "SpooledTemporaryFile", Counting)
    return written


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def test_an_upload_over_the_cap_is_refused_and_leaves_nothing(admin, sandbox, small_caps,
                                                              spooled):
    before = _files(sandbox.data_dir)
    response = admin.post("/sandbox/uploads",
                          files={"file": ("big.mp4", b"\0" * (small_caps + 70 * 1024))})
    refused(response, 400, 1201, "upload limit")
    assert spooled[0] == 0, "refused from Content-Length, before reading the body"
    assert _files(sandbox.data_dir) == before


def test_an_upload_without_content_length_is_capped_as_it_arrives(admin, sandbox, small_caps,
                                                                  spooled):
    before = _files(sandbox.data_dir)
    chunks = (b"\0" * (256 * 1024) for _ in range(32))  # 8 MiB, 32 x the cap
    response = admin.post("/sandbox/uploads", content=_multipart("b0und", "big.mp4", chunks),
                          headers={"content-type": "multipart/form-data; boundary=b0und"})
    refused(response, 400, 1201, "upload limit")
    assert spooled[0] <= small_caps + 128 * 1024, "never held much more than the cap"
    assert _files(sandbox.data_dir) == before


def test_a_json_body_over_the_cap_is_refused(admin, small_caps):
    padding = "x" * (small_caps + 1)
    refused(admin.post(f"{API}/init-selection", json={"video_url": padding}), 400, 1200,
            "request body is over")
    chunks = (b" " * 65536 for _ in range(16))  # 1 MiB of JSON whitespace, no length
    refused(admin.post(f"{API}/init-selection", content=chunks,
                       headers={"content-type": "application/json"}), 400, 1200, "over")


# ---------------------------------------------------------------- where uploads land

HOSTILE_NAMES = {
    "dotdot": "../../escaped.mp4",
    "deep-dotdot": "a/b/../../../../escaped.mp4",
    "absolute": "/tmp/escaped-by-absolute-path.mp4",
    "backslashes": "..\\..\\escaped.mp4",
    "only-dots": "..",
    "nul-byte": "escaped.mp4\x00.png",
    "very-long": "x" * 300 + ".mp4",
    "unicode": "ëscaped-🎬.mp4",
    "dot-suffix-trick": "clip.mp4/..",
    "shell-metacharacters": "$(touch pwned);`id`|x.mp4",
}


@pytest.mark.parametrize("filename", list(HOSTILE_NAMES.values()), ids=list(HOSTILE_NAMES))
def test_an_upload_lands_in_the_data_dir_whatever_its_name(admin, sandbox, filename):
    uploads = sandbox.data_dir / "uploads"
    before = _files(uploads) if uploads.exists() else set()
    response = admin.post("/sandbox/uploads", files={"file": (filename, b"clip bytes")})
    url = ok(response)["url"]
    (path,) = _files(uploads) - before  # (renders of other tests write elsewhere meanwhile)
    assert not list(sandbox.data_dir.rglob("*escaped*"))
    assert path.resolve().is_relative_to(sandbox.data_dir.resolve())
    assert path.read_bytes() == b"clip bytes"
    assert "escaped" not in path.name and ".." not in url.rsplit("/", 1)[1]
    # Other processes write to /tmp meanwhile: look for this test's names, not for any change.
    for folder in (sandbox.data_dir / "uploads").parents:
        assert not list(folder.glob("*escaped*")), folder
    assert httpx.get(url).content == b"clip bytes"


@pytest.mark.parametrize("name", ["..%2F..%2Fetc%2Fpasswd", "%2e%2e", "..%5C..%5Cwin.ini",
                                  "uploads%2F..%2F..%2Fx"],
                         ids=["encoded-dotdot", "encoded-dots", "encoded-backslash",
                              "encoded-subdir"])
def test_the_files_route_serves_only_files_it_handed_out(sandbox, name):
    response = httpx.get(f"{sandbox.base_url}/sandbox/files/{name}")
    assert response.status_code == 404
    assert json.loads(response.content)["code"] in (1202, 1203)


def test_an_upload_name_the_client_sent_is_never_the_stored_name(admin, sandbox, valid_clip):
    url = upload(admin, valid_clip, name="my holiday.mp4")
    assert "holiday" not in url and url.endswith(".mp4")
