"""The one retry helper (``retry.RetryPolicy``) and the loops that use it: how many
retries, how long each wait is (jittered, capped, or the server's Retry-After), who is told,
and that every wait goes through the injected ``sleep``."""

from __future__ import annotations

import random

import httpx
import pytest

from kling_elements import download as download_module
from kling_elements.retry import MAX_BACKOFF_S, MAX_RETRY_AFTER_S, RetryPolicy, backoff


def test_pause_sleeps_the_jittered_backoff_tells_on_retry_then_gives_up():
    sleeps: list[float] = []
    told: list[tuple[Exception, float]] = []
    policy = RetryPolicy(max_retries=2, sleep=sleeps.append, rng=random.Random(7),
                         on_retry=lambda error, wait: told.append((error, wait)))
    error = RuntimeError("busy")
    assert policy.pause(0, error) and policy.pause(1, error)
    assert not policy.pause(2, error)  # the retries are used up: no wait, nobody told
    reference = random.Random(7)
    assert sleeps == [backoff(0, reference), backoff(1, reference)]
    assert told == [(error, sleeps[0]), (error, sleeps[1])]


def test_the_wait_is_capped_and_never_below_the_minimum():
    policy = RetryPolicy(max_retries=100, rng=random.Random(1))
    assert 0.75 * MAX_BACKOFF_S <= policy.wait_before(40) <= MAX_BACKOFF_S
    assert policy.wait_before(0, minimum=3.0) == 3.0


def test_retry_after_is_honoured_and_a_long_one_gives_up():
    sleeps: list[float] = []
    policy = RetryPolicy(max_retries=3, sleep=sleeps.append)
    assert policy.pause(0, RuntimeError(), {"Retry-After": "7"})
    assert sleeps == [7.0]
    too_long = {"Retry-After": str(int(MAX_RETRY_AFTER_S) + 1)}
    assert not policy.pause(1, RuntimeError(), too_long) and sleeps == [7.0]


def test_a_download_honours_the_file_servers_retry_after(tmp_path):
    answers = iter([httpx.Response(503, headers={"Retry-After": "4"}),
                    httpx.Response(200, content=b"x" * 1000,
                                   headers={"Content-Length": "1000"})])
    http = httpx.Client(transport=httpx.MockTransport(lambda request: next(answers)))
    sleeps: list[float] = []
    path = download_module.download("https://cdn.example.com/r.mp4", tmp_path / "r.mp4",
                                    http=http, sleep=sleeps.append)
    assert path.read_bytes() == b"x" * 1000 and sleeps == [4.0]


def test_s3_honours_retry_after(tmp_path, monkeypatch):
    from kling_elements.hosting import S3Host
    from kling_elements.hosting import s3 as s3_module
    from kling_elements.sigv4 import Credentials

    monkeypatch.setattr(s3_module, "check_clip", lambda path: None)
    clip = tmp_path / "shot.mov"
    clip.write_bytes(b"0" * 2048)
    answers = iter([httpx.Response(503, headers={"Retry-After": "3"}), httpx.Response(200)])
    sleeps: list[float] = []
    host = S3Host(bucket="bucket", region="us-east-1", endpoint="https://store.example.com",
                  credentials=Credentials("AKIAEXAMPLEKEYID0000", "secret", None),
                  transport=httpx.MockTransport(lambda request: next(answers)),
                  sleep=sleeps.append)
    assert host.publish(clip).startswith("https://store.example.com/")
    assert sleeps == [3.0]


@pytest.mark.parametrize("code", [1003, 1004])
def test_auth_resigns_on_the_codes_the_table_marks(code):
    from kling_elements import auth
    from kling_elements.errors import CODES

    assert CODES[code].resign and code in auth._RESIGN_CODES
    assert not ({1000, 1001, 1002} & auth._RESIGN_CODES)
