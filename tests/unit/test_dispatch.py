"""worker/dispatch.py: RetryPolicy.delay (the rest of the dispatcher is exercised by integration tests)."""

from __future__ import annotations

import pytest

from callback_worker.worker.dispatch import RetryPolicy


@pytest.mark.parametrize(("attempt", "expected"), [(1, 2.0), (2, 4.0), (3, 8.0), (10, 1024.0)])
def test_delay_doubles_per_attempt(attempt: int, expected: float) -> None:
    assert RetryPolicy(max_attempts=20, backoff=2.0).delay(attempt) == expected


def test_delay_after_first_attempt_is_the_base() -> None:
    assert RetryPolicy(backoff=0.5).delay(1) == 0.5


def test_zero_backoff_means_no_delay() -> None:
    assert [RetryPolicy(backoff=0).delay(attempt) for attempt in range(1, 6)] == [0.0] * 5


def test_delay_is_a_float() -> None:
    assert type(RetryPolicy(backoff=3).delay(2)) is float


def test_defaults_match_the_settings_defaults() -> None:
    policy = RetryPolicy()
    assert (policy.max_attempts, policy.backoff) == (3, 2.0)
