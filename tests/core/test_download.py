"""Downloads against a real loopback HTTP server: resume with Range/If-Range, restart when the
server ignores the range or the file changed, atomic rename, progress, no credentials."""

from __future__ import annotations

import hashlib
import random
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import kling_elements as ke
from kling_elements.download import CHUNK_BYTES, download

SIZE = 1_000_003  # not a multiple of the chunk size
CUT = 4 * CHUNK_BYTES


def blob(seed: int) -> bytes:
    return random.Random(seed).randbytes(SIZE)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class FileServer:
    """Serves one file at /out.mp4 with ETag, Range and If-Range; can cut connections."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.etag = '"v1"'
        self.honour_range = True
        self.cuts_left = 0  # cut this many of the next responses ...
        self.cut_after = CUT  # ... after this many body bytes
        self.status = 200
        self.range_shift = 0  # a buggy server: answer a range from the wrong offset
        self.requests: list[dict[str, str]] = []
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/out.mp4"

    def ranges(self) -> list[str | None]:
        return [r.get("range") for r in self.requests]

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                server.requests.append({k.lower(): v for k, v in self.headers.items()})
                if server.status != 200:
                    self.send_response(server.status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data, start = server.data, 0
                match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
                if_range = self.headers.get("If-Range")
                if match and server.honour_range and if_range in (None, server.etag):
                    start = max(int(match.group(1)) - server.range_shift, 0)
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range",
                                     f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(data) - start))
                self.send_header("ETag", server.etag)
                self.send_header("Content-Type", "video/mp4")
                self.end_headers()
                body = data[start:]
                if server.cuts_left > 0:
                    server.cuts_left -= 1
                    body = body[: server.cut_after]
                    self.close_connection = True
                for i in range(0, len(body), 50_000):
                    self.wfile.write(body[i : i + 50_000])

        return Handler

    def __enter__(self) -> FileServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture
def server():
    with FileServer(blob(1)) as srv:
        yield srv


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def client(sleeps):
    with ke.Client(api_key="secret-api-key-for-kling", sleep=sleeps.append,
                   max_retries=4) as c:
        yield c


class Progress:
    def __init__(self, dest) -> None:
        self.dest = dest
        self.calls: list[tuple[int, int | None]] = []

    def __call__(self, done: int, total: int | None) -> None:
        assert not self.dest.exists(), "the destination appeared before the download finished"
        self.calls.append((done, total))


def test_download_resumes_with_range_after_cuts(server, client, sleeps, tmp_path):
    server.cuts_left = 2
    dest = tmp_path / "result.mp4"
    progress = Progress(dest)
    assert client.download(server.url, dest, on_progress=progress) == dest
    assert sha(dest.read_bytes()) == sha(server.data)
    assert server.ranges() == [None, f"bytes={CUT}-", f"bytes={2 * CUT}-"]
    assert [r.get("if-range") for r in server.requests] == [None, '"v1"', '"v1"']
    assert "authorization" not in {k for r in server.requests for k in r}
    assert len(sleeps) == 2
    assert not (tmp_path / "result.mp4.part").exists()
    assert not (tmp_path / "result.mp4.part.etag").exists()


def test_a_downloads_retries_are_heard_by_the_edit_observing_them(server, client, tmp_path):
    """An edit's hooks (``observe_retries``) hear its download's retries, as they hear its
    API calls' (a batch job counts and reports them)."""
    from kling_elements.retry import observe_retries

    server.cuts_left = 2
    heard: list[float] = []
    with observe_retries(lambda error, wait: heard.append(wait)):
        client.download(server.url, tmp_path / "result.mp4")
    assert len(heard) == 2 and all(wait > 0 for wait in heard)
    client.download(server.url, tmp_path / "again.mp4", overwrite=True)
    assert len(heard) == 2  # outside the block: nobody is told


def test_bytes_received_before_a_cut_are_kept_however_few(server, client, tmp_path):
    """A cut 10 kB into the body still resumes from 10 kB (nothing held back in a buffer)."""
    server.cuts_left, server.cut_after = 1, 10_000
    dest = tmp_path / "result.mp4"
    client.download(server.url, dest)
    assert server.ranges() == [None, "bytes=10000-"]
    assert sha(dest.read_bytes()) == sha(server.data)


def test_progress_is_monotonic_and_chunked(server, client, tmp_path):
    server.cuts_left = 1
    dest = tmp_path / "result.mp4"
    progress = Progress(dest)
    client.download(server.url, dest, on_progress=progress)
    done = [d for d, _ in progress.calls]
    assert done == sorted(done)
    assert done[-1] == SIZE
    assert {t for _, t in progress.calls} == {SIZE}
    steps = [b - a for a, b in zip([0, *done], done, strict=False)]
    assert max(steps) <= CHUNK_BYTES
    assert len(progress.calls) >= SIZE // CHUNK_BYTES


def test_server_ignoring_range_restarts_cleanly(server, client, tmp_path):
    server.honour_range = False
    server.cuts_left = 1
    dest = tmp_path / "result.mp4"
    client.download(server.url, dest, on_progress=Progress(dest))
    assert sha(dest.read_bytes()) == sha(server.data)
    assert len(dest.read_bytes()) == SIZE
    assert server.ranges() == [None, f"bytes={CUT}-"]


def test_retries_exhausted_leave_the_part_file_and_a_second_call_resumes(
    server, sleeps, tmp_path
):
    dest = tmp_path / "result.mp4"
    part = tmp_path / "result.mp4.part"
    server.cuts_left = 100
    with ke.Client(api_key="k", sleep=sleeps.append, max_retries=2) as client:
        with pytest.raises(ke.ConnectionFailed) as exc:
            client.download(server.url, dest)
        assert len(server.requests) == 3 and len(sleeps) == 2
        assert not dest.exists()
        assert part.stat().st_size == 3 * CUT
        assert part.read_bytes() == server.data[: 3 * CUT]
        assert str(3 * CUT) in str(exc.value)

        server.cuts_left = 0
        client.download(server.url, dest)
    assert sha(dest.read_bytes()) == sha(server.data)
    assert server.ranges()[-1] == f"bytes={3 * CUT}-"
    assert not part.exists()


def test_a_changed_file_is_downloaded_afresh_not_spliced(server, tmp_path):
    dest = tmp_path / "result.mp4"
    server.cuts_left = 1
    with pytest.raises(ke.ConnectionFailed):
        download(server.url, dest, max_retries=0, sleep=lambda s: None)
    server.data, server.etag = blob(2), '"v2"'
    download(server.url, dest, max_retries=0, sleep=lambda s: None)
    assert sha(dest.read_bytes()) == sha(blob(2))
    assert server.requests[-1].get("if-range") == '"v1"'


def test_a_complete_part_file_is_not_corrupted(server, tmp_path):
    dest = tmp_path / "result.mp4"
    (tmp_path / "result.mp4.part").write_bytes(server.data)
    download(server.url, dest, sleep=lambda s: None)
    assert sha(dest.read_bytes()) == sha(server.data)
    assert len(server.requests) == 1, "a complete .part must not be fetched again"


def test_http_error_is_reported_without_retry(server, client, sleeps, tmp_path):
    server.status = 404
    dest = tmp_path / "result.mp4"
    with pytest.raises(ke.KlingError) as exc:
        client.download(server.url, dest)
    assert exc.value.http_status == 404
    assert "30 days" in str(exc.value)
    assert len(server.requests) == 1 and sleeps == []
    assert not dest.exists() and not (tmp_path / "result.mp4.part").exists()


def test_existing_destination_is_replaced_only_when_complete(server, tmp_path):
    dest = tmp_path / "result.mp4"
    dest.write_bytes(b"previous result")
    server.cuts_left = 100
    with pytest.raises(ke.ConnectionFailed):
        download(server.url, dest, overwrite=True, max_retries=1, sleep=lambda s: None)
    assert dest.read_bytes() == b"previous result"
    server.cuts_left = 0
    download(server.url, dest, overwrite=True, max_retries=1, sleep=lambda s: None)
    assert sha(dest.read_bytes()) == sha(server.data)


def test_existing_destination_is_refused_without_overwrite(server, tmp_path):
    """The policy: an existing file is never replaced silently, and nothing is fetched."""
    dest = tmp_path / "result.mp4"
    dest.write_bytes(b"previous result")
    with pytest.raises(ke.ValidationError, match=r"already exists.*overwrite=True"):
        download(server.url, dest, sleep=lambda s: None)
    assert dest.read_bytes() == b"previous result"
    assert server.requests == [] and not (tmp_path / "result.mp4.part").exists()


def test_a_range_from_the_wrong_offset_is_not_spliced(server, client, tmp_path):
    server.range_shift = 1000
    server.cuts_left = 1
    dest = tmp_path / "result.mp4"
    client.download(server.url, dest)
    assert sha(dest.read_bytes()) == sha(server.data)
    assert server.ranges() == [None, f"bytes={CUT}-", None]
