"""The batch's parts without a server: manifest validation, sharding, the AIMD limiter and
the upload cache."""

from __future__ import annotations

import io
import json
import threading
import time
from pathlib import Path

import pytest

from kling_elements import batch
from kling_elements.batch.display import BatchDisplay
from kling_elements.batch.manifest import in_shard, load, parse_shard
from kling_elements.errors import ValidationError
from kling_elements.hosting import CachingHost, SandboxHost
from kling_elements.sandbox.sample import make_reference_image
from kling_elements.workflow import EditHooks, EditJob, run_edit

from ..support.batch import REMOVE, job
from ..support.sandbox import add_faults, created


def _write(path: Path, lines: list[object]) -> Path:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


def test_every_violation_of_every_line_is_listed_with_its_line(shots, plates):
    plate, clip = sorted(plates.items())[0]
    make_reference_image(shots / "star.png")
    manifest = _write(shots / "m.jsonl", [
        job("sh010", plate, clip),                                        # 1 valid
        "",                                                               # 2 blank: skipped
        {**job("sh010", "missing.mp4", clip), "promt": "x", "mode": "fast",
         "select": [{"frame": 0, "points": [[1.5, 0.2]]}]},               # 3
        "{not json",                                                      # 4
        {**job("sh040", plate, clip), "edit_mode": "swap", "images": []},  # 5
        {**job("sh/050", plate, clip), "duration": "10"},                  # 6
        {**job("sh060", plate, clip), "edit_mode": "addition", "images": ["star.png"],
         "prompt": "add <<<image_2>>> to <<<video_1>>>"},                 # 7
        {**job("sh070", plate, clip), "select": []},                      # 8 removal, no clicks
        {**job("sh080", plate, clip), "edit_mode": "swap", "images": ["star.png"],
         "prompt": "swap the star from <<<image_1>>> for the ball in <<<video_1>>>"},  # 9 ok
    ])
    parsed = load(manifest)
    assert [j.name for j in parsed.jobs] == ["sh010", "sh080"]
    assert parsed.jobs[0].spec.video_path == str((shots / "plates" / plate).resolve())
    assert parsed.jobs[1].spec.images == (str((shots / "star.png").resolve()),)
    by_line: dict[int, list[str]] = {}
    for problem in parsed.problems:
        by_line.setdefault(problem.line, []).append(problem.message)
    assert sorted(by_line) == [3, 4, 5, 6, 7, 8]
    text = " | ".join(by_line[3])
    for expected in ("'promt'", "missing.mp4", "x=1.5", "mode 'fast'", "already used on line 1"):
        assert expected in text
    assert "not valid JSON" in by_line[4][0]
    assert any("swap takes exactly 1 image" in m for m in by_line[5])
    assert any("name 'sh/050'" in m for m in by_line[6])
    assert any("duration '10' does not match" in m for m in by_line[6])
    assert any("<<<image_2>>>" in m for m in by_line[7])
    assert any("removal needs a selection" in m for m in by_line[8])
    with pytest.raises(batch.ManifestError) as caught:
        parsed.raise_for_problems()
    assert all(f"line {n}" in str(caught.value) for n in by_line)


def test_a_local_clip_without_a_hosting_choice_is_a_violation(shots, plates):
    plate, clip = sorted(plates.items())[0]
    manifest = _write(shots / "m.jsonl", [job("sh010", plate, clip)])
    problems = load(manifest, local_ok=False).problems
    assert len(problems) == 1 and "no hosting choice" in problems[0].message


def test_shards_cover_every_job_exactly_once_and_stay_put_when_jobs_are_added():
    names = [f"sh{i:04d}_boom" for i in range(300)]
    owners = {n: [i for i in (1, 2, 3) if in_shard(n, (i, 3))] for n in names}
    assert all(len(found) == 1 for found in owners.values())
    assert all(60 <= sum(o == [i] for o in owners.values()) <= 140 for i in (1, 2, 3))
    more = {n: [i for i in (1, 2, 3) if in_shard(n, (i, 3))] for n in [*names, "new1", "new2"]}
    assert all(more[n] == owners[n] for n in names)
    assert in_shard(None, (1, 3)) and not in_shard(None, (2, 3))


@pytest.mark.parametrize("text", ["0/3", "4/3", "1", "a/b", "-1/2", ""])
def test_a_bad_shard_is_refused_with_the_form_to_use(text):
    with pytest.raises(ValidationError, match="I/N"):
        parse_shard(text)
    assert parse_shard(" 2/3 ") == (2, 3)


def test_limiter_halves_on_pressure_once_per_burst_and_grows_back_one_by_one():
    now = [0.0]
    limiter = batch.Limiter(8, increase_after=2, cooldown_s=1.0, clock=lambda: now[0])
    assert limiter.pressure() == 4
    assert limiter.pressure() is None  # the same burst
    now[0] = 1.5
    assert limiter.pressure() == 2
    now[0] = 3.0
    assert limiter.pressure() == 1
    now[0] = 4.5
    assert limiter.pressure() is None  # never below 1
    assert [limiter.succeeded() for _ in range(4)] == [None, 2, None, 3]
    limiter.limit = 8
    assert [limiter.succeeded() for _ in range(3)] == [None, None, None]  # capped


def test_limiter_blocks_at_the_limit_and_a_forced_slot_is_counted():
    limiter = batch.Limiter(2)
    limiter.acquire()
    limiter.acquire(force=False)
    limiter.acquire(force=True)  # a task found running on resume
    assert limiter.in_use == 3
    taken = threading.Event()
    thread = threading.Thread(target=lambda: (limiter.acquire(), taken.set()))
    thread.start()
    limiter.release()
    assert not taken.wait(0.2)  # 2 held, limit 2
    limiter.release()
    assert taken.wait(2)
    thread.join()


class _CountingHost:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.lock = threading.Lock()

    def publish(self, path, on_progress=None) -> str:
        time.sleep(0.05)
        with self.lock:
            self.calls.append(Path(path).name)
            return f"https://host.example/{len(self.calls)}/{Path(path).name}"


def test_caching_host_publishes_each_content_once_across_processes_until_expiry(tmp_path):
    a, b, c = tmp_path / "a.mp4", tmp_path / "b.mp4", tmp_path / "c.mp4"
    a.write_bytes(b"plate one")
    b.write_bytes(b"plate one")  # a copy under another name
    c.write_bytes(b"plate two")
    cache = tmp_path / "state" / "uploads.json"
    now = [1000.0]
    inner = _CountingHost()
    host = CachingHost(inner, cache, ttl_s=60, provider="p", clock=lambda: now[0])
    urls = []
    threads = [threading.Thread(target=lambda: urls.append(host.publish(a))) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(urls)) == 1 and inner.calls == ["a.mp4"]
    assert host.publish(b) == urls[0]
    assert host.publish(c) != urls[0]
    later = CachingHost(inner, cache, ttl_s=60, provider="p", clock=lambda: now[0])
    assert later.publish(a) == urls[0] and len(inner.calls) == 2  # read from the file
    other = CachingHost(inner, cache, ttl_s=60, provider="q", clock=lambda: now[0])
    assert other.publish(a) != urls[0]  # another provider's URL is not reused
    now[0] += 61
    assert later.publish(a) != urls[0]  # expired
    assert len(inner.calls) == 4
    assert json.loads(cache.read_text())["version"] == 1


def test_an_edited_file_is_published_again(tmp_path):
    clip = tmp_path / "a.mp4"
    clip.write_bytes(b"take 1")
    inner = _CountingHost()
    host = CachingHost(inner, tmp_path / "uploads.json")
    first = host.publish(clip)
    clip.write_bytes(b"take 2, longer")
    assert host.publish(clip) != first and len(inner.calls) == 2


def _feed(display: BatchDisplay) -> None:
    display(None, "begin", {"jobs": 2, "invalid": 0, "concurrency": 3, "report": "r.json"})
    display("sh010", "start", {})
    display("sh010", "upload_progress", {"done": 50, "total": 200})
    display("sh010", "created", {"task_id": "t1", "external_task_id": "e1"})
    display(None, "limit", {"limit": 1, "reason": "1303"})
    display("sh010", "download_progress", {"done": 30, "total": 40})


def test_plain_display_writes_one_line_per_step_that_matters_and_no_escapes():
    stream = io.StringIO()
    with BatchDisplay(stream, live=False) as display:
        _feed(display)
        display("sh010", "succeed", {"seconds": 2.5, "output": "out/sh010.mp4"})
        display("sh020", "failed", {"error": "task failed: policy"})
    lines = stream.getvalue().splitlines()
    assert lines == ["sh010: task t1 created", "batch: concurrency limit now 1 (1303)",
                     "sh010: succeeded in 2.5 s -> out/sh010.mp4",
                     "sh020: failed: task failed: policy"]


class _Frames(io.StringIO):
    """A terminal stand-in that lets a test wait for the display's next redraws."""

    def __init__(self) -> None:
        super().__init__()
        self._written = threading.Condition()
        self._count = 0

    def write(self, text: str) -> int:
        with self._written:
            self._count += 1
            self._written.notify_all()
        return super().write(text)

    def after_next(self, redraws: int = 2, timeout: float = 30.0) -> str:
        """The screen after ``redraws`` more redraws: the second one began after this call,
        so it shows every event fed before it."""
        with self._written:
            target = self._count + redraws
            assert self._written.wait_for(lambda: self._count >= target, timeout)
        return self.getvalue().rsplit("\033[J", 1)[-1]


def test_live_display_redraws_running_jobs_with_percentages_and_a_total():
    stream = _Frames()
    with BatchDisplay(stream, live=True, refresh_s=0.02) as display:
        _feed(display)
        frame = stream.after_next()
        assert "sh010  downloading  75%" in frame
        assert "0/2 done" in frame and "1 active" in frame and "limit 1" in frame
        display("sh010", "succeed", {"seconds": 2.5, "output": "out/sh010.mp4"})
        frame = stream.after_next()
    assert "sh010" not in frame and "1/2 done (1 ok" in frame
    assert "sh010: succeeded in 2.5 s" in stream.getvalue()


class _Refused(Exception):
    pass


class _Recorded(EditHooks):
    """Hooks that note every call; ``refuse`` makes the create refused before it is sent."""

    def __init__(self, refuse: bool = False) -> None:
        self.calls: list[tuple] = []
        self.refuse = refuse

    def before_create(self, body: dict) -> None:
        self.calls.append(("before_create", body["external_task_id"]))
        if self.refuse:
            raise _Refused("held for the test")

    def created(self, task) -> None:
        self.calls.append(("created", task.external_task_id))

    def resumed(self, task) -> None:
        self.calls.append(("resumed", task.status))

    def poll_interval(self) -> float:
        self.calls.append(("poll_interval",))
        return 0.05

    def waited(self, task) -> None:
        self.calls.append(("waited", task.status if task else None))


def _edit(plates, out: Path) -> EditJob:
    clip = plates["plate0.mp4"]
    return EditJob(output=str(out), edit_mode="removal", prompt=REMOVE,
                   video_path=str(clip.path), selections=((0, (clip.center(0),)),))


def test_run_edit_calls_its_hooks_around_the_create_and_the_wait(client, admin, plates,
                                                                 tmp_path):
    hooks, state = _Recorded(), tmp_path / "edit.json"
    result = run_edit(client, _edit(plates, tmp_path / "out.mp4"), host=SandboxHost(client.http),
                      state_path=state, hooks=hooks)
    ext = result.task.external_task_id
    assert hooks.calls == [("before_create", ext), ("created", ext), ("poll_interval",),
                           ("waited", "succeed")]
    assert created(admin)[ext] == 1
    again = _Recorded()
    run_edit(client, _edit(plates, tmp_path / "out.mp4"), state_path=state, hooks=again)
    assert again.calls == [("resumed", "succeed")]  # done: no create, no wait
    assert created(admin)[ext] == 1


def test_a_create_refused_by_a_hook_sends_no_task(client, admin, plates, tmp_path):
    hooks, state = _Recorded(refuse=True), tmp_path / "edit.json"
    with pytest.raises(_Refused):
        run_edit(client, _edit(plates, tmp_path / "out.mp4"), host=SandboxHost(client.http),
                 state_path=state, hooks=hooks)
    ((kind, ext),) = hooks.calls
    assert kind == "before_create" and ext not in created(admin)
    assert json.loads(state.read_text())["external_task_id"] == ext  # kept for the next run


class _Retries(EditHooks):
    def __init__(self) -> None:
        self.heard: list[int | None] = []

    def retried(self, error, wait: float) -> None:
        self.heard.append(getattr(error, "code", None))


BUSY = {"http": 429, "code": 1303, "message": "all slots taken"}


def test_an_edits_hooks_hear_its_own_retries_and_the_clients_hook_is_left_alone(
        client, admin, plates, tmp_path):
    told: list[int] = []
    hook = lambda error, wait: told.append(error.code)  # noqa: E731
    client.on_retry = hook
    try:
        add_faults(admin, {"route": "create", "times": 1, "error": BUSY})
        hooks = _Retries()
        run_edit(client, _edit(plates, tmp_path / "out.mp4"), host=SandboxHost(client.http),
                 state_path=tmp_path / "edit.json", hooks=hooks)
        assert hooks.heard == [1303] and told == [1303]
        assert client.on_retry is hook
    finally:
        client.on_retry = None


def test_retries_are_heard_only_by_the_thread_that_made_them(client, admin):
    """One client shared by two edits' threads: each hears its own retries, never the
    other's (the batch's jobs share one client)."""
    from kling_elements.retry import observe_retries

    heard: dict[str, list] = {"quiet": [], "busy": []}
    inside = threading.Barrier(2)

    def run(name: str, faulty: bool) -> None:
        with observe_retries(lambda error, wait: heard[name].append(error.code)):
            inside.wait(10)  # both threads observe at once
            if faulty:
                add_faults(admin, {"route": "list", "times": 1, "error": BUSY})
                client.list_tasks(page_size=1)
            inside.wait(10)

    threads = [threading.Thread(target=run, args=("quiet", False)),
               threading.Thread(target=run, args=("busy", True))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert heard == {"quiet": [], "busy": [1303]}
