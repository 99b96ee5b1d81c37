"""Paths: a result download writes only its destination (plus its own ``.part``/``.etag``
beside it), never through a planted symlink, never under a name the server chose, and never
over an existing file unless asked (``overwrite=True`` / ``--force``); job names that could
leave the output folder are refused.

The policy for existing files: refused before any request (``ValidationError``: the path and
the fix), except a file an interrupted ``run_edit`` wrote itself, which a rerun keeps.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
import pytest

import kling_elements as ke
from kling_elements import batch
from kling_elements.cli import main
from kling_elements.workflow import EditJob, run_edit

from ..support.sandbox import REMOVE_PROMPT, add_faults, pending_faults, upload
from .conftest import API, envelope

URL = "http://cdn.invalid/results/out.mp4"
BODY = b"result bytes " * 1000


def _serve(recorder, *, headers: dict | None = None) -> None:
    recorder.on("GET", "/results/out.mp4", lambda request: httpx.Response(
        200, content=BODY, headers={"content-length": str(len(BODY)), **(headers or {})}))


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


# ---------------------------------------------------------------- download targets

def test_an_existing_file_is_not_replaced_and_nothing_is_fetched(client, recorder, tmp_path):
    dest = tmp_path / "out.mp4"
    dest.write_bytes(b"the editor's own file")
    _serve(recorder)
    with pytest.raises(ke.ValidationError) as exc:
        client.download(URL, dest)
    assert str(dest) in str(exc.value) and "overwrite=True" in str(exc.value)
    assert dest.read_bytes() == b"the editor's own file"
    assert recorder.requests == [] and _tree(tmp_path) == ["out.mp4"]

    client.download(URL, dest, overwrite=True)
    assert dest.read_bytes() == BODY and _tree(tmp_path) == ["out.mp4"]


def test_a_folder_as_target_is_refused(client, recorder, tmp_path):
    with pytest.raises(ke.ValidationError, match="is a folder"):
        client.download(URL, tmp_path)
    assert recorder.requests == []


@pytest.mark.parametrize("which", [".part", ".part.etag"])
def test_a_planted_symlink_beside_the_target_is_never_written_through(client, recorder, tmp_path,
                                                                      which):
    outside = tmp_path / "outside" / "precious.txt"
    outside.parent.mkdir()
    outside.write_bytes(b"do not touch")
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / f"out.mp4{which}").symlink_to(outside)
    _serve(recorder, headers={"etag": '"v1"'})
    with pytest.raises(ke.ValidationError) as exc:
        client.download(URL, folder / "out.mp4")
    assert "symbolic link" in str(exc.value) and "remove it" in str(exc.value)
    assert outside.read_bytes() == b"do not touch"
    assert recorder.requests == [] and not (folder / "out.mp4").exists()


def test_a_symlinked_target_is_replaced_as_a_link_never_followed(client, recorder, tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"do not touch")
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "out.mp4").symlink_to(outside)
    _serve(recorder)
    with pytest.raises(ke.ValidationError, match="already exists"):
        client.download(URL, folder / "out.mp4")
    client.download(URL, folder / "out.mp4", overwrite=True)
    assert outside.read_bytes() == b"do not touch"
    assert not (folder / "out.mp4").is_symlink() and (folder / "out.mp4").read_bytes() == BODY


@pytest.mark.parametrize(
    "headers",
    [{"content-disposition": 'attachment; filename="../../evil.mp4"'},
     {"content-disposition": "attachment; filename*=UTF-8''..%2F..%2Fevil.mp4"},
     {"content-disposition": 'attachment; filename="/etc/evil"'}],
    ids=["dotdot-name", "encoded-dotdot-name", "absolute-name"],
)
def test_a_name_chosen_by_the_server_is_ignored(client, recorder, tmp_path, headers):
    folder = tmp_path / "a" / "b"
    recorder.on("GET", "/x/../../evil.mp4", lambda r: httpx.Response(200, content=BODY,
                                                                       headers=headers))
    recorder.on("GET", "/evil.mp4", lambda r: httpx.Response(200, content=BODY, headers=headers))
    client.download("http://cdn.invalid/x/../../evil.mp4", folder / "result.mp4")
    assert _tree(tmp_path) == ["a", "a/b", "a/b/result.mp4"]


@pytest.mark.parametrize("location", ["file:///etc/passwd", "ftp://cdn.invalid/out.mp4"],
                         ids=["redirect-to-file", "redirect-to-ftp"])
def test_a_redirect_to_a_non_http_url_is_refused_and_writes_nothing(client, recorder, tmp_path,
                                                                    location):
    recorder.on("GET", "/results/out.mp4",
                lambda r: httpx.Response(302, headers={"location": location}))
    with pytest.raises(ke.ValidationError, match="cannot be used"):
        client.download(URL, tmp_path / "out.mp4")
    assert _tree(tmp_path) == []


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://cdn.invalid/x.mp4",
                                 "/tmp/x.mp4", "javascript:alert(1)", ""],
                         ids=["file-url", "ftp-url", "a-path", "javascript-url", "empty"])
def test_only_http_urls_are_downloaded(client, recorder, tmp_path, url):
    with pytest.raises(ke.ValidationError) as exc:
        client.download(url, tmp_path / "out.mp4")
    assert "not an http(s) URL" in str(exc.value)
    assert recorder.requests == [] and _tree(tmp_path) == []


def test_a_file_appearing_during_the_download_is_not_replaced(client, recorder, tmp_path):
    dest = tmp_path / "out.mp4"
    _serve(recorder)

    def someone_else_writes(done: int, total: int | None) -> None:
        if not dest.exists():
            dest.write_bytes(b"written meanwhile")

    with pytest.raises(ke.ValidationError) as exc:
        client.download(URL, dest, on_progress=someone_else_writes)
    assert "appeared while downloading" in str(exc.value) and "--force" in str(exc.value)
    assert dest.read_bytes() == b"written meanwhile"
    assert (tmp_path / "out.mp4.part").read_bytes() == BODY  # kept, complete

    client.download(URL, dest, overwrite=True)
    assert dest.read_bytes() == BODY and _tree(tmp_path) == ["out.mp4"]


# ---------------------------------------------------------------- the CLI and run_edit

@pytest.fixture
def cli_env(sandbox, monkeypatch, tmp_path):
    monkeypatch.setenv("KLINGAI_BASE_URL", sandbox.base_url)
    monkeypatch.setenv("KLINGAI_API_KEY", sandbox.api_key)
    monkeypatch.chdir(tmp_path)


def test_cli_download_refuses_an_existing_output_unless_forced(cli_env, admin, tmp_path,
                                                               capsys):
    source = tmp_path / "blob.bin"
    source.write_bytes(BODY)
    url = upload(admin, source)
    (tmp_path / "mine.mp4").write_bytes(b"keep me")
    wires = add_faults(admin, {"route": "files", "times": 1, "error": {"http": 500,
                                                                       "code": 5000}})
    assert main(["download", url, "mine.mp4"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: download target mine.mp4 already exists") and "--force" in err
    assert pending_faults(admin) == wires, "no request reached the server"
    assert (tmp_path / "mine.mp4").read_bytes() == b"keep me"
    admin.delete("/sandbox/faults")

    assert main(["download", url, "mine.mp4", "--force"]) == 0
    assert (tmp_path / "mine.mp4").read_bytes() == BODY


def test_cli_edit_refuses_an_existing_output_before_publishing(cli_env, sandbox, admin,
                                                               valid_clip, tmp_path, capsys):
    (tmp_path / "out.mp4").write_bytes(b"last week's result")
    uploads = sandbox.data_dir / "uploads"
    before = _tree(uploads) if uploads.exists() else []
    sessions = len(sandbox.state.sessions)
    code = main(["edit", str(valid_clip), "--point", "0:0.5,0.5", "--edit", "removal",
                 "--prompt", REMOVE_PROMPT, "-o", "out.mp4", "--quiet"])
    err = capsys.readouterr().err
    assert code == 1 and "output out.mp4 already exists" in err and "--force" in err
    assert (tmp_path / "out.mp4").read_bytes() == b"last week's result"
    assert (_tree(uploads) if uploads.exists() else []) == before
    assert len(sandbox.state.sessions) == sessions
    assert not (tmp_path / "out.mp4.kling.json").exists()


def _job(tmp_path: Path, **kw) -> EditJob:
    return EditJob(output=str(tmp_path / "out.mp4"), edit_mode="removal", prompt=REMOVE_PROMPT,
                   video_id="v0", selections=((0, ((0.5, 0.5),)),), **kw)


def test_a_rerun_keeps_the_result_its_own_interrupted_run_wrote(client, recorder, tmp_path):
    """Killed after the rename but before the state said "done": the file is the job's."""
    job = _job(tmp_path)
    state = tmp_path / "out.mp4.kling.json"
    state.write_text(json.dumps({"job": job.key(), "external_task_id": "ke-1",
                                 "task_id": "t1", "downloading": True}))
    (tmp_path / "out.mp4").write_bytes(BODY)
    recorder.on("GET", f"{API}/ke-1", envelope({
        "task_id": "t1", "task_status": "succeed", "task_info": {"external_task_id": "ke-1"},
        "task_result": {"videos": [{"id": "v1", "url": URL, "duration": "2.0"}]}}))
    result = run_edit(client, job, state_path=state)
    assert result.output == tmp_path / "out.mp4" and (tmp_path / "out.mp4").read_bytes() == BODY
    assert [r.url.path for r in recorder.requests] == [f"{API}/ke-1"], "no file fetched again"
    assert json.loads(state.read_text())["done"] is True


def test_run_edit_refuses_a_watermarked_copy_that_exists(client, recorder, tmp_path):
    (tmp_path / "out.watermarked.mp4").write_bytes(b"old")
    with pytest.raises(ke.ValidationError, match=r"out\.watermarked\.mp4 already exists"):
        run_edit(client, _job(tmp_path, watermark=True), state_path=tmp_path / "s.json")
    assert recorder.requests == [] and _tree(tmp_path) == ["out.watermarked.mp4"]


# ---------------------------------------------------------------- job names

@pytest.mark.parametrize(
    "name",
    ["../escape", "..", "a/../../b", "/etc/cron.d/x", "sub/dir", "back\\slash", ".hidden",
     "-leading-dash", "name with space", "nul\x00byte", "x" * 121, ""],
    ids=["dotdot-prefix", "dotdot", "dotdot-inside", "absolute", "slash", "backslash",
         "leading-dot", "leading-dash", "space", "nul", "121-chars", "empty"],
)
def test_a_batch_job_name_that_could_leave_the_output_folder_is_refused(name, tmp_path):
    manifest = tmp_path / "jobs.jsonl"
    manifest.write_text(json.dumps({
        "name": name, "video": "http://127.0.0.1:9/c.mp4", "edit_mode": "removal",
        "prompt": REMOVE_PROMPT, "select": [{"frame": 0, "points": [[0.5, 0.5]]}]}) + "\n")
    loaded = batch.load(manifest)
    assert loaded.jobs == []
    (problem,) = loaded.problems
    assert "letters, digits, '_' or '-'" in str(problem) and "names the output files" in str(
        problem)
    assert os.listdir(tmp_path) == ["jobs.jsonl"]
