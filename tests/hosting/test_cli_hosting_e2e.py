"""``kling-elements edit`` and ``batch`` with each hosting choice, end to end on loopback.

The sandbox plays Kling: it downloads the ``video_url`` it is given, so with ``--host-with
s3`` it fetches the presigned URL from the moto server (query string and all); with
``--host-with command`` it fetches from a small web server the command copied the clip to.
"""

from __future__ import annotations

import functools
import json
import logging
import shutil
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from kling_elements.cli import main
from kling_elements.hosting import S3Host

from ..support.fixtures import sandbox_fixture
from ..support.media import frame_count
from ..support.sandbox import REMOVE_PROMPT, ok
from ..support.sandbox import client as admin_client

SECRET = "moto-secret/for+the=cli"


@dataclass
class Run:
    code: int
    out: str
    err: str


sandbox = sandbox_fixture(scope="module", task_seconds=0.3)


@pytest.fixture
def puts(monkeypatch) -> list[str]:
    """The keys of every S3 PUT this process sends."""
    sent: list[str] = []
    original = S3Host._send

    def spy(self, method, key, **kwargs):
        if method == "PUT":
            sent.append(key)
        return original(self, method, key, **kwargs)

    monkeypatch.setattr(S3Host, "_send", spy)
    return sent


@pytest.fixture
def cli(sandbox, monkeypatch, capsys, caplog, tmp_path) -> Iterator[Callable[..., Run]]:
    """``cli(*argv)`` runs the command in ``tmp_path`` with the sandbox's keys and moto's S3
    keys in the environment; every output and log record is checked for leaks."""
    for name in ("AWS_SESSION_TOKEN", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL",
                 "AWS_ENDPOINT_URL_S3", "KLINGAI_API_KEY", "KLING_ELEMENTS_HOST_WITH",
                 "KLING_ELEMENTS_S3_BUCKET", "KLING_ELEMENTS_S3_PREFIX"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KLINGAI_BASE_URL", sandbox.base_url)
    monkeypatch.setenv("KLINGAI_ACCESS_KEY", sandbox.access_key)
    monkeypatch.setenv("KLINGAI_SECRET_KEY", sandbox.secret_key)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAMOTOCLI000000000")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "user-cache"))
    monkeypatch.chdir(tmp_path)
    caplog.set_level(logging.DEBUG)

    def run(*argv: object) -> Run:
        capsys.readouterr()
        try:
            code = main([str(arg) for arg in argv])
        except SystemExit as exc:
            code = exc.code
        out, err = capsys.readouterr()
        for text in (out, err):
            assert SECRET not in text and sandbox.secret_key not in text
            assert "X-Amz-Signature" not in text
        return Run(code, out, err)

    yield run
    assert SECRET not in caplog.text
    for record in caplog.records:
        if record.name.startswith("kling_elements") and record.levelno >= logging.INFO:
            assert "X-Amz-Signature" not in record.getMessage(), record.getMessage()


def _edit(clip, output: str, *hosting: object) -> list[object]:
    x, y = clip.center(0)
    return ["edit", clip.path, "--point", f"0:{x!r},{y!r}", "--edit", "removal",
            "--prompt", REMOVE_PROMPT, "-o", output, *hosting]


@pytest.mark.slow
def test_edit_with_s3_uploads_once_and_the_sandbox_fetches_the_presigned_url(
        cli, moto, bucket, clip, puts, tmp_path):
    s3 = ["--host-with", "s3", "--s3-endpoint", moto, "--s3-bucket", bucket,
          "--s3-prefix", "kling/", "--host-cache", tmp_path / "cache"]
    run = cli(*_edit(clip, "first.mp4", *s3))
    assert run.code == 0, run.err
    assert frame_count(tmp_path / "first.mp4") == 48
    assert len(puts) == 1 and puts[0].startswith("kling/")
    listing = httpx.get(f"{moto}/{bucket}?prefix=kling/", trust_env=False).text
    assert f"<Key>{puts[0]}</Key>" in listing

    # The same clip again: its URL is remembered on disk and still fresh, so no upload.
    run = cli(*_edit(clip, "second.mp4", *s3))
    assert run.code == 0, run.err
    assert frame_count(tmp_path / "second.mp4") == 48 and len(puts) == 1
    entries = json.loads((tmp_path / "cache" / "published-urls.json").read_text())["entries"]
    assert len(entries) == 1 and SECRET not in json.dumps(entries)

    run = cli(*_edit(clip, "third.mp4", *s3, "--no-host-cache"))
    assert run.code == 0, run.err
    assert len(puts) == 2


def test_s3_settings_that_cannot_work_fail_before_anything_is_sent(cli, clip, sandbox, puts,
                                                                   tmp_path):
    with admin_client(sandbox) as admin:
        before = ok(admin.get("/sandbox/stats"))["created"]
        run = cli(*_edit(clip, "out.mp4", "--host-with", "s3", "--s3-expires", "60"))
        after = ok(admin.get("/sandbox/stats"))["created"]
    assert run.code == 1
    (line,) = run.err.splitlines()
    assert line.startswith("error: ") and "bucket is not set" in line
    assert "--s3-bucket" in line or "KLING_ELEMENTS_S3_BUCKET" in line
    assert "60 must be a whole number of seconds from 900" in line
    assert puts == [] and before == after and not (tmp_path / "out.mp4").exists()


def test_a_store_error_is_one_clear_line(cli, moto, clip):
    run = cli(*_edit(clip, "out.mp4", "--host-with", "s3", "--s3-endpoint", moto,
                     "--s3-bucket", "no-such-bucket-here", "--no-host-cache"))
    assert run.code == 1
    assert "NoSuchBucket" in run.err and "'no-such-bucket-here'" in run.err
    assert "create the bucket" in run.err


@pytest.mark.slow
def test_batch_with_s3_publishes_a_shared_plate_once(cli, moto, bucket, clip, puts, tmp_path):
    shots = tmp_path / "shots"
    shots.mkdir()
    shutil.copyfile(clip.path, shots / "plate.mp4")
    x, y = clip.center(0)
    jobs = [{"name": f"sh{i}", "video": "plate.mp4", "edit_mode": "removal",
             "prompt": REMOVE_PROMPT, "select": [{"frame": 0, "points": [[x, y]]}]}
            for i in (10, 20)]
    manifest = shots / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(j) + "\n" for j in jobs))
    run = cli("batch", manifest, "--out", tmp_path / "out", "--host-with", "s3",
              "--s3-endpoint", moto, "--s3-bucket", bucket, "--json", "--quiet")
    assert run.code == 0, run.err
    report = json.loads(run.out)
    assert [j["status"] for j in report["jobs"]] == ["succeed", "succeed"]
    assert len(puts) == 1
    assert frame_count(tmp_path / "out" / "sh10.mp4") == 48


def test_batch_refuses_a_single_url_for_every_job(cli, tmp_path):
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("")
    run = cli("batch", manifest, "--out", tmp_path / "out", "--host-with", "url",
              "--host-url", "https://cdn.example.com/a.mp4")
    assert run.code == 1 and "put each clip's URL in the manifest" in run.err


@pytest.fixture
def web_root(tmp_path) -> Iterator[tuple[Path, str]]:
    """A folder served over HTTP on loopback: where the test's upload command copies to."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None  # type: ignore[method-assign]
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.mark.slow
def test_edit_with_a_command_uses_the_url_it_prints(cli, clip, web_root, tmp_path):
    root, base = web_root
    script = tmp_path / "upload.py"
    script.write_text(
        "import shutil, sys\n"
        f"shutil.copyfile(sys.argv[1], {str(root)!r} + '/' + sys.argv[2])\n"
        "print('copied', file=sys.stderr)\n"
        f"print({base!r} + '/' + sys.argv[2])\n")
    command = f"'{sys.executable}' '{script}' {{path}} {{name}}"
    run = cli(*_edit(clip, "out.mp4", "--host-with", "command", "--host-command", command))
    assert run.code == 0, run.err
    assert (root / "clip.mp4").read_bytes() == Path(clip.path).read_bytes()
    assert frame_count(tmp_path / "out.mp4") == 48
    # Remembered in the user cache folder by default; the command line is not in it.
    memory = (tmp_path / "user-cache" / "kling-elements" / "published-urls.json").read_text()
    assert f"{base}/clip.mp4" in memory and "upload.py" not in memory


def test_the_sandbox_choice_is_not_remembered_across_runs_by_default(cli, clip, tmp_path):
    run = cli(*_edit(clip, "out.mp4"))
    assert run.code == 0, run.err
    assert not (tmp_path / "user-cache").exists()


def test_edit_with_url_checks_the_local_clip_and_passes_the_url_through(cli, clip, web_root,
                                                                       tmp_path):
    root, base = web_root
    shutil.copyfile(clip.path, root / "online.mp4")
    run = cli(*_edit(clip, "out.mp4", "--host-with", "url", "--host-url",
                     f"{base}/online.mp4"))
    assert run.code == 0, run.err
    assert frame_count(tmp_path / "out.mp4") == 48
