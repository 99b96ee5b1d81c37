"""The published-URL memory: per content and provider, on disk, only while a URL is fresh."""

from __future__ import annotations

import json
import os
import stat
import threading
from pathlib import Path

import pytest

from kling_elements.hosting import CachingHost, default_cache_dir, url_usable
from kling_elements.hosting.cache import MIN_URL_LIFE_LEFT_S
from kling_elements.sigv4 import Credentials, presign_url

CREDS = Credentials("AKIACACHETEST0000000", "cache-secret")
T0 = 1_800_000_000.0


class Presigning:
    """A provider that hands out presigned URLs valid for ``lifetime`` from the clock."""

    identity = "presigning test"

    def __init__(self, clock: list[float], lifetime: int = 3600) -> None:
        self.clock = clock
        self.lifetime = lifetime
        self.calls = 0
        self.cleaned: list[str] = []
        self.lock = threading.Lock()

    def publish(self, path, on_progress=None) -> str:
        with self.lock:
            self.calls += 1
            n = self.calls
        return presign_url("GET", f"http://127.0.0.1:9000/b/{n}/{Path(path).name}", CREDS,
                           "us-east-1", expires_s=self.lifetime, now=self.clock[0])

    def cleanup(self, url_or_key: str) -> None:
        self.cleaned.append(url_or_key)


@pytest.fixture
def clip(tmp_path) -> Path:
    path = tmp_path / "clip.mp4"
    path.write_bytes(b"plate")
    return path


def test_a_presigned_url_is_reused_only_while_it_has_more_than_the_margin_left(tmp_path, clip):
    now = [T0]
    inner = Presigning(now)
    host = CachingHost(inner, tmp_path / "urls.json", clock=lambda: now[0])
    first = host.publish(clip)
    now[0] = T0 + 3600 - MIN_URL_LIFE_LEFT_S - 1
    assert host.publish(clip) == first and inner.calls == 1
    now[0] += 2  # now less than the margin is left: Kling might not finish fetching
    second = host.publish(clip)
    assert second != first and inner.calls == 2
    assert host.publish(clip) == second


def test_the_memory_survives_the_process_and_is_written_privately(tmp_path, clip):
    now = [T0]
    path = tmp_path / "cache" / "urls.json"
    first = CachingHost(Presigning(now), path, clock=lambda: now[0]).publish(clip)
    inner = Presigning(now)
    assert CachingHost(inner, path, clock=lambda: now[0]).publish(clip) == first
    assert inner.calls == 0
    if os.name == "posix":
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["urls.json"]  # no temporary left
    data = json.loads(path.read_text())
    (key,) = data["entries"]
    assert key.startswith("presigning test|") and "cache-secret" not in path.read_text()


def test_a_damaged_memory_file_counts_as_empty_and_is_replaced(tmp_path, clip):
    path = tmp_path / "urls.json"
    path.write_text('{"version": 1, "entries": {"x": ')
    now = [T0]
    inner = Presigning(now)
    CachingHost(inner, path, clock=lambda: now[0]).publish(clip)
    assert inner.calls == 1 and len(json.loads(path.read_text())["entries"]) == 1


def test_concurrent_publishes_of_one_clip_upload_once(tmp_path, clip):
    now = [T0]
    inner = Presigning(now)
    host = CachingHost(inner, tmp_path / "urls.json", clock=lambda: now[0])
    urls: list[str] = []
    threads = [threading.Thread(target=lambda: urls.append(host.publish(clip)))
               for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert inner.calls == 1 and len(set(urls)) == 1


def test_cleanup_deletes_and_forgets(tmp_path, clip):
    now = [T0]
    inner = Presigning(now)
    host = CachingHost(inner, tmp_path / "urls.json", clock=lambda: now[0])
    url = host.publish(clip)
    host.cleanup(url)
    assert inner.cleaned == [url]
    assert host.publish(clip) != url and inner.calls == 2


def test_url_usable_only_judges_urls_that_say_when_they_expire():
    url = presign_url("GET", "http://127.0.0.1:9000/b/k", CREDS, "us-east-1", expires_s=900,
                      now=T0)
    assert url_usable(url, now=T0 + 299) and not url_usable(url, now=T0 + 301)
    assert url_usable("https://cdn.example.com/clip.mp4", now=T0 + 10**9)


def test_default_cache_dir_follows_the_platform(monkeypatch, tmp_path):
    monkeypatch.setattr("sys.platform", "linux")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "kling-elements"
    monkeypatch.setattr("sys.platform", "win32")
    monkeypatch.setenv("LOCALAPPDATA", str(tmp_path / "local"))
    assert default_cache_dir() == tmp_path / "local" / "kling-elements"


def test_a_process_does_not_upload_again_when_another_overwrites_the_file(tmp_path):
    """Two processes sharing the cache file each write what they read plus their own entry;
    the entry one of them loses in the file is still known to the process that made it."""

    class Counting:
        identity = "counting"

        def __init__(self) -> None:
            self.calls = 0

        def publish(self, path, on_progress=None):
            self.calls += 1
            return f"https://store.example/{Path(path).name}?n={self.calls}"

    a_clip, b_clip = tmp_path / "a.mp4", tmp_path / "b.mp4"
    a_clip.write_bytes(b"a" * 100)
    b_clip.write_bytes(b"b" * 100)
    state = tmp_path / "uploads.json"
    inner_a, inner_b = Counting(), Counting()
    first, second = CachingHost(inner_a, state), CachingHost(inner_b, state)
    url = first.publish(a_clip)
    state.write_text('{"version": 1, "entries": {}}')  # the other process's write won the race
    second.publish(b_clip)
    assert first.publish(a_clip) == url
    assert inner_a.calls == 1
