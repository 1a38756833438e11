"""The emulator's in-memory state: pipelines, their executions, the steps that ran, and callback tokens.

Everything here is plain data, changed only on the server's event loop (by :mod:`emulator.engine` and
:mod:`emulator.operations`); nothing here does I/O.
"""

from __future__ import annotations

import enum
import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from callback_worker.emulator.definition import PipelineSpec, StepSpec
from callback_worker.emulator.values import JSONValue, Scalar


class StepStatus(enum.StrEnum):
    """``StepStatus`` of ``ListPipelineExecutionSteps``."""

    STARTING = "Starting"
    EXECUTING = "Executing"
    STOPPING = "Stopping"
    STOPPED = "Stopped"
    FAILED = "Failed"
    SUCCEEDED = "Succeeded"


RUNNING_STEP_STATUSES = frozenset({StepStatus.STARTING, StepStatus.EXECUTING, StepStatus.STOPPING})


class ExecutionStatus(enum.StrEnum):
    """``PipelineExecutionStatus`` of ``DescribePipelineExecution``."""

    EXECUTING = "Executing"
    STOPPING = "Stopping"
    STOPPED = "Stopped"
    FAILED = "Failed"
    SUCCEEDED = "Succeeded"


FINISHED_EXECUTION_STATUSES = frozenset({ExecutionStatus.STOPPED, ExecutionStatus.FAILED, ExecutionStatus.SUCCEEDED})


@dataclass
class PipelineVersion:
    """One version of a pipeline: the definition as created or updated (ids count from 1)."""

    id: int
    definition: str
    spec: PipelineSpec
    creation_time: float
    display_name: str | None = None
    description: str | None = None
    last_execution_arn: str | None = None


@dataclass
class Pipeline:
    """A created pipeline; ``definition`` and ``spec`` are those of its newest version."""

    name: str
    arn: str
    display_name: str
    description: str | None
    role_arn: str
    definition: str
    spec: PipelineSpec
    parallelism: int | None
    creation_time: float
    client_request_token: str
    seq: int
    last_modified_time: float = 0.0
    last_run_time: float | None = None
    versions: dict[int, PipelineVersion] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def version(self) -> PipelineVersion:
        """The newest version."""
        return self.versions[max(self.versions)]

    def add_version(self, definition: str, spec: PipelineSpec, now: float) -> PipelineVersion:
        """Make ``definition`` the newest version."""
        version = PipelineVersion(max(self.versions, default=0) + 1, definition, spec, now)
        self.versions[version.id] = version
        self.definition, self.spec = definition, spec
        return version


@dataclass(frozen=True)
class Answer:
    """The ``SendPipelineExecutionStep*`` request that settled a step, kept to recognise a replay of it."""

    operation: str
    client_request_token: str | None
    request: Mapping[str, object]


@dataclass(frozen=True)
class Iteration:
    """Where a ForEach child step belongs: its ForEach step, the item's index, the item, the body siblings."""

    parent: str
    index: int
    item: JSONValue
    siblings: frozenset[str] = frozenset()


@dataclass
class StepRun:
    """One started step of one execution."""

    spec: StepSpec
    seq: int
    token: str
    start_time: float
    status: StepStatus = StepStatus.STARTING
    queue_url: str = ""
    arguments: JSONValue = None
    end_time: float | None = None
    failure_reason: str | None = None
    outputs: list[dict[str, str]] | None = None
    typed_outputs: dict[str, Scalar] = field(default_factory=dict)
    answer: Answer | None = None
    #: A Condition step's outcome once evaluated.
    outcome: bool | None = None
    #: ``Metadata`` of a step that is not a Callback step (Fail, stubbed types).
    metadata: dict[str, Any] | None = None
    attempt: int = 1
    #: The properties the service fills for a stubbed step (its job's name, ARN, status).
    properties: dict[str, JSONValue] = field(default_factory=dict)
    #: A ForEach child step's iteration; a ForEach step's resolved items.
    iteration: Iteration | None = None
    items: list[JSONValue] | None = None
    #: A cached step type's resolved arguments (its cache key) and, on a cache hit, the execution reused.
    cache_key: str | None = None
    cache_source: str | None = None
    #: A step a selective execution took from its source execution: that execution's ARN.
    selective_source: str | None = None

    @property
    def running(self) -> bool:
        """Whether the step has not finished yet."""
        return self.status in RUNNING_STEP_STATUSES


@dataclass
class Execution:
    """One execution of a pipeline."""

    arn: str
    id: str
    pipeline: Pipeline
    version: PipelineVersion
    display_name: str
    description: str | None
    parameters: dict[str, Scalar]
    parallelism: int | None
    creation_time: float
    client_request_token: str
    seq: int
    experiment: dict[str, str] | None = None
    #: ``MLflowConfig`` of ``DescribePipelineExecution``: the definition's ``MlflowConfig``, resolved.
    mlflow: dict[str, str] | None = None
    status: ExecutionStatus = ExecutionStatus.EXECUTING
    failure_reason: str | None = None
    last_modified_time: float = 0.0
    stop_request_token: str | None = None
    steps: dict[str, StepRun] = field(default_factory=dict)
    #: ClientRequestTokens of the RetryPipelineExecution requests that re-ran it.
    retry_tokens: set[str] = field(default_factory=set)
    #: Attempts of the steps that a retry re-ran, by step name.
    attempts: dict[str, int] = field(default_factory=dict)
    #: ``SelectiveExecutionConfig`` as requested, and the names of the steps it runs (``None``: every step).
    selective_config: dict[str, Any] | None = None
    selected: frozenset[str] | None = None

    @property
    def spec(self) -> PipelineSpec:
        """The definition this execution runs (its pipeline version's)."""
        return self.version.spec

    def running_steps(self) -> list[StepRun]:
        """Steps still waiting for an answer."""
        return [run for run in self.steps.values() if run.running]

    def failed_steps(self) -> list[StepRun]:
        """Steps that failed, in the order they finished."""
        failed = [run for run in self.steps.values() if run.status is StepStatus.FAILED]
        return sorted(failed, key=lambda run: (run.end_time or 0.0, run.seq))

    @property
    def finished(self) -> bool:
        """Whether the execution reached Succeeded, Failed or Stopped."""
        return self.status in FINISHED_EXECUTION_STATUSES


class Store:
    """All pipelines, executions and live callback tokens of one emulator."""

    def __init__(self) -> None:
        self.pipelines: dict[str, Pipeline] = {}
        self.executions: dict[str, Execution] = {}
        self.tokens: dict[str, tuple[Execution, StepRun]] = {}
        #: Executions by pipeline ARN and the ClientRequestToken that started them.
        self.started: dict[tuple[str, str], Execution] = {}
        #: Deleted pipelines by lower-case name: the deleting request's ClientRequestToken and the ARN.
        self.deleted_pipelines: dict[str, tuple[str, str]] = {}
        self._seq = itertools.count(1)

    def next_seq(self) -> int:
        """A number larger than every number handed out before (orders items created in the same instant)."""
        return next(self._seq)

    def pipeline(self, name: str) -> Pipeline | None:
        """The pipeline called ``name`` (names are unique regardless of letter case, as their ARNs are)."""
        return self.pipelines.get(name.lower())

    def executions_of(self, pipeline: Pipeline) -> Iterator[Execution]:
        """Every execution of ``pipeline``."""
        return (execution for execution in self.executions.values() if execution.pipeline is pipeline)
