"""An NTP step of a replica's wall clock while a handler runs leaves its leases, its 12-hour SQS budget and its
continuations' waits alone: they follow the monotonic clock.

A real ``callback-worker run`` process, with libfaketime preloaded so that only its wall clock (``time.time()``)
can be stepped while it runs (:mod:`tests.e2e.faketime_support`), answers a one-step callback pipeline of the
SageMaker emulator from the session's moto SQS queue. Its handler (a plugin) notes every call in a file, then works
three visibility timeouts. The clock is stepped once the handler runs (or while its ``Retry`` continuation waits in
the queue):

- back 90 s, with a second, un-faked replica polling the same queue: the lease must still be renewed, or the
  message reappears and the second replica runs the handler again;
- forward 12 hours: the receipt's 12-hour visibility budget is not spent, so the handler is not cancelled with a
  Failure "The handler ran 12.0 h on one SQS receipt";
- forward 90 s while a ``Retry(delay=5)`` continuation waits: the continuation still runs, once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.e2e.faketime_support import Replica, SteppedClock, check_libfaketime, eventually
from tests.e2e.test_cli_run import worker_env
from tests.emulator_fixtures import create_pipeline, list_steps, one_step_definition, start_execution
from tests.fakes import TEST_SIGNING_KEY
from tests.plugin_factory import make_plugin

if TYPE_CHECKING:
    from types_boto3_sagemaker import SageMakerClient

    from callback_worker.emulator import ThreadedEmulatorServer

VISIBILITY = 6
"""The worker's visibility timeout: leases are renewed every ~3.6 s (lease.py: 1.2 s ticks, a 3.4 s margin)."""
WORK = 3 * VISIBILITY
"""How long the handler works: three visibility timeouts, so an unrenewed lease lapses well before it ends."""
RETRY_STATE = {"resume": "second call"}
TERMINAL = frozenset({"Succeeded", "Failed", "Stopped"})

PLUGIN = """
import asyncio, json, os, time

from callback_worker.worker.handler import Retry


def note(context, phase):
    record = {
        "replica": os.environ["WALL_CLOCK_REPLICA"],
        "phase": phase,
        "state": context.state,
        "wall": time.time(),
        "monotonic": time.monotonic(),
    }
    with open(os.environ["WALL_CLOCK_CALLS"], "a", encoding="utf-8") as calls:
        calls.write(json.dumps(record) + "\\n")


class WallClockProbe:
    async def __call__(self, context):
        note(context, "called")
        phase = "interrupted"
        try:
            retry_delay = os.environ.get("WALL_CLOCK_RETRY_DELAY")
            if retry_delay and context.state is None:
                phase = "retried"
                return Retry(float(retry_delay), state=%r)
            await asyncio.sleep(float(os.environ["WALL_CLOCK_WORK_SECONDS"]))  # never time.sleep under libfaketime
            phase = "returned"
            return {"done": "1"}
        finally:
            note(context, phase)
""" % (RETRY_STATE,)  # noqa: UP031 - the source's own braces stay as they are


@dataclass(frozen=True)
class Scenario:
    offset: int
    """Seconds the faked replica's wall clock is stepped by."""
    second_replica: bool = False
    """Start an un-faked replica B on the same queue right after the step."""
    retry_delay: float | None = None
    """The first call returns ``Retry(retry_delay, state=RETRY_STATE)``; the step comes while that link waits."""

    @property
    def expected_calls(self) -> list[tuple[str, object]]:
        """(replica, state) of every call expected: all on replica A."""
        return [("A", None)] if self.retry_delay is None else [("A", None), ("A", RETRY_STATE)]


SCENARIOS = {
    "back-90s-while-leased-second-replica-polls": Scenario(offset=-90, second_replica=True),
    "forward-12h-while-leased": Scenario(offset=12 * 3600),
    "forward-90s-while-retry-waits": Scenario(offset=90, retry_delay=5),
}


@pytest.fixture(scope="module")
def libfaketime(tmp_path_factory: pytest.TempPathFactory, moto_server: str) -> None:
    """Set-up: libfaketime is installed and fakes the wall clock only, in a Python child that still runs asyncio,
    threads and aiohttp."""
    check_libfaketime(tmp_path_factory.mktemp("libfaketime"), moto_server)


def read_calls(path: Path) -> list[dict[str, Any]]:
    """The handler's notes, in order: ``{"replica", "phase", "state", "wall", "monotonic"}`` each."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


@dataclass
class Stage:
    """A queue, the emulator, the handler plugin under ``root``, and the replicas started on them."""

    root: Path
    queue_url: str
    sqs: Any
    emulator: ThreadedEmulatorServer
    sagemaker: SageMakerClient
    replicas: list[Replica] = field(default_factory=list)

    @property
    def calls_file(self) -> Path:
        return self.root / "calls.jsonl"

    def calls(self) -> list[dict[str, Any]]:
        return read_calls(self.calls_file)

    def start_execution(self) -> str:
        definition = one_step_definition(self.queue_url, outputs={"done": "String"})
        return start_execution(self.sagemaker, create_pipeline(self.sagemaker, definition))

    def status(self, arn: str) -> str:
        return str(self.sagemaker.describe_pipeline_execution(PipelineExecutionArn=arn)["PipelineExecutionStatus"])

    def queue_depth(self) -> int:
        """Visible + in flight + delayed messages."""
        names = [
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ]
        attributes = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=names)["Attributes"]
        return sum(int(attributes[name]) for name in names)

    def replica(self, name: str, scenario: Scenario, clock: SteppedClock | None) -> Replica:
        """Start replica ``name`` of the worker, its wall clock on ``clock`` (None: the real one)."""
        env = worker_env(
            self.root,
            queue_url=self.queue_url,
            handler="wallclock",
            visibility_timeout=str(VISIBILITY),
            # One slot: while its handler runs a replica does not poll, so a message that reappears goes to the
            # other replica (with more slots, A may receive it again itself and join its own running handler).
            concurrency="1",
            wait_time="2",
            shutdown_grace="2",
            log_format="json",
            signing_key=TEST_SIGNING_KEY.decode(),  # shared, as deploy/ ships it: each takes the other's links
        )
        env["AWS_ENDPOINT_URL_SAGEMAKER"] = self.emulator.endpoint_url
        env.update(WALL_CLOCK_REPLICA=name, WALL_CLOCK_CALLS=str(self.calls_file), WALL_CLOCK_WORK_SECONDS=str(WORK))
        if scenario.retry_delay is not None:
            env.update(WALL_CLOCK_RETRY_DELAY=str(scenario.retry_delay), WALL_CLOCK_WORK_SECONDS="0")
        if clock is not None:
            env.update(clock.env())
        started = Replica(name, env, clock)
        self.replicas.append(started)
        return started

    def logs(self) -> str:
        return "\n".join(replica.describe() for replica in self.replicas)


@pytest.fixture
def stage(
    tmp_path: Path,
    queue_url: str,
    sqs_client: Any,
    threaded_emulator: ThreadedEmulatorServer,
    sagemaker_client: SageMakerClient,
) -> Iterator[Stage]:
    """The handler plugin written, nothing started; replicas still running afterwards are killed."""
    make_plugin(tmp_path, "wall-clock-plugin", {"wallclock": "WallClockProbe"}, PLUGIN)
    stage = Stage(tmp_path, queue_url, sqs_client, threaded_emulator, sagemaker_client)
    try:
        yield stage
    finally:
        for replica in stage.replicas:
            replica.kill()


def place_fault(stage: Stage, a: Replica, clock: SteppedClock, scenario: Scenario) -> None:
    """Step A's wall clock once its handler runs under its lease (or, with a Retry, once the continuation waits in
    the queue). With VISIBILITY 6 the first renewal round is due ~2.6 s after the receive; the step comes within a
    poll (0.05 s) of the handler's first note. A step back keeps every lease taken before it from looking due for
    90 s, wherever it falls between two rounds."""
    eventually(lambda: len(stage.calls()) >= 1 or not a.running(), within=30, every=0.05)
    if not stage.calls():
        pytest.fail(f"replica A never called the handler\n{stage.logs()}")
    if scenario.retry_delay is not None:
        eventually(lambda: a.logged("re-queued") or not a.running(), within=20, every=0.05)
        if not a.logged("re-queued"):
            pytest.fail(f"replica A never re-queued the handler's Retry\n{stage.logs()}")
    phases = [call["phase"] for call in stage.calls()]
    if phases != (["called"] if scenario.retry_delay is None else ["called", "retried"]):
        pytest.fail(f"the step would not come where the scenario places it, the handler noted {phases}\n{stage.logs()}")
    clock.step(scenario.offset)


def check_fault_reached(stage: Stage, scenario: Scenario) -> None:
    """A's wall clock moved by the offset against its monotonic clock between its handler's first and last note;
    B (if any) was polling."""
    on_a = [call for call in stage.calls() if call["replica"] == "A"]
    skews = [call["wall"] - call["monotonic"] for call in on_a]
    moved = skews[-1] - skews[0] if len(skews) >= 2 else None
    if moved is None or abs(moved - scenario.offset) > 2:
        pytest.fail(
            f"A's wall clock moved {moved} s, not {scenario.offset:+d} s: the fault was not placed\n{stage.logs()}"
        )
    if scenario.second_replica and not stage.replicas[1].logged("worker started"):
        pytest.fail(f"replica B never started polling; nothing could take the message from A\n{stage.logs()}")


@dataclass
class Outcome:
    """What the run left: the calls, the step, the execution, the queue, the exit codes."""

    calls: list[tuple[str, object]]
    waited: float | None
    """Seconds (A's monotonic clock) from the handler's Retry to its next call; None without a Retry."""
    redelivered: list[str]
    """Log lines with ``receive_count`` 2 or more: SQS delivered a message again (a lease lapsed)."""
    step_status: object
    outputs: dict[str, str]
    failure_reason: object
    status: str
    ended: bool
    depth: int
    exits: dict[str, int | None]

    def problems(self, scenario: Scenario) -> list[str]:
        problems: list[str] = []
        if self.calls != scenario.expected_calls:
            problems.append(
                f"the handler was called {len(self.calls)} time(s), as (replica, state): {self.calls}; "
                f"expected {scenario.expected_calls}"
            )
        if scenario.retry_delay is not None and self.waited is not None and self.waited < scenario.retry_delay - 1:
            problems.append(f"the continuation ran {self.waited:.1f} s after the Retry, before its delay")
        if self.redelivered:
            problems.append("SQS delivered the message again (a lease lapsed):\n" + "\n".join(self.redelivered))
        if (self.step_status, self.outputs) != ("Succeeded", {"done": "1"}):
            problems.append(
                f"step A is {self.step_status} with outputs {self.outputs}, failure reason {self.failure_reason!r}; "
                "expected Succeeded with the handler's {'done': '1'}"
            )
        if self.status != "Succeeded":
            problems.append(f"the execution is {self.status}{'' if self.ended else ' (it did not end within 45 s)'}")
        if self.depth:
            problems.append(f"the queue still holds {self.depth} message(s)")
        if any(code != 0 for code in self.exits.values()):
            problems.append(f"the replicas did not all exit 0 on SIGTERM: {self.exits}")
        return problems


def finish(stage: Stage, arn: str) -> Outcome:
    """Wait for the execution to end and the queue to drain (liveness only, generous), SIGTERM every replica, and
    read what is left."""
    ended = eventually(lambda: stage.status(arn) in TERMINAL, within=45, every=0.2)
    if ended:
        eventually(lambda: stage.queue_depth() == 0, within=20, every=0.2)
    exits = {replica.name: replica.stop() for replica in stage.replicas}
    step = list_steps(stage.sagemaker, arn).get("A", {})
    pairs = step.get("Metadata", {}).get("Callback", {}).get("OutputParameters", [])
    notes = stage.calls()
    retried = [note["monotonic"] for note in notes if note["phase"] == "retried"]
    later = [note["monotonic"] for note in notes if note["phase"] == "called" and note["state"] is not None]
    return Outcome(
        calls=[(note["replica"], note["state"]) for note in notes if note["phase"] == "called"],
        waited=later[0] - retried[0] if retried and later else None,
        redelivered=[
            f"    {replica.name}: {event}"
            for replica in stage.replicas
            for event in replica.events()
            if isinstance(event.get("receive_count"), int) and event["receive_count"] >= 2
        ],
        step_status=step.get("StepStatus"),
        outputs={pair["Name"]: pair["Value"] for pair in pairs},
        failure_reason=step.get("FailureReason"),
        status=stage.status(arn),
        ended=ended,
        depth=stage.queue_depth(),
        exits=exits,
    )


@pytest.mark.parametrize("scenario", list(SCENARIOS.values()), ids=list(SCENARIOS))
def test_a_wall_clock_step_leaves_leases_budget_and_waits_alone(
    scenario: Scenario, libfaketime: None, stage: Stage, tmp_path: Path
) -> None:
    clock = SteppedClock(tmp_path / "faketime-offset")
    a = stage.replica("A", scenario, clock)
    arn = stage.start_execution()
    place_fault(stage, a, clock, scenario)
    if scenario.second_replica:
        stage.replica("B", scenario, None)
    outcome = finish(stage, arn)
    check_fault_reached(stage, scenario)
    notes = "\n".join(f"    {call}" for call in stage.calls())
    problems = outcome.problems(scenario)
    assert not problems, "\n".join(["", *problems, f"handler notes:\n{notes}", stage.logs()])
