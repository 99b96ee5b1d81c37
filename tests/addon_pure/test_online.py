"""The online gate: which hosts count as local, and when a request may leave."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from blender_addon.work.online import MESSAGE, OnlineAccessRefused, OnlineGate


class Resolver:
    """A fake DNS: host -> addresses (missing = the lookup fails); counts lookups."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.lookups: list[str] = []
        self.threads: set[str] = set()

    def __call__(self, host: str) -> list[str]:
        self.lookups.append(host)
        self.threads.add(threading.current_thread().name)
        return list(self.table.get(host, []))


DNS = {
    "localhost": ["127.0.0.1", "::1"],
    "127.example.test": ["203.0.113.9"],
    "split.example.test": ["127.0.0.1", "198.51.100.4"],
    "mapped.example.test": ["::ffff:127.0.0.1"],
    "api-singapore.klingai.com": ["8.8.4.4"],
}


@pytest.fixture
def gate() -> OnlineGate:
    return OnlineGate(resolve=Resolver(DNS))


@pytest.mark.parametrize(("host", "local"), [
    ("127.0.0.1", True),
    ("127.4.5.6", True),
    ("::1", True),
    ("[::1]", True),
    ("localhost", True),
    ("mapped.example.test", True),
    ("127.example.test", False),   # reads like loopback, resolves elsewhere
    ("10.0.0.1", False),           # a private address is still another machine
    ("split.example.test", False),  # one remote address is enough to be remote
    ("nowhere.example.test", False),  # a failed lookup is not local
    ("api-singapore.klingai.com", False),
])
def test_local_means_every_resolved_address_is_loopback(gate, host, local):
    assert gate.is_local(host) is local


def test_ip_literals_are_decided_without_a_lookup(gate):
    for host in ("127.0.0.1", "::1", "10.0.0.1", "203.0.113.9"):
        gate.is_local(host)
        assert gate.cached_local(host) is not None
    assert gate.resolve.lookups == []


def test_offline_refuses_remote_hosts_and_lets_loopback_through(gate):
    gate.set_online(False)
    for url in ("http://127.0.0.1:8765/v1", "http://[::1]:9/x", "http://localhost:8765/v1"):
        gate.check_url(url)
    for url in ("http://127.example.test:8765/v1", "http://10.0.0.1/v1",
                "https://api-singapore.klingai.com/v1", "http://split.example.test/",
                "not a url", ""):
        with pytest.raises(OnlineAccessRefused, match="Allow Online Access") as refused:
            gate.check_url(url)
        assert str(refused.value) == MESSAGE


def test_online_allows_everything_without_resolving(gate):
    gate.set_online(True)
    gate.check_url("https://api-singapore.klingai.com/v1")
    gate.check_url("http://127.example.test/")
    assert gate.resolve.lookups == []


def test_the_flag_is_read_at_each_request():
    gate = OnlineGate(resolve=Resolver(DNS))
    sent: list[str] = []
    transport = httpx.MockTransport(lambda r: sent.append(str(r.url)) or httpx.Response(200))
    with httpx.Client(transport=transport, event_hooks={"request": [gate.check_request]}) as http:
        gate.set_online(True)
        http.get("https://api-singapore.klingai.com/v1/a")
        gate.set_online(False)
        with pytest.raises(OnlineAccessRefused):
            http.get("https://api-singapore.klingai.com/v1/b")
        http.get("http://localhost:8765/v1/c")
    assert sent == ["https://api-singapore.klingai.com/v1/a", "http://localhost:8765/v1/c"]


def test_resolutions_are_cached_briefly():
    now = [0.0]
    resolver = Resolver(dict(DNS))
    gate = OnlineGate(resolve=resolver, ttl_s=30.0, clock=lambda: now[0])
    assert gate.is_local("localhost")
    assert gate.is_local("localhost")
    assert resolver.lookups == ["localhost"]
    resolver.table["localhost"] = ["192.0.2.1"]  # the hosts file changed
    now[0] = 31.0
    assert not gate.is_local("localhost")
    assert resolver.lookups == ["localhost", "localhost"]


def test_the_cached_answer_never_resolves_on_the_calling_thread(gate):
    gate.set_online(False)
    assert gate.refusal_cached("http://127.0.0.1:8765") == ""
    assert gate.refusal_cached("http://10.0.0.1") == MESSAGE
    # A name not resolved yet: refused for now, resolved on another thread for next time.
    assert gate.refusal_cached("http://localhost:8765") == MESSAGE
    deadline = time.monotonic() + 5
    while gate.cached_local("localhost") is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert gate.refusal_cached("http://localhost:8765") == ""
    assert threading.current_thread().name not in gate.resolve.threads
    assert gate.refusal_cached("http://127.example.test") == MESSAGE
    gate.set_online(True)
    assert gate.refusal_cached("http://127.example.test") == ""


def test_a_new_gate_refuses_remote_hosts_until_told_online():
    gate = OnlineGate(resolve=Resolver(DNS))
    with pytest.raises(OnlineAccessRefused):
        gate.check_url("https://api-singapore.klingai.com/v1")


def test_nothing_is_published_while_kling_is_refused(tmp_path, monkeypatch):
    """An upload command is the user's own program (the gate cannot see its connections):
    it does not even start while a request to Kling would be refused."""
    import sys

    from blender_addon.pure.settings import ClientSettings
    from blender_addon.work import session_calls as jobs
    from blender_addon.work.online import GATE
    from kling_elements.hosting import HostingSettings

    monkeypatch.setattr(GATE, "resolve", Resolver({"kling.example.test": ["203.0.113.7"]}))
    monkeypatch.setattr(GATE, "online", False)
    monkeypatch.setattr(GATE, "_known", {})
    marker = tmp_path / "command-ran"
    script = "import pathlib, sys; pathlib.Path(sys.argv[1]).touch(); print('https://x/c.mp4')"
    hosting = HostingSettings(kind="command", command=f'"{sys.executable}" -c "{script}" '
                                                      f'"{marker}"')
    settings = ClientSettings("https://kling.example.test", api_key="key")
    with pytest.raises(OnlineAccessRefused):
        jobs.start_session(settings, str(tmp_path / "clip.mp4"), hosting=hosting)
    assert not marker.exists()
    assert GATE.resolve.lookups == ["kling.example.test"]


@pytest.mark.parametrize(("environ", "url", "proxy"), [
    ({}, "http://127.0.0.1:8000/v1", ""),
    ({"HTTP_PROXY": "http://proxy.test:3128"}, "http://127.0.0.1:8000/v1",
     "http://proxy.test:3128"),
    ({"https_proxy": "http://p.test:1"}, "http://127.0.0.1:8000/v1", ""),  # other scheme
    ({"ALL_PROXY": "socks5://p.test:1"}, "https://a.test/v1", "socks5://p.test:1"),
    ({"HTTP_PROXY": "http://p.test:1", "NO_PROXY": "127.0.0.1,localhost"},
     "http://127.0.0.1:8000/v1", ""),
    ({"HTTP_PROXY": "http://p.test:1", "no_proxy": "*"}, "http://a.test/v1", ""),
])
def test_the_proxy_a_request_takes_is_the_environments(environ, url, proxy):
    from blender_addon.work.online import proxy_for

    assert proxy_for(url, environ) == proxy


def test_offline_a_loopback_url_through_a_remote_proxy_is_refused(monkeypatch):
    """A local sandbox reached through a proxy from the environment leaves the computer: the
    proxy's host decides. The proxy here is a socket on this computer that the gate's DNS
    calls remote, so a leak would show as a connection to it."""
    import socket

    from kling_elements import Client

    proxy = socket.socket()
    proxy.bind(("127.0.0.1", 0))
    proxy.listen(4)
    proxy.settimeout(0.3)
    port = proxy.getsockname()[1]
    gate = OnlineGate(resolve=Resolver({"localhost": ["203.0.113.7"]}))
    monkeypatch.setenv("HTTP_PROXY", f"http://localhost:{port}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    client = Client("ak", "s" * 32, base_url="http://127.0.0.1:9",
                    before_request=gate.check_request,
                    max_retries=0)
    try:
        with pytest.raises(OnlineAccessRefused):
            client.list_tasks(page=1, page_size=1)
        assert gate.refusal_cached("http://127.0.0.1:9") == MESSAGE
        with pytest.raises(TimeoutError):
            proxy.accept()  # nothing connected to the proxy
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        assert gate.refusal_cached("http://127.0.0.1:9") == ""
        gate.check_url("http://127.0.0.1:9/v1")
    finally:
        client.close()
        proxy.close()
