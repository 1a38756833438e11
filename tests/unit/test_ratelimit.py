"""The worker's adaptive rate limiter (AIMD) and the door of its SageMaker calls, on a fake clock."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from callback_worker.worker.ratelimit import MIN_RATE, RECOVERY_CALLS, RECOVERY_SECONDS, RateLimiter
from callback_worker.worker.sagemaker_calls import SageMakerCalls, is_throttling


class Clock:
    """Monotonic time that moves only when told to, or when the limiter sleeps."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def limiter(clock: Clock, **options: float) -> RateLimiter:
    return RateLimiter(clock=clock, sleep=clock.sleep, **options)  # type: ignore[arg-type]


def client_error(code: str, status: int) -> ClientError:
    response: Any = {"Error": {"Code": code, "Message": "x"}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(response, "Op")


async def send(rate_limiter: RateLimiter, clock: Clock, count: int, spacing: float) -> list[float]:
    """``count`` calls, one every ``spacing`` seconds (at least), each answered at once; their send times."""
    times = []
    for _ in range(count):
        times.append(await rate_limiter.acquire())
        clock.now += spacing
    return times


async def test_starts_unlimited_and_never_waits_while_nothing_is_throttled() -> None:
    clock = Clock()
    paced = limiter(clock)
    for sent in await send(paced, clock, 500, 0.0):
        paced.record(sent, throttled=False)
    assert paced.rate is None
    assert clock.slept == []


async def test_a_throttle_halves_the_rate_actually_sent() -> None:
    clock = Clock()
    paced = limiter(clock)
    times = await send(paced, clock, 40, 0.05)  # 20 calls per second, over two seconds
    paced.record(times[-1], throttled=True)
    assert paced.rate == pytest.approx(10.0, rel=0.06)
    assert paced.decreases == 1


async def test_throttles_of_calls_sent_before_the_cut_do_not_cut_again() -> None:
    clock = Clock()
    paced = limiter(clock)
    times = await send(paced, clock, 40, 0.05)
    for sent in times[-5:]:  # five calls in flight together, all throttled
        paced.record(sent, throttled=True)
    assert paced.decreases == 1
    later = await paced.acquire()
    paced.record(later, throttled=True)  # sent at the new rate, and still too fast
    assert paced.decreases == 2


async def test_a_limited_rate_spaces_calls_evenly() -> None:
    clock = Clock()
    paced = limiter(clock, max_rate=4.0)
    times = await send(paced, clock, 9, 0.0)
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert gaps == pytest.approx([0.25] * 8)


async def test_successes_raise_the_rate_additively_back_to_where_it_was_cut() -> None:
    clock = Clock()
    paced = limiter(clock, recovery_seconds=float("inf"))  # the per-call term alone
    times = await send(paced, clock, 40, 0.05)
    paced.record(times[-1], throttled=True)
    cut = paced.rate
    assert cut is not None
    rates = []
    for _ in range(RECOVERY_CALLS):
        sent = await paced.acquire()
        paced.record(sent, throttled=False)
        rates.append(paced.rate)
    steps = {round(later - earlier, 9) for earlier, later in itertools.pairwise(rates)}  # type: ignore[operator]
    assert steps == {round(cut / RECOVERY_CALLS, 9)}
    assert rates[-1] == pytest.approx(2 * cut)


async def test_seconds_of_success_raise_the_rate_too_so_a_slow_rate_recovers_in_time() -> None:
    clock = Clock()
    paced = limiter(clock, recovery_calls=10**6)  # the per-second term alone
    times = await send(paced, clock, 20, 0.25)  # four calls a second
    paced.record(times[-1], throttled=True)
    cut, cut_at = paced.rate, clock.now
    assert cut is not None
    assert cut == pytest.approx(2.0, rel=0.15)  # half of the 7 or 8 calls of the last two seconds
    calls = 0
    while (paced.rate or 0.0) < 2 * cut - 1e-9:
        paced.record(await paced.acquire(), throttled=False)
        calls += 1
    assert clock.now - cut_at == pytest.approx(RECOVERY_SECONDS, abs=2 / cut)
    assert calls < RECOVERY_CALLS  # fifty calls at this rate would take longer


async def test_the_rate_does_not_grow_beyond_twice_what_is_sent() -> None:
    clock = Clock()
    paced = limiter(clock)
    times = await send(paced, clock, 40, 0.05)
    paced.record(times[-1], throttled=True)
    cut = paced.rate
    for sent in await send(paced, clock, 200, 1.0):  # demand fell to one call a second: nothing tests the rate
        paced.record(sent, throttled=False)
    assert paced.rate == cut
    for sent in await send(paced, clock, 100, 1 / 8):  # eight a second: the rate may grow to sixteen
        paced.record(sent, throttled=False)
    assert paced.rate is not None
    assert 15.0 <= paced.rate <= 16.0  # twice the calls of the last two seconds (15 or 16 of them)


async def test_the_static_cap_is_where_it_starts_and_never_exceeded() -> None:
    clock = Clock()
    paced = limiter(clock, max_rate=5.0)
    assert paced.rate == 5.0
    for sent in await send(paced, clock, 300, 0.0):
        paced.record(sent, throttled=False)
    assert paced.rate == 5.0
    assert min(clock.slept) == pytest.approx(0.2)


async def test_the_rate_never_falls_below_the_floor() -> None:
    clock = Clock()
    paced = limiter(clock)
    for _ in range(30):
        sent = await paced.acquire()
        paced.record(sent, throttled=True)
    assert paced.rate == MIN_RATE


async def test_throttling_is_recognised_by_code_and_status() -> None:
    assert is_throttling(client_error("ThrottlingException", 400))
    assert is_throttling(client_error("Whatever", 429))
    assert not is_throttling(client_error("InternalFailure", 500))
    assert not is_throttling(client_error("ConflictException", 400))
    assert not is_throttling(EndpointConnectionError(endpoint_url="http://127.0.0.1:1"))


async def test_calls_count_throttles_and_slow_the_limiter() -> None:
    clock = Clock()
    gate = SageMakerCalls(limiter(clock), clock=clock)

    async def throttled() -> None:
        raise client_error("ThrottlingException", 400)

    for _ in range(3):
        clock.now += 0.1
        with pytest.raises(ClientError):
            await gate.call(throttled)
    assert gate.throttled == 3
    assert gate.calls == 3
    assert gate.limiter.rate is not None
    assert gate.reachable


async def test_an_outage_marks_sagemaker_unreachable_and_leaves_the_rate_alone() -> None:
    clock = Clock()
    gate = SageMakerCalls(limiter(clock), clock=clock)

    async def down() -> None:
        raise client_error("ServiceUnavailable", 503)

    async def refused() -> None:
        raise EndpointConnectionError(endpoint_url="http://127.0.0.1:1")

    async def answered() -> str:
        return "ok"

    for call in (down, refused):
        with pytest.raises((ClientError, EndpointConnectionError)):
            await gate.call(call)
        assert not gate.reachable
    assert gate.limiter.rate is None
    assert gate.throttled == 0
    assert await gate.call(answered) == "ok"
    assert gate.reachable
    assert gate.rate == float("inf")


async def test_waiting_for_the_limiter_is_counted() -> None:
    clock = Clock()
    gate = SageMakerCalls(limiter(clock, max_rate=2.0), clock=clock)

    async def answered() -> None:
        return None

    for _ in range(5):
        await gate.call(answered)
    assert gate.wait_seconds == pytest.approx(2.0)
