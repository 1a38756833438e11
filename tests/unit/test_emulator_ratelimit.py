"""The emulator's rate limits (``--rate-limit OPERATION=RPS``): parsing, precedence and the token buckets."""

from __future__ import annotations

import argparse
import re

import pytest

from callback_worker.emulator.cli import add_arguments, server_options
from callback_worker.emulator.errors import ThrottlingError
from callback_worker.emulator.ratelimit import RateLimiter, TokenBucket, parse_rate_limit, split_rate_limits

SUCCESS = "SendPipelineExecutionStepSuccess"
FAILURE = "SendPipelineExecutionStepFailure"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def allowed(limiter: RateLimiter, operation: str, times: int) -> int:
    """How many of ``times`` requests at the same instant pass."""
    passed = 0
    for _ in range(times):
        try:
            limiter.check(operation)
        except ThrottlingError:
            continue
        passed += 1
    return passed


def test_a_bucket_allows_its_burst_then_its_rate() -> None:
    bucket = TokenBucket(rate=4.0, burst=4.0)
    assert [bucket.take(0.0) for _ in range(5)] == [True] * 4 + [False]
    assert bucket.take(0.25)
    assert not bucket.take(0.3)
    assert [bucket.take(10.0) for _ in range(5)] == [True] * 4 + [False]  # never more than the burst


def test_each_operation_a_pattern_matches_has_a_bucket_of_its_own() -> None:
    clock = Clock()
    limiter = RateLimiter([parse_rate_limit("Send*=5")], clock=clock)
    assert allowed(limiter, SUCCESS, 20) == 5
    assert allowed(limiter, FAILURE, 20) == 5
    assert allowed(limiter, "ListPipelineExecutionSteps", 50) == 50
    clock.now = 1.0
    assert allowed(limiter, SUCCESS, 20) == 5
    assert limiter.throttled == {SUCCESS: 30, FAILURE: 15}


def test_exact_names_win_over_patterns_and_zero_means_unlimited() -> None:
    limiter = RateLimiter.from_specs(["*=2", f"{SUCCESS}=0", "List*=3"])
    assert limiter.rate_of(SUCCESS) is None
    assert limiter.rate_of("ListPipelineExecutionSteps") == 3.0
    assert limiter.rate_of("DescribePipeline") == 2.0
    assert allowed(limiter, SUCCESS, 100) == 100
    assert allowed(limiter, "DescribePipeline", 10) == 2


def test_a_slow_rate_still_allows_one_request() -> None:
    limiter = RateLimiter.from_specs([f"{SUCCESS}=0.5"], clock=Clock())
    assert allowed(limiter, SUCCESS, 3) == 1


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("SendPipelineExecutionStepSuccess", "expected OPERATION=RPS"),
        ("=5", "expected OPERATION=RPS"),
        ("Send*=fast", "'fast' is not a number"),
        ("Send*=-1", "at least 0"),
        ("Send*=inf", "finite"),
        ("ListModels=5", "matches no operation"),
    ],
)
def test_bad_specs_say_what_is_wrong(spec: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=re.escape(fragment)):
        parse_rate_limit(spec)


def test_flags_win_over_the_environment() -> None:
    environ = {"CALLBACK_WORKER_EMULATOR_RATE_LIMITS": "Send*=25; *=100"}
    from_env = server_options(parse(), environ)["rate_limits"]
    assert from_env.rate_of(SUCCESS) == 25.0
    assert from_env.rate_of("ListPipelines") == 100.0
    flagged = server_options(parse("--rate-limit", f"{SUCCESS}=7"), environ)["rate_limits"]
    assert flagged.rate_of(SUCCESS) == 7.0
    assert flagged.rate_of("ListPipelines") is None
    assert not server_options(parse(), {})["rate_limits"].active


def test_a_bad_flag_is_a_value_error_naming_it() -> None:
    with pytest.raises(ValueError, match="Sned"):
        server_options(parse("--rate-limit", "Sned*=5"), {})


def test_environment_specs_split_on_semicolons_commas_and_spaces() -> None:
    assert split_rate_limits(" Send*=25; *=100,List*=3  Describe*=1 ") == [
        "Send*=25",
        "*=100",
        "List*=3",
        "Describe*=1",
    ]
