"""Running one started step, by kind, until it finishes (or waits for its callback to be answered).

Every step first resolves what it reads (arguments, queue URL, conditions, error message), fetching the S3
documents a ``Std:JsonGet`` needs; a value that cannot be resolved fails the step with the reason. Then:

- Callback: the message ``{"token", "pipelineExecutionArn", "arguments", "status": "Executing"}`` goes to
  its queue and the step is ``Executing`` until answered (a queue that refuses it fails the step);
- Condition: ``Succeeded`` at once with ``Metadata.Condition.Outcome`` ``"True"``/``"False"``;
- Fail: ``Failed`` with the resolved ``ErrorMessage`` as its reason (none if empty) and ``Metadata.Fail.ErrorMessage``;
- ForEach: its items resolved (:func:`emulator.foreach.resolve_items`), ``Executing`` while its children run
  (the engine starts them: :mod:`emulator.foreach`);
- stubbed: a cache hit (:mod:`emulator.cache`) ``Succeeded`` at once with the earlier run's metadata and
  properties; otherwise ``Executing`` for the stub delay, then ``Succeeded`` with the metadata and properties
  of its type (:mod:`emulator.stubs`).

A step whose execution is stopped before it got this far is ``Stopped`` instead.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from callback_worker.emulator.cache import cache_key
from callback_worker.emulator.context import ExecutionContext, NeedDocument
from callback_worker.emulator.delivery import Background
from callback_worker.emulator.expressions import EvaluationError
from callback_worker.emulator.foreach import resolve_items
from callback_worker.emulator.s3 import ObjectReader, split_s3_uri
from callback_worker.emulator.sqs import StepMessage
from callback_worker.emulator.state import Execution, StepRun, StepStatus
from callback_worker.emulator.steps import StepKind
from callback_worker.emulator.stubs import StubConfig, invented_properties, resource_name, stub_metadata
from callback_worker.emulator.values import JSONValue, load_json, to_text

logger = logging.getLogger("emulator")

#: ``finish(execution, run, status, reason)`` ends a step and lets the execution go on.
Finish = Callable[[Execution, StepRun, StepStatus, "str | None"], None]
#: S3 documents one step may read (each fetched once), so no definition keeps a step fetching.
_MAX_DOCUMENTS = 20


@dataclass
class StepRunner:
    """Runs started steps in the background; ``finish`` is the engine's way to end a step."""

    background: Background
    stubs: StubConfig
    reader: ObjectReader | None
    account_arn: str
    clock: Callable[[], float]
    finish: Finish
    #: ``advance(execution)`` lets the engine start what may start (a ForEach step's children).
    advance: Callable[[Execution], None]
    #: ``cached(execution, run)``: the execution ARN and earlier run a cached step type reuses, if any.
    cached: Callable[[Execution, StepRun], tuple[str, StepRun] | None]

    def start(self, execution: Execution, run: StepRun) -> None:
        """Resolve what the step reads (now, unless S3 documents must be fetched first), then run it."""
        try:
            context = ExecutionContext(execution, self.clock(), self.stubs, iteration=run.iteration)
            resolved = self._evaluate(context, run)
        except NeedDocument:
            self.background.spawn(self._resolve_then_run(execution, run))
            return
        except EvaluationError as error:
            self._unresolved(execution, run, error)
            return
        self.background.spawn(self._run(execution, run, resolved))

    async def _resolve_then_run(self, execution: Execution, run: StepRun) -> None:
        try:
            resolved = await self._resolve(execution, run)
        except EvaluationError as error:
            self._unresolved(execution, run, error)
            return
        await self._run(execution, run, resolved)

    def _unresolved(self, execution: Execution, run: StepRun, error: EvaluationError) -> None:
        self._end(execution, run, StepStatus.FAILED, f"Could not resolve the step's arguments: {error}")

    async def _run(self, execution: Execution, run: StepRun, resolved: JSONValue) -> None:
        kind = run.spec.kind
        if not run.running:  # stopped before it got here
            return
        if kind is StepKind.CALLBACK:
            await self._deliver(execution, run)
        elif run.status is StepStatus.STOPPING:
            self._end(execution, run, StepStatus.STOPPED)
        elif kind is StepKind.CONDITION:
            run.outcome = bool(resolved)
            run.metadata = {"Condition": {"Outcome": "True" if run.outcome else "False"}}
            self._end(execution, run, StepStatus.SUCCEEDED)
        elif kind is StepKind.FAIL:
            message = to_text(resolved)
            run.metadata = {"Fail": {"ErrorMessage": message}}
            # An empty message leaves the step without a FailureReason, as the service does.
            self._end(execution, run, StepStatus.FAILED, message or None)
        elif kind is StepKind.FOR_EACH:
            self._for_each(execution, run, resolved)
        else:
            await self._stub(execution, run, resolved)

    def _for_each(self, execution: Execution, run: StepRun, resolved: JSONValue) -> None:
        try:
            run.items = resolve_items(resolved)
        except EvaluationError as error:
            self._end(execution, run, StepStatus.FAILED, str(error))
            return
        run.status = StepStatus.EXECUTING
        execution.last_modified_time = self.clock()
        self.advance(execution)

    def _end(self, execution: Execution, run: StepRun, status: StepStatus, reason: str | None = None) -> None:
        if run.running:
            self.finish(execution, run, status, reason)

    async def _resolve(self, execution: Execution, run: StepRun) -> JSONValue:
        documents: dict[str, JSONValue] = {}
        for _ in range(_MAX_DOCUMENTS):
            context = ExecutionContext(execution, self.clock(), self.stubs, documents, run.iteration)
            try:
                return self._evaluate(context, run)
            except NeedDocument as need:
                documents[need.uri] = await self._fetch(need.uri)
        raise EvaluationError(f"the step reads more than {_MAX_DOCUMENTS} S3 documents")

    @staticmethod
    def _evaluate(context: ExecutionContext, run: StepRun) -> JSONValue:
        spec = run.spec
        if spec.kind is StepKind.CONDITION:
            return all(condition.holds(context) for condition in spec.conditions)
        if spec.kind is StepKind.CALLBACK:
            queue_url = spec.queue_url.evaluate(context)
            if not isinstance(queue_url, str) or not queue_url:
                raise EvaluationError(f"SqsQueueUrl resolved to {queue_url!r}, not a queue URL")
            run.queue_url = queue_url
            run.arguments = spec.arguments.evaluate(context)
            return run.arguments
        return spec.arguments.evaluate(context)

    async def _fetch(self, uri: str) -> JSONValue:
        if self.reader is None:
            raise EvaluationError(f"Std:JsonGet cannot read {uri}: this emulator has no S3 access")
        try:
            return load_json(await self.reader.read(*split_s3_uri(uri)))
        except LookupError as error:
            raise EvaluationError(f"Std:JsonGet: {error}") from None
        except ValueError as error:
            raise EvaluationError(f"Std:JsonGet: {uri} is {error}") from None

    def _message(self, execution: Execution, run: StepRun, status: str) -> StepMessage:
        return StepMessage(run.queue_url, run.token, execution.arn, run.arguments, status)

    async def _deliver(self, execution: Execution, run: StepRun) -> None:
        error = await self.background.send(self._message(execution, run, "Executing"))
        if error is not None:
            if run.status is StepStatus.STARTING:
                reason = f"Failed to send the callback message to the SQS queue {run.queue_url}: {error}"
                self._end(execution, run, StepStatus.FAILED, reason)
            elif run.status is StepStatus.STOPPING:
                self._end(execution, run, StepStatus.STOPPED)
            return
        if run.status is StepStatus.STARTING:
            run.status = StepStatus.EXECUTING
            execution.last_modified_time = self.clock()
        elif run.status is StepStatus.STOPPING:
            await self.send_stopping(execution, run)

    async def send_stopping(self, execution: Execution, run: StepRun) -> None:
        """The second message of a callback step whose execution is stopping."""
        # If this message is lost the step stays Stopping, as a service step would: only an answer ends it.
        await self.background.send(self._message(execution, run, "Stopping"))

    async def _stub(self, execution: Execution, run: StepRun, resolved: JSONValue) -> None:
        step_type = run.spec.type
        name = resource_name(step_type, execution.id, run.spec.name, resolved)
        run.arguments, run.cache_key = resolved, cache_key(resolved)
        hit = self.cached(execution, run)
        if hit is not None:
            run.cache_source, earlier = hit
            run.metadata, run.properties = earlier.metadata, dict(earlier.properties)
            self._end(execution, run, StepStatus.SUCCEEDED)
            return
        run.metadata = stub_metadata(step_type, self.account_arn, name, execution.id, run.spec.name)
        run.properties = invented_properties(step_type, self.account_arn, name)
        run.status = StepStatus.EXECUTING
        execution.last_modified_time = self.clock()
        logger.info("stubbed %s step %s of %s executing", step_type, run.spec.name, execution.arn)
        await asyncio.sleep(self.stubs.delay)
        if run.status is StepStatus.EXECUTING:
            self._end(execution, run, StepStatus.SUCCEEDED)
