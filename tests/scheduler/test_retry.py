"""The one retry driver that turn calls and grading share."""

from __future__ import annotations

import random

import anyio
import pytest

from rtflow.errors import AuthenticationError, ProviderError, RateLimitError, ServerError
from rtflow.runner.retry import RetryPolicy, retrying


def _policy(retries: int) -> RetryPolicy:
    return RetryPolicy(retries=retries, backoff_base=0.001, backoff_max=0.002, max_retry_after=60, rng=random.Random(1))


def _failing(errors: list[ProviderError], attempts: list[int]):  # type: ignore[no-untyped-def]
    async def attempt(number: int) -> str:
        attempts.append(number)
        if errors:
            raise errors.pop(0)
        return f"answered on attempt {number}"

    return attempt


def test_retryable_failures_are_retried_until_an_answer() -> None:
    attempts: list[int] = []
    errors: list[ProviderError] = [ServerError("boom", provider="p"), ServerError("boom", provider="p")]
    assert anyio.run(retrying, _failing(errors, attempts), _policy(2)) == "answered on attempt 3"
    assert attempts == [1, 2, 3]


def test_the_last_allowed_failure_is_raised() -> None:
    attempts: list[int] = []
    errors: list[ProviderError] = [ServerError(str(n), provider="p") for n in range(5)]
    with pytest.raises(ServerError, match="2"):
        anyio.run(retrying, _failing(errors, attempts), _policy(2))
    assert attempts == [1, 2, 3]


def test_a_fatal_failure_is_not_retried() -> None:
    attempts: list[int] = []
    with pytest.raises(AuthenticationError):
        anyio.run(retrying, _failing([AuthenticationError("no", provider="p")], attempts), _policy(5))
    assert attempts == [1]


def test_a_stopping_run_does_not_retry() -> None:
    attempts: list[int] = []

    async def main() -> str:
        return await retrying(_failing([ServerError("x", provider="p")], attempts), _policy(5), stop=lambda: True)

    with pytest.raises(ServerError):
        anyio.run(main)
    assert attempts == [1]


def test_the_servers_retry_after_is_waited_for() -> None:
    attempts: list[int] = []
    errors: list[ProviderError] = [RateLimitError("slow down", provider="p", retry_after=0.2)]

    async def main() -> float:
        begin = anyio.current_time()
        await retrying(_failing(errors, attempts), _policy(1))
        return anyio.current_time() - begin

    assert anyio.run(main) >= 0.2  # a lower bound only: the wait is at least what the server asked for
    assert attempts == [1, 2]


def test_a_servers_huge_retry_after_is_capped() -> None:
    """`Retry-After: 999999` waits `max_retry_after`, not 11.6 days."""
    policy = RetryPolicy(retries=1, backoff_base=0.001, backoff_max=0.002, max_retry_after=0.05, rng=random.Random(1))
    assert policy.delay(1, 999_999.0) == 0.05
    assert policy.delay(1, 0.01) >= 0.01  # a modest ask is honoured as it is
    attempts: list[int] = []
    errors: list[ProviderError] = [RateLimitError("slow down", provider="p", retry_after=999_999.0)]

    async def main() -> str:
        with anyio.fail_after(5):
            return await retrying(_failing(errors, attempts), policy)

    assert anyio.run(main) == "answered on attempt 2"
