"""Blender's "Allow Online Access", applied to every request the add-on sends.

One gate decides, per URL, whether a request may leave: always when online access is on;
otherwise only when the host resolves to loopback addresses and nothing else (a sandbox on
this computer). The decision is made from resolved addresses, never from how a host name
reads: ``127.example.test`` is whatever it resolves to.

Who does what:

* The main thread copies Blender's switch into ``GATE.online`` (every tick of the worker
  timer and before every operator that sends), because only it may read ``bpy``.
* Every HTTP client of the add-on calls ``GATE.check_request`` before each request (an
  httpx request hook: API calls, uploads, downloads and every redirect hop). It reads the
  flag at that moment, so turning online access off stops a session mid-way: the next
  request is refused with :class:`OnlineAccessRefused` and nothing is sent.
* A request goes where it is addressed unless a proxy from the environment (``HTTP_PROXY``,
  ``HTTPS_PROXY``, ``ALL_PROXY``, not bypassed by ``NO_PROXY``: what httpx reads) carries
  it; then the proxy is where it leaves to, and the proxy's host is what must be loopback.
* Name resolution happens only there, on a worker thread. ``refusal_cached`` (for
  ``poll()`` and the main thread) never resolves: it answers from IP literals and recent
  resolutions, treats a host it has not resolved yet as not local, and starts a background
  lookup so the next redraw knows.

No ``bpy`` here, so the decisions are tested with plain pytest.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import socket
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

__all__ = ["GATE", "MESSAGE", "OnlineAccessRefused", "OnlineGate", "proxy_for",
           "system_resolve"]

MESSAGE = ("Online access is disabled: enable Preferences > System > Network > "
           "Allow Online Access, or use a local sandbox")

Resolver = Callable[[str], list[str]]


class OnlineAccessRefused(Exception):
    """A request was refused before anything was sent (online access is off).

    Deliberately not an ``httpx`` error nor a ``KlingError``: nothing may retry it.
    """

    def __init__(self, host: str = "") -> None:
        super().__init__(MESSAGE)
        self.host = host


def system_resolve(host: str) -> list[str]:
    """Every address ``host`` resolves to (empty when the lookup fails)."""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return []
    return [str(info[4][0]) for info in infos]


def _is_loopback(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


@functools.lru_cache(maxsize=64)
def _literal(host: str) -> bool | None:
    """For an IP literal: whether it is loopback; None for a name (cached: ``poll()`` of
    every operator button asks on every redraw)."""
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None
    return _is_loopback(host)


@functools.lru_cache(maxsize=64)
def host_of(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


def proxy_for(url: str, environ: Mapping[str, str] | None = None) -> str:
    """The proxy URL the environment routes a request to ``url`` through, or "".

    The variables httpx honours (``trust_env``, its default): ``<scheme>_PROXY`` then
    ``ALL_PROXY``, either case, unless ``NO_PROXY`` names the host (or is ``*``).
    """
    variables = os.environ if environ is None else environ
    proxies: dict[str, str] = {}
    for name, value in variables.items():
        lowered = name.lower()
        if value and lowered.endswith("_proxy"):
            proxies.setdefault(lowered[:-len("_proxy")], value)
    if not proxies:
        return ""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if host and urllib.request.proxy_bypass_environment(host, proxies):
        return ""
    return proxies.get(parts.scheme.lower()) or proxies.get("all") or ""


class OnlineGate:
    """The flag, the per-host loopback answers, and the checks built on them.

    ``online`` starts False: until the main thread has read Blender's switch, only loopback
    hosts are reachable. Resolutions are cached for ``ttl_s`` seconds (failed lookups too:
    a host that does not resolve is not local).
    """

    def __init__(self, resolve: Resolver = system_resolve, ttl_s: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.online = False
        self.resolve = resolve
        self._ttl_s = ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._known: dict[str, tuple[float, bool]] = {}
        self._looking_up: set[str] = set()

    def set_online(self, allowed: bool) -> None:
        self.online = bool(allowed)

    def forget(self) -> None:
        """Drop every remembered resolution (e.g. after changing the resolver)."""
        with self._lock:
            self._known.clear()

    def cached_local(self, host: str) -> bool | None:
        """Whether ``host`` is loopback-only, from an IP literal or a fresh resolution; None
        when that is not known without a lookup."""
        host = host.lower().strip("[]")
        literal = _literal(host)
        if literal is not None:
            return literal
        with self._lock:
            entry = self._known.get(host)
        if entry is None or entry[0] < self._clock():
            return None
        return entry[1]

    def is_local(self, host: str) -> bool:
        """Whether every address ``host`` resolves to is loopback (resolves: worker only)."""
        known = self.cached_local(host)
        if known is not None:
            return known
        host = host.lower().strip("[]")
        addresses = self.resolve(host)
        local = bool(addresses) and all(_is_loopback(a) for a in addresses)
        with self._lock:
            self._known[host] = (self._clock() + self._ttl_s, local)
        return local

    def check_url(self, url: str) -> None:
        """Raise :class:`OnlineAccessRefused` unless a request to ``url`` may be sent now."""
        if self.online:
            return
        self.check_host(host_of(url))
        proxy = proxy_for(url)
        if proxy:
            self.check_host(host_of(proxy))

    def check_host(self, host: str) -> None:
        if self.online:
            return
        if not host or not self.is_local(host):
            raise OnlineAccessRefused(host)

    def check_request(self, request: Any) -> None:
        """The httpx request hook: runs in the sending thread before the request leaves."""
        self.check_url(str(request.url))

    def refusal_cached(self, url: str) -> str:
        """``MESSAGE`` when a request to ``url`` would be refused now, else "" (no lookup).

        For ``poll()`` and other main-thread checks: a host not resolved yet counts as not
        local, and a background lookup is started so that a later call knows.
        """
        if self.online:
            return ""
        proxy = proxy_for(url)
        for host in (host_of(url), *([host_of(proxy)] if proxy else [])):
            local = self.cached_local(host) if host else False
            if local is None:
                self._look_up_later(host)
            if not local:
                return MESSAGE
        return ""

    def _look_up_later(self, host: str) -> None:
        with self._lock:
            if host in self._looking_up:
                return
            self._looking_up.add(host)

        def run() -> None:
            try:
                self.is_local(host)
            finally:
                with self._lock:
                    self._looking_up.discard(host)

        threading.Thread(target=run, name="kling-resolve", daemon=True).start()


GATE = OnlineGate()
"""The add-on's one gate: every client and every ``poll()`` asks it."""
