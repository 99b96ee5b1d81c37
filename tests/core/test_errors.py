"""The error table: every documented business code maps to the right family and HTTP status,
only the codes that clear by waiting are retryable, and every message says what to do."""

from __future__ import annotations

import traceback

import httpx
import pytest

import kling_elements as ke
from kling_elements import errors
from kling_elements.errors import (
    CODES,
    AccountError,
    AuthError,
    InvalidRequestError,
    KlingError,
    NotFoundError,
    PermissionDeniedError,
    PolicyError,
    RateLimitError,
    ServerError,
    error_for,
    is_retryable_code,
)

# Restated from /work/shared/kling-api.md ("Error codes"), independently of errors.CODES.
CONTRACT = {
    1000: (401, AuthError),
    1001: (401, AuthError),
    1002: (401, AuthError),
    1003: (401, AuthError),
    1004: (401, AuthError),
    1100: (429, AccountError),
    1101: (429, AccountError),
    1102: (429, AccountError),
    1103: (403, PermissionDeniedError),
    1200: (400, InvalidRequestError),
    1201: (400, InvalidRequestError),
    1202: (404, InvalidRequestError),
    1203: (404, NotFoundError),
    1300: (400, PolicyError),
    1301: (400, PolicyError),
    1302: (429, RateLimitError),
    1303: (429, RateLimitError),
    1304: (429, PermissionDeniedError),
    5000: (500, ServerError),
    5001: (503, ServerError),
    5002: (504, ServerError),
}
RETRYABLE = {1302, 1303, 5000, 5001, 5002}


def test_table_covers_exactly_the_documented_codes():
    assert set(CODES) == set(CONTRACT)


@pytest.mark.parametrize("code", sorted(CONTRACT))
def test_code_maps_to_family_and_http_status(code):
    status, kind = CONTRACT[code]
    assert CODES[code].http_status == status
    exc = error_for(code, "", http_status=status, request_id="req-42")
    assert type(exc) is kind
    assert isinstance(exc, KlingError)
    assert (exc.code, exc.http_status, exc.request_id) == (code, status, "req-42")
    text = str(exc)
    assert f"code {code}" in text and f"HTTP {status}" in text and "req-42" in text


def test_not_found_is_an_invalid_request():
    assert isinstance(error_for(1203, ""), InvalidRequestError)


def test_retryable_set_is_exactly_the_waiting_codes():
    assert {code for code in CODES if is_retryable_code(code)} == RETRYABLE
    assert {code for code, info in CODES.items() if info.retryable} == RETRYABLE


@pytest.mark.parametrize("code", [None, 0, 1003, 1004, 1102, 1304, 4290, 5003, 9999])
def test_other_codes_are_not_retryable(code):
    assert not is_retryable_code(code)


def test_only_token_codes_ask_for_a_resign():
    assert {code for code, info in CODES.items() if info.resign} == {1003, 1004}


@pytest.mark.parametrize("code", [1000, 1001, 1002])
def test_auth_failure_advice_names_the_regions_and_base_url(code):
    text = str(error_for(code, "", http_status=401))
    assert "base URL" in text
    assert "region" in text
    assert "api-singapore.klingai.com" in text and "api-beijing.klingai.com" in text


@pytest.mark.parametrize("code", sorted(CONTRACT))
def test_every_message_carries_advice(code):
    info = CODES[code]
    assert info.advice.strip()
    without_kling_text = str(error_for(code, ""))
    assert info.meaning in without_kling_text and info.advice in without_kling_text
    with_kling_text = str(error_for(code, "prompt contains a forbidden word"))
    assert "prompt contains a forbidden word" in with_kling_text
    assert info.advice in with_kling_text


@pytest.mark.parametrize(
    ("code", "http_status", "kind"),
    [
        (1099, 401, AuthError),
        (1150, 429, AccountError),
        (1250, 400, InvalidRequestError),
        (1399, 400, PolicyError),
        (5099, 500, ServerError),
        (4242, 503, ServerError),
        (7777, 400, KlingError),
    ],
)
def test_undocumented_codes_fall_back_to_their_family(code, http_status, kind):
    exc = error_for(code, "", http_status=http_status)
    assert type(exc) is kind
    assert exc.code == code
    assert "undocumented" in str(exc)
    assert not is_retryable_code(code)


def test_exception_shapes():
    assert issubclass(ke.ValidationError, ValueError)
    assert not issubclass(ke.ValidationError, KlingError)
    timeout = ke.TaskTimeoutError("late", task=None)
    assert isinstance(timeout, TimeoutError) and isinstance(timeout, KlingError)
    rejected = ke.RejectedError("no", status=3, code=0)
    assert rejected.status == 3 and rejected.code == 0
    assert errors.__all__  # every name importable
    for name in errors.__all__:
        assert hasattr(errors, name)


# -- secrets never leak ------------------------------------------------------------------

ACCESS_KEY = "AKtestaccess0123456789abcdef"
SECRET_KEY = "SKsupersecret-do-not-leak-7f3a9c"
API_KEY = "APIKEY-also-secret-5b2e8d1c"


def _reply(status: int, body: object | None = None, content: bytes | None = None):
    if content is not None:
        return httpx.Response(status, content=content)
    return httpx.Response(status, json=body)


def _error_paths():
    """Each scenario: a transport handler that makes the client raise."""

    def envelope(code, status, message=""):
        return lambda request: _reply(status, {"code": code, "message": message,
                                               "request_id": "r-1", "data": None})

    def drop(request):
        raise httpx.ConnectError("connection refused", request=request)

    def read_timeout(request):
        raise httpx.ReadTimeout("timed out", request=request)

    scenarios = {f"code-{code}": envelope(code, status) for code, (status, _) in CONTRACT.items()}
    scenarios.update(
        {
            "connect-error": drop,
            "read-timeout": read_timeout,
            "html-502": lambda r: _reply(502, content=b"<html>Bad gateway</html>"),
            "html-200": lambda r: _reply(200, content=b"<html>captive portal</html>"),
            "wrong-shape": lambda r: _reply(200, {"code": 0, "data": {"task_id": 5}}),
        }
    )
    return scenarios


SCENARIOS = _error_paths()


def _all_text(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc)) + repr(exc) + str(exc)


@pytest.mark.parametrize("auth_mode", ["jwt", "api_key"])
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_no_exception_text_contains_a_secret(scenario, auth_mode):
    seen_tokens: list[str] = []
    handler = SCENARIOS[scenario]

    def recording(request):
        seen_tokens.append(request.headers["authorization"].removeprefix("Bearer "))
        return handler(request)

    credentials = (
        {"access_key": ACCESS_KEY, "secret_key": SECRET_KEY}
        if auth_mode == "jwt" else {"api_key": API_KEY}
    )
    client = ke.Client(
        **credentials, transport=httpx.MockTransport(recording), sleep=lambda s: None,
        max_retries=1,
    )
    with pytest.raises(KlingError) as info:
        client.get_task("task-1")
    text = _all_text(info.value)
    assert seen_tokens
    for secret in (ACCESS_KEY, SECRET_KEY, API_KEY, *seen_tokens):
        assert secret not in text
    assert SECRET_KEY not in repr(client) and API_KEY not in repr(client)
