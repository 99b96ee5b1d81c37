"""Backoff bounds and the Retry-After table (the one place the retry waits are decided)."""

from __future__ import annotations

import email.utils
import random

import pytest

from kling_elements.retry import (
    INITIAL_BACKOFF_S,
    MAX_BACKOFF_S,
    MAX_RETRY_AFTER_S,
    backoff,
    parse_retry_after,
    retry_wait,
)


class FixedDraw(random.Random):
    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value

    def random(self) -> float:
        return self.value


def test_documented_constants():
    assert (INITIAL_BACKOFF_S, MAX_BACKOFF_S, MAX_RETRY_AFTER_S) == (0.5, 8.0, 120.0)


@pytest.mark.parametrize(
    ("attempt", "base"),
    [(0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 8.0), (12, 8.0), (10_000, 8.0)],
)
def test_backoff_is_capped_exponential(attempt, base):
    assert backoff(attempt, FixedDraw(0.0)) == base
    assert backoff(attempt, FixedDraw(0.999999)) == pytest.approx(base * 0.75, rel=1e-5)
    assert backoff(attempt, FixedDraw(0.999999)) > base * 0.75


def test_negative_attempt_waits_the_initial_backoff():
    assert backoff(-3, FixedDraw(0.0)) == 0.5


@pytest.mark.parametrize("attempt", range(8))
def test_backoff_jitter_stays_within_a_quarter(attempt):
    rng = random.Random(attempt)
    base = min(0.5 * 2**attempt, 8.0)
    waits = [backoff(attempt, rng) for _ in range(500)]
    assert all(0.75 * base < w <= base for w in waits)
    assert len(set(waits)) > 400  # jittered, not constant
    assert max(waits) <= MAX_BACKOFF_S


def test_backoff_is_reproducible_with_a_seeded_rng():
    assert [backoff(n, random.Random(1)) for n in range(5)] == [
        backoff(n, random.Random(1)) for n in range(5)
    ]


NOW = 1_700_000_000.0


def http_date(offset: float) -> str:
    return email.utils.formatdate(NOW + offset, usegmt=True)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "3"}, 3.0),
        ({"Retry-After": "0"}, 0.0),
        ({"Retry-After": "1.5"}, 1.5),
        ({"retry-after": " 7 "}, 7.0),
        ({"RETRY-AFTER": "2"}, 2.0),
        ({"retry-after-ms": "1500"}, 1.5),
        ({"Retry-After-Ms": "250", "Retry-After": "10"}, 0.25),
        ({"retry-after-ms": "abc", "Retry-After": "2"}, 2.0),
        ({"retry-after-ms": "-5", "Retry-After": "2"}, 2.0),
        ({"retry-after-ms": "inf", "Retry-After": "2"}, 2.0),
        ({"Retry-After": http_date(30)}, 30.0),
        ({"Retry-After": http_date(-30)}, 0.0),
        ({"Retry-After": "inf"}, None),
        ({"Retry-After": "Infinity"}, None),
        ({"Retry-After": "nan"}, None),
        ({"Retry-After": "-1"}, None),
        ({"Retry-After": "garbage"}, None),
        ({"Retry-After": ""}, None),
        ({"Retry-After": "Mon, 99 Foo 2024 25:61:00 GMT"}, None),
        ({"Content-Type": "application/json"}, None),
        ({}, None),
        (None, None),
    ],
)
def test_parse_retry_after(headers, expected):
    got = parse_retry_after(headers, now=NOW)
    if expected is None:
        assert got is None
    else:
        assert got == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "120"}, 120.0),
        ({"Retry-After": "2"}, 2.0),
        ({"retry-after-ms": "120000"}, 120.0),
    ],
)
def test_retry_wait_honours_reasonable_retry_after(headers, expected):
    assert retry_wait(3, headers, FixedDraw(0.0)) == expected


@pytest.mark.parametrize(
    "headers",
    [
        {"Retry-After": "121"},
        {"Retry-After": "3600"},
        {"retry-after-ms": "120001"},
        {"Retry-After": email.utils.formatdate(usegmt=True, timeval=4_000_000_000)},
    ],
)
def test_retry_wait_beyond_the_cap_means_no_retry(headers):
    assert retry_wait(0, headers, FixedDraw(0.0)) is None


@pytest.mark.parametrize(
    "headers", [None, {}, {"Retry-After": "inf"}, {"Retry-After": "nan"},
                {"Retry-After": "-1"}, {"Retry-After": "soon"}],
)
def test_retry_wait_falls_back_to_backoff_when_the_server_says_nothing_usable(headers):
    assert retry_wait(2, headers, FixedDraw(0.0)) == 2.0
    assert 0.75 * 2.0 < retry_wait(2, headers, random.Random(5)) <= 2.0
