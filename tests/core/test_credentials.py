"""One precedence rule for keys and base URL (``credentials.resolve_credentials``), used by
``Client.from_env``, ``AsyncClient.from_env`` and the add-on's preferences."""

from __future__ import annotations

import pytest

import kling_elements as ke
from kling_elements.credentials import Credentials, resolve_credentials

SAVED = Credentials(base_url="https://saved.example.com", access_key="AK-saved",
                    secret_key="SK-saved")


@pytest.mark.parametrize(("env", "expected"), [
    ({}, SAVED),
    ({"KLINGAI_API_KEY": "key-env"}, Credentials(SAVED.base_url, api_key="key-env")),
    ({"KLINGAI_API_KEY": "  "}, SAVED),  # a blank key is no key
    ({"KLINGAI_ACCESS_KEY": "AK-env"}, SAVED),  # half a pair does not override
    ({"KLINGAI_ACCESS_KEY": "AK-env", "KLINGAI_SECRET_KEY": "SK-env",
      "KLINGAI_BASE_URL": "http://127.0.0.1:8765"},
     Credentials("http://127.0.0.1:8765", access_key="AK-env", secret_key="SK-env")),
    ({"KLINGAI_API_KEY": "key-env", "KLINGAI_ACCESS_KEY": "AK-env",
      "KLINGAI_SECRET_KEY": "SK-env"}, Credentials(SAVED.base_url, api_key="key-env")),
])
def test_the_environment_wins_over_saved_keys_only_when_complete(env, expected):
    assert resolve_credentials(env, SAVED) == expected


def test_nothing_complete_gives_the_partial_environment_for_the_clients_advice():
    chosen = resolve_credentials({"KLINGAI_ACCESS_KEY": "AK-env"})
    assert chosen == Credentials(access_key="AK-env")
    with pytest.raises(ValueError, match="no credentials"):
        ke.Client.from_env({"KLINGAI_ACCESS_KEY": "AK-env"})


def test_the_repr_hides_the_keys():
    text = repr(resolve_credentials({"KLINGAI_API_KEY": "key-secret-123"}))
    assert "key-secret-123" not in text and "api_key" in text


@pytest.mark.parametrize("kind", [ke.Client, ke.AsyncClient])
def test_both_clients_follow_the_rule(kind):
    client = kind.from_env({"KLINGAI_API_KEY": " ", "KLINGAI_ACCESS_KEY": "AK-env-0123",
                            "KLINGAI_SECRET_KEY": "SK-env-0123",
                            "KLINGAI_BASE_URL": "http://127.0.0.1:8765/"})
    assert client.base_url == "http://127.0.0.1:8765"
    assert type(client._auth).__name__ == "JwtAuth"
