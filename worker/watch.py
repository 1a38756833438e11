"""Watching running handlers: a step answered or stopped elsewhere cancels its handler here.

A Stopping message may be handled by another replica, and an operator may answer a step by hand; either way this
replica's handler would run on to a ``ConflictException``. Every few lease ticks, the handlers that have run longer
than that are checked against SageMaker — one ``ListPipelineExecutionSteps`` per execution, whatever the number of
its handlers — and those whose step no longer waits are cancelled; the delivery then runs the stop hook once (for a
stopped step) and answers the step if it is still ``Stopping``.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Callable

from callback_worker.worker.lifecycle import Delivery, StopCause
from callback_worker.worker.logs import get_logger, redact_token
from callback_worker.worker.step_context import WAITING_STATUSES, StepResolver
from callback_worker.worker.tokens import Tokens

log = get_logger("worker.watch")


class StepWatch:
    """Checks long-running handlers' steps every ``interval`` seconds."""

    def __init__(
        self, steps: StepResolver, tokens: Tokens, interval: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.steps = steps
        self.clock = clock
        """The monotonic clock deliveries' start times are read from."""
        self.tokens = tokens
        self.interval = interval
        self.checks = 0

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.check(older_than=self.interval)

    async def check(self, older_than: float = 0.0) -> None:
        """Check every handler running for longer than ``older_than`` seconds."""
        since = self.clock() - older_than
        by_execution: defaultdict[str, list[Delivery]] = defaultdict(list)
        for delivery in self.tokens.running():
            if delivery.started <= since and delivery.message is not None:
                by_execution[delivery.message.pipeline_execution_arn].append(delivery)
        for execution_arn, deliveries in by_execution.items():
            await self._check_execution(execution_arn, deliveries)

    async def _check_execution(self, execution_arn: str, deliveries: list[Delivery]) -> None:
        self.checks += 1
        try:
            statuses = await self.steps.statuses(execution_arn)
        except Exception as exc:  # noqa: BLE001 - a failed check is tried again next time; the handlers run on
            log.warning("cannot check running handlers' steps", error=f"{type(exc).__name__}: {exc}")
            return
        for delivery in deliveries:
            assert delivery.message is not None  # noqa: S101 - only deliveries with a message are watched
            status = statuses.get(delivery.message.token)
            if status is not None and status not in WAITING_STATUSES:
                log.info(
                    "the step no longer waits; cancelling its handler here",
                    token=redact_token(delivery.message.token),
                    step_status=status,
                )
                delivery.request_stop(StopCause(status))
