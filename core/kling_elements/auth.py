"""Authentication: Kling's HS256 JWT (access + secret key) or a plain API key.

Both are an ``httpx.Auth``, so signing, token reuse and the single re-sign on 1003/1004 live
in one small flow the client just installs. Keys never appear in ``repr``/``str``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Generator

import httpx
import jwt

from .errors import CODES

__all__ = ["TOKEN_LIFETIME_S", "TOKEN_REFRESH_MARGIN_S", "ApiKeyAuth", "JwtAuth"]

TOKEN_LIFETIME_S = 1800
TOKEN_REFRESH_MARGIN_S = 120
NOT_BEFORE_SKEW_S = 5
# The codes after which a fresh token may succeed (clock skew, expiry): ``CodeInfo.resign``.
_RESIGN_CODES = frozenset(code for code, info in CODES.items() if info.resign)


# A 401 envelope is tiny; a larger (or unannounced) body is not read for the re-sign check,
# so memory stays bounded whatever the server sends (the client caps what it reads itself).
_MAX_AUTH_BODY_BYTES = 64 * 1024


def _business_code(response: httpx.Response) -> int | None:
    """The envelope code of a small 401 answer with a declared length; None otherwise."""
    declared = response.headers.get("content-length", "")
    if not declared.isdigit() or int(declared) > _MAX_AUTH_BODY_BYTES:
        return None
    response.read()
    try:
        body = json.loads(response.content)
    except (ValueError, RecursionError):
        return None
    code = body.get("code") if isinstance(body, dict) else None
    return code if isinstance(code, int) and not isinstance(code, bool) else None


class JwtAuth(httpx.Auth):
    """Signs ``{"iss", "exp": now+1800, "nbf": now-5}`` with the secret key (HS256).

    A token is reused until ``TOKEN_REFRESH_MARGIN_S`` before its ``exp`` (never past it).
    When Kling answers 1003/1004 (clock skew, expiry) the token that was used is dropped
    (only if no other thread replaced it already) and the request is replayed exactly once.
    Thread-safe: the add-on's worker and a CLI progress thread may share one client.
    Only a 401 body is read here (and only a small one): other answers stream to the client.
    """

    def __init__(
        self, access_key: str, secret_key: str, *, clock: Callable[[], float] = time.time
    ) -> None:
        # A key pasted with a newline or spaces would make an unsendable header or a bad
        # signature; no Kling key contains whitespace.
        access_key, secret_key = (access_key or "").strip(), (secret_key or "").strip()
        if not access_key or not secret_key:
            raise ValueError("both access_key and secret_key are required for JWT auth")
        self._access_key = access_key
        self._secret_key = secret_key
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires_at = 0.0

    def __repr__(self) -> str:
        return "JwtAuth(access_key='…', secret_key='…')"

    def _sign(self, now: float) -> str:
        issued = int(now)
        payload = {
            "iss": self._access_key,
            "exp": issued + TOKEN_LIFETIME_S,
            "nbf": issued - NOT_BEFORE_SKEW_S,
        }
        return jwt.encode(
            payload, self._secret_key, algorithm="HS256", headers={"typ": "JWT"}
        )

    def token(self) -> str:
        """The current token, signing a new one when none is fresh enough."""
        with self._lock:
            now = self._clock()
            if self._token is None or now >= self._expires_at - TOKEN_REFRESH_MARGIN_S:
                self._token = self._sign(now)
                self._expires_at = int(now) + TOKEN_LIFETIME_S
            return self._token

    def invalidate(self, used: str) -> None:
        """Forget ``used`` unless a newer token has already replaced it."""
        with self._lock:
            if self._token == used:
                self._token = None

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        used = self.token()
        request.headers["Authorization"] = f"Bearer {used}"
        response = yield request
        if response.status_code == 401 and _business_code(response) in _RESIGN_CODES:
            self.invalidate(used)
            request.headers["Authorization"] = f"Bearer {self.token()}"
            yield request


class ApiKeyAuth(httpx.Auth):
    """The newer single-key mode: the key itself is the bearer token."""

    def __init__(self, api_key: str) -> None:
        api_key = (api_key or "").strip()
        if not api_key:
            raise ValueError("api_key is empty")
        if not api_key.isascii() or not api_key.isprintable():
            # Said without the key: the text of this error may be shown or logged.
            raise ValueError(
                "api_key contains non-ASCII or control characters, which no Kling key has: "
                "copy it again from the Kling console"
            )
        self._api_key = api_key

    def __repr__(self) -> str:
        return "ApiKeyAuth(api_key='…')"

    def token(self) -> str:
        return self._api_key

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._api_key}"
        yield request
