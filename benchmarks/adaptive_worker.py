"""``python -m benchmarks.adaptive_worker``: ``callback-worker run`` with botocore's ``adaptive`` retry mode on the
SageMaker client (a client-side token bucket driven by throttling answers, aiobotocore's async port of it) in place
of the worker's own limiter, which is held unlimited. The rate-limited benchmark's ``botocore-adaptive`` variant: the
alternative the issue asked to measure before choosing.
"""

from __future__ import annotations

import sys

from aiobotocore.config import AioConfig

import callback_worker.worker.app
import callback_worker.worker.clients
from callback_worker.cli import main
from callback_worker.worker.ratelimit import RateLimiter


class Unlimited(RateLimiter):
    """Never slows down: botocore's bucket does the pacing here."""

    def record(self, sent_at: float, *, throttled: bool) -> None:
        return None


def adaptive(config: AioConfig) -> AioConfig:
    return config.merge(AioConfig(retries={"mode": "adaptive", "max_attempts": 3}))


if __name__ == "__main__":
    callback_worker.worker.clients.sagemaker_config = adaptive
    callback_worker.worker.app.RateLimiter = Unlimited  # type: ignore[attr-defined]  # replaced for this measurement only
    sys.exit(main(["run"]))
