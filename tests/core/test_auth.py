"""Authentication: the JWT exactly as the contract says, token reuse and early refresh, the
single re-sign on 1003/1004, API-key bearer mode, and keys kept out of every repr."""

from __future__ import annotations

import httpx
import jwt
import pytest

import kling_elements as ke
from kling_elements.auth import (
    TOKEN_LIFETIME_S,
    TOKEN_REFRESH_MARGIN_S,
    ApiKeyAuth,
    JwtAuth,
)

AK = "AK9f8e7d6c5b4a39281706"
SK = "SK-very-secret-0a1b2c3d4e5f6a7b8c9d0e1f"
T0 = 1_700_000_000.75


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def claims(token: str) -> dict:
    return jwt.decode(
        token, SK, algorithms=["HS256"], options={"verify_exp": False, "verify_nbf": False}
    )


def test_jwt_header_and_payload_match_the_contract():
    token = JwtAuth(AK, SK, clock=Clock()).token()
    assert jwt.get_unverified_header(token) == {"alg": "HS256", "typ": "JWT"}
    payload = claims(token)
    assert payload == {"iss": AK, "exp": 1_700_000_000 + 1800, "nbf": 1_700_000_000 - 5}
    assert all(type(payload[k]) is int for k in ("exp", "nbf"))


def test_jwt_is_signed_with_the_secret_key():
    token = JwtAuth(AK, SK, clock=Clock()).token()
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, "another-secret-of-a-decent-length-0123", algorithms=["HS256"],
                   options={"verify_exp": False, "verify_nbf": False})


def test_a_fresh_token_is_valid_now_for_a_real_verifier():
    token = JwtAuth(AK, SK).token()
    assert jwt.decode(token, SK, algorithms=["HS256"])["iss"] == AK


def test_token_is_reused_until_the_refresh_margin():
    assert 60 <= TOKEN_REFRESH_MARGIN_S < TOKEN_LIFETIME_S
    clock = Clock()
    auth = JwtAuth(AK, SK, clock=clock)
    first = auth.token()
    exp = claims(first)["exp"]
    for t in (T0 + 1, T0 + 600, exp - TOKEN_REFRESH_MARGIN_S - 1):
        clock.now = t
        assert auth.token() == first


@pytest.mark.parametrize("seconds_before_exp", [60, 59, 1, 0, -10, -5000])
def test_token_is_refreshed_with_at_least_60_s_left(seconds_before_exp):
    clock = Clock()
    auth = JwtAuth(AK, SK, clock=clock)
    first = auth.token()
    clock.now = claims(first)["exp"] - seconds_before_exp
    second = auth.token()
    assert second != first
    assert claims(second)["exp"] == int(clock.now) + 1800
    assert claims(second)["exp"] - clock.now >= 60


def recording_transport(replies):
    """A MockTransport answering ``replies`` in turn (the last one repeats).

    Requests are copied as they arrive: an auth flow that replays mutates the same object.
    """
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(httpx.Request(request.method, request.url,
                                  headers=request.headers.copy(), content=request.content))
        reply = replies[min(len(seen), len(replies)) - 1]
        return reply(request) if callable(reply) else reply

    return httpx.MockTransport(handler), seen


def ok() -> httpx.Response:
    return httpx.Response(200, json={"code": 0, "message": "SUCCEED", "request_id": "r",
                                     "data": {"task_id": "t1", "task_status": "submitted"}})


def token_error(code: int) -> httpx.Response:
    return httpx.Response(401, json={"code": code, "message": "token", "request_id": "r"})


def bearer(request: httpx.Request) -> str:
    scheme, _, token = request.headers["Authorization"].partition(" ")
    assert scheme == "Bearer"
    return token


def test_token_reused_across_requests_and_refreshed_later():
    clock = Clock()
    transport, seen = recording_transport([ok()])
    with httpx.Client(transport=transport, auth=JwtAuth(AK, SK, clock=clock)) as http:
        for _ in range(3):
            http.get("https://api.example/x")
        clock.now += TOKEN_LIFETIME_S - 30
        http.get("https://api.example/x")
    tokens = [bearer(r) for r in seen]
    assert tokens[0] == tokens[1] == tokens[2]
    assert tokens[3] != tokens[0]
    assert claims(tokens[3])["exp"] > claims(tokens[0])["exp"]


@pytest.mark.parametrize("code", [1003, 1004])
def test_token_error_resigns_and_replays_exactly_once(code):
    clock = Clock()

    def reject_and_skew(request):
        clock.now += 10  # the new token must be signed after the failure
        return token_error(code)

    transport, seen = recording_transport([reject_and_skew, ok()])
    with httpx.Client(transport=transport, auth=JwtAuth(AK, SK, clock=clock)) as http:
        response = http.post("https://api.example/x", json={"a": 1})
    assert response.status_code == 200
    assert len(seen) == 2
    assert seen[1].content == seen[0].content == b'{"a":1}'
    first, second = bearer(seen[0]), bearer(seen[1])
    assert first != second
    assert claims(second)["nbf"] == claims(first)["nbf"] + 10


@pytest.mark.parametrize("code", [1003, 1004])
def test_client_replays_once_then_surfaces_auth_error(code):
    transport, seen = recording_transport([token_error(code)])
    client = ke.Client(AK, SK, transport=transport, sleep=lambda s: None)
    with pytest.raises(ke.AuthError) as exc:
        client.get_task("t1")
    assert len(seen) == 2
    assert exc.value.code == code and exc.value.http_status == 401


@pytest.mark.parametrize("code", [1003, 1004])
def test_client_recovers_after_one_token_error(code):
    transport, seen = recording_transport([token_error(code), ok()])
    client = ke.Client(AK, SK, transport=transport, sleep=lambda s: None)
    assert client.get_task("t1").task_id == "t1"
    assert len(seen) == 2


@pytest.mark.parametrize("code", [1000, 1001, 1002])
def test_other_auth_failures_are_not_replayed(code):
    transport, seen = recording_transport([token_error(code)])
    client = ke.Client(AK, SK, transport=transport, sleep=lambda s: None)
    with pytest.raises(ke.AuthError):
        client.get_task("t1")
    assert len(seen) == 1


def test_resign_code_with_non_401_status_is_not_replayed():
    transport, seen = recording_transport([httpx.Response(400, json={"code": 1004,
                                                                     "message": "x"})])
    with httpx.Client(transport=transport, auth=JwtAuth(AK, SK)) as http:
        http.get("https://api.example/x")
    assert len(seen) == 1


def test_api_key_is_sent_as_the_bearer_token_unchanged():
    transport, seen = recording_transport([ok()])
    client = ke.Client(api_key="kling-api-key-123", transport=transport)
    client.get_task("t1")
    client.get_task("t1")
    assert [r.headers["Authorization"] for r in seen] == ["Bearer kling-api-key-123"] * 2


def test_api_key_mode_does_not_replay_token_errors():
    transport, seen = recording_transport([token_error(1004)])
    client = ke.Client(api_key="kling-api-key-123", transport=transport,
                       sleep=lambda s: None)
    with pytest.raises(ke.AuthError):
        client.get_task("t1")
    assert len(seen) == 1


def test_api_key_wins_over_access_and_secret_key():
    transport, seen = recording_transport([ok()])
    ke.Client(AK, SK, api_key="the-api-key", transport=transport).get_task("t1")
    assert seen[0].headers["Authorization"] == "Bearer the-api-key"


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"access_key": AK}, {"secret_key": SK}, {"access_key": "", "secret_key": SK},
     {"api_key": ""}],
)
def test_missing_credentials_are_refused_without_echoing_keys(kwargs):
    with pytest.raises(ValueError) as exc:
        ke.Client(**kwargs)
    assert "KLINGAI_API_KEY" in str(exc.value)
    assert AK not in str(exc.value) and SK not in str(exc.value)


def test_reprs_hide_keys():
    jwt_auth, key_auth = JwtAuth(AK, SK), ApiKeyAuth("kling-api-key-123")
    jwt_client, key_client = ke.Client(AK, SK), ke.Client(api_key="kling-api-key-123")
    for obj in (jwt_auth, key_auth, jwt_client, key_client):
        for text in (repr(obj), str(obj)):
            assert SK not in text
            assert AK not in text
            assert "kling-api-key-123" not in text
            assert "api-key-123" not in text
    assert "api-singapore.klingai.com" in repr(jwt_client)


def test_keys_pasted_with_whitespace_are_trimmed():
    transport, seen = recording_transport([ok()])
    ke.Client(api_key="  kling-api-key-123\n", transport=transport).get_task("t1")
    assert seen[0].headers["Authorization"] == "Bearer kling-api-key-123"
    token = JwtAuth(f" {AK}\n", f"{SK}\n", clock=Clock()).token()
    assert claims(token)["iss"] == AK  # claims() verifies with the bare secret


def test_blank_api_key_falls_back_to_access_and_secret_key():
    transport, seen = recording_transport([ok()])
    ke.Client(AK, SK, api_key=" \n", transport=transport).get_task("t1")
    assert claims(bearer(seen[0]))["iss"] == AK
