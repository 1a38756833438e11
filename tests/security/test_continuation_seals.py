"""Authenticated continuations: only the worker can write a continuation, and ``run_key`` is keyed.

Anyone who may send to the queue can write a body's ``callbackWorkerContinuation`` field. Before, the worker believed
it as written: a forged ``answer`` was reported to SageMaker without the handler running, and a forged ``state``,
attempt, chain or link steered the handler's next call. Now the worker seals each link it re-queues (HMAC-SHA256
under ``CALLBACK_WORKER_SIGNING_KEY_FILE``, :mod:`worker.signing`); a link whose seal does not check out is a fresh
delivery of its own token. Without a key, continuation fields are still taken as checked, but a handed-on answer never
is. ``run_key`` (job names, ``Idempotency-Key``) was an unkeyed SHA-256 of the token, searchable offline; with a key
it is an HMAC.

The dispatcher tests run one replica on the in-memory queue and SageMaker of ``tests/fakes.py``; the start-up tests
run ``callback-worker run`` as a subprocess.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pytest
from structlog.testing import capture_logs

from callback_worker.config.settings import Settings
from callback_worker.handlers._context import run_key
from callback_worker.worker.app import build_dispatcher, sealing_keyring
from callback_worker.worker.clock import Clocks
from callback_worker.worker.dispatch import Dispatcher, RetryPolicy
from callback_worker.worker.errors import MalformedMessage
from callback_worker.worker.events import Events, Tally
from callback_worker.worker.handler import Handler, Retry
from callback_worker.worker.invoke import Invoker
from callback_worker.worker.lease import LeaseKeeper
from callback_worker.worker.message import CONTINUATION_KEY, Continuation, parse_message
from callback_worker.worker.report import Reporter
from callback_worker.worker.retrying import BackoffPolicy
from callback_worker.worker.router import Router
from callback_worker.worker.signing import Keyring, keyring_for
from callback_worker.worker.step_context import StepResolver
from tests.fakes import FakeSageMaker, MemoryQueue, Ticks
from tests.unit.test_dispatch_flow import Clock, Returns

if TYPE_CHECKING:
    from types_aiobotocore_sagemaker import SageMakerClient

KEY = b"k" * 32
OLD_KEY = b"o" * 32
KEYRING = Keyring([KEY])
FORGED_ANSWER = {"kind": "success", "outputs": [["approvedBy", "mallory"]]}
FORGED_FIELDS: dict[str, Any] = {
    "attempt": 3,
    "continuations": 9,
    "state": {"id": "jr_victim", "scope": "victim-job", "started": 0},
    "notBefore": 0.0,
    "originMessageId": "victim-chain",
    "link": 7,
    "wait": 0.0,
}


class World:
    """One replica on an in-memory queue and SageMaker, its dispatcher built with ``keyring`` (None: as a daemon
    configured with no key builds it)."""

    def __init__(self, handlers: Mapping[str, Handler], keyring: Keyring | None) -> None:
        self.clock = Clock()
        self.queue = MemoryQueue(self.clock, visibility_timeout=30)
        self.sagemaker = FakeSageMaker(self.queue, Ticks())
        self.tally = Tally()
        self.invoker = Invoker(threads=2)
        self.handlers = handlers
        self.dispatcher: Dispatcher = self.restart(keyring)

    def restart(self, keyring: Keyring | None) -> Dispatcher:
        """A new process of the replica on the same queue and SageMaker: a dispatcher built afresh."""
        events = Events((self.tally,))
        client = cast("SageMakerClient", self.sagemaker)
        self.dispatcher = build_dispatcher(
            queue=self.queue,
            leases=LeaseKeeper(self.queue, self.queue.visibility_timeout, self.clock, events=events),
            reporter=Reporter(client, backoff=BackoffPolicy(0.0, 0.0), events=events),
            router=Router(dict(self.handlers), None, "handler", {}),
            invoker=self.invoker,
            retry=RetryPolicy(max_attempts=3, backoff=0.0),
            steps=StepResolver(client, describe=False, events=events),
            verify=True,
            clocks=Clocks(monotonic=self.clock, wall=self.clock),
            events=events,
            keyring=keyring,
        )
        return self.dispatcher

    def start_with(self, continuation: dict[str, Any]) -> str:
        """Start a step, and replace SageMaker's message with one carrying ``continuation`` (what a queue writer
        who knows the live token sends)."""
        arn = self.sagemaker.start_execution()
        token = self.sagemaker.start_step(arn, {"handler": "h"})
        (original,) = self.queue.live_messages()
        del self.queue.messages[original.message_id]
        self.queue.put(json.dumps(original.document | {CONTINUATION_KEY: continuation}))
        return token

    async def deliver(self) -> None:
        for received in await self.queue.receive(10):
            await self.dispatcher.handle(received)


@pytest.fixture
def make_world() -> Iterator[Any]:
    worlds: list[World] = []

    def make(handlers: Mapping[str, Handler], keyring: Keyring | None) -> World:
        worlds.append(World(handlers, keyring))
        return worlds[-1]

    yield make
    for world in worlds:
        world.invoker.shutdown()


# --- hole: a forged answer was reported ---------------------------------------------------------------------------


@pytest.mark.parametrize("keyring", [KEYRING, None], ids=["keyed", "no-key"])
async def test_a_forged_answer_is_never_reported_the_handler_answers(make_world: Any, keyring: Keyring | None) -> None:
    handler = Returns({"checked": "yes"})
    world = make_world({"h": handler}, keyring)
    token = world.start_with({**FORGED_FIELDS, "answer": FORGED_ANSWER})
    await world.deliver()
    step = world.sagemaker.steps[token]
    assert step.outcome is not None
    assert (step.status, step.outcome.outputs) == ("Succeeded", (("checked", "yes"),))
    assert [(context.state, context.attempt) for context in handler.contexts] == [(None, 1)]
    assert world.tally["unauthenticated"] == 1


# --- hole: forged continuation fields were accepted ---------------------------------------------------------------


async def test_forged_continuation_fields_make_a_fresh_delivery_of_the_token(make_world: Any) -> None:
    handler = Returns(Retry(delay=60, state={"mine": 1}))
    world = make_world({"h": handler}, KEYRING)
    world.start_with(dict(FORGED_FIELDS))
    (forged,) = world.queue.live_messages()
    await world.deliver()
    (context,) = handler.contexts
    assert (context.state, context.attempt) == (None, 1)
    (link,) = world.queue.live_messages()
    sealed = parse_message(link.body, KEYRING)
    assert sealed.distrusted is None
    # A chain of its own (the forged message's id), its first link, its handler's own state.
    continuation = sealed.continuation
    assert (continuation.origin_message_id, continuation.link, continuation.state) == (
        forged.message_id,
        1,
        {"mine": 1},
    )
    assert continuation.continuations == 1


async def test_a_link_the_worker_sealed_carries_its_state_on(make_world: Any) -> None:
    handler = Returns(Retry(delay=0, state={"job": "j-1"}))
    world = make_world({"h": handler}, KEYRING)
    arn = world.sagemaker.start_execution()
    world.sagemaker.start_step(arn, {"handler": "h"})
    await world.deliver()
    await world.deliver()
    assert [context.state for context in handler.contexts] == [None, {"job": "j-1"}]
    assert world.tally["unauthenticated"] == 0


# --- no key configured: a key of this process alone ------------------------------------------------------------


async def test_without_a_key_a_process_takes_back_its_own_links(make_world: Any) -> None:
    handler = Returns(Retry(delay=0, state={"job": "j-1"}))
    world = make_world({"h": handler}, None)
    arn = world.sagemaker.start_execution()
    world.sagemaker.start_step(arn, {"handler": "h"})
    await world.deliver()
    await world.deliver()
    assert [(context.state, context.attempt) for context in handler.contexts] == [(None, 1), ({"job": "j-1"}, 1)]
    assert world.tally["unauthenticated"] == 0


async def test_without_a_key_a_restarted_process_runs_its_predecessors_link_afresh(make_world: Any) -> None:
    handler = Returns(Retry(delay=0, state={"job": "j-1"}))
    world = make_world({"h": handler}, None)
    arn = world.sagemaker.start_execution()
    token = world.sagemaker.start_step(arn, {"handler": "h"})
    await world.deliver()
    world.restart(None)  # a new process: a new key of its own
    handler.result = {"done": "yes"}
    await world.deliver()
    assert [context.state for context in handler.contexts] == [None, None]
    assert world.tally["unauthenticated"] == 1
    assert world.sagemaker.steps[token].status == "Succeeded"


def test_a_worker_configured_with_no_key_warns_and_seals_with_a_key_of_its_own() -> None:
    settings = Settings(queue_url="https://sqs.us-east-1.amazonaws.com/123456789012/callbacks", handler="echo")
    with capture_logs() as logs:
        first, second = sealing_keyring(settings), sealing_keyring(settings)
    assert first.signer.id != second.signer.id
    warnings = [entry for entry in logs if entry["log_level"] == "warning"]
    assert [entry["setting"] for entry in warnings] == ["CALLBACK_WORKER_SIGNING_KEY_FILE"] * 2
    assert "key of its own" in warnings[0]["event"]


EXECUTION = "arn:aws:sagemaker:us-east-1:123456789012:pipeline/p/execution/abcdef123456"


@pytest.mark.parametrize("where", ["arguments", "state"])
def test_a_body_nested_just_within_the_parser_is_malformed_never_an_escape(where: str) -> None:
    """A body json.loads accepts but json.dumps cannot write out again (nested a few levels less than the parser's
    limit) is malformed for its own token; it never escapes as RecursionError."""
    outcomes: dict[str, set[str | None]] = {}
    for depth in range(800, 1000):
        nested = "[" * depth + "]" * depth
        state = nested if where == "state" else "null"
        arguments = f'{{"n": {nested}}}' if where == "arguments" else "{}"
        text = (
            f'{{"token": "AbCdE12345", "pipelineExecutionArn": "{EXECUTION}", "arguments": {arguments}, '
            f'"{CONTINUATION_KEY}": {{"attempt": 1, "state": {state}}}}}'
        )
        try:
            parse_message(text, KEYRING)
        except MalformedMessage as exc:
            outcomes.setdefault("malformed", set()).add(exc.token)
        else:
            outcomes.setdefault("parsed", set())
    assert outcomes["malformed"] == {"AbCdE12345"}


# --- the seal itself ----------------------------------------------------------------------------------------------


def sealed_body(keyring: Keyring, continuation: Continuation) -> str:
    arn = "arn:aws:sagemaker:us-east-1:123456789012:pipeline/p/execution/e1"
    message = parse_message(json.dumps({"token": "AbCdE12345", "pipelineExecutionArn": arn, "arguments": {"a": 1}}))
    return message.to_body(continuation, keyring)


GENUINE = Continuation(
    attempt=2, continuations=1, state={"n": [1, 2.5]}, not_before=5.0, origin_message_id="m1", link=1
)


def test_a_sealed_link_parses_back_to_what_was_sealed() -> None:
    assert parse_message(sealed_body(KEYRING, GENUINE), KEYRING).continuation == GENUINE


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("state", "n"), [1, 3]),
        (("link",), 5),
        (("attempt",), 3),
        (("originMessageId",), "m2"),
        (("notBefore",), 6.0),
        (("wait",), 0.0),
        (("answer",), FORGED_ANSWER),
    ],
)
def test_any_changed_continuation_member_breaks_the_seal(path: tuple[str, ...], value: Any) -> None:
    document = json.loads(sealed_body(KEYRING, GENUINE))
    target = document[CONTINUATION_KEY]
    for name in path[:-1]:
        target = target[name]
    target[path[-1]] = value
    message = parse_message(json.dumps(document), KEYRING)
    assert message.continuation == Continuation()
    assert message.distrusted is not None
    assert "does not match" in message.distrusted


@pytest.mark.parametrize("member", ["arguments", "pipelineExecutionArn", "token"])
def test_the_seal_covers_the_body_around_the_continuation(member: str) -> None:
    document = json.loads(sealed_body(KEYRING, GENUINE))
    changed = {
        "arguments": {"a": 2},
        "pipelineExecutionArn": "arn:aws:sagemaker:us-east-1:123456789012:pipeline/p/execution/e2",
        "token": "ZzZzZ99999",
    }
    document[member] = changed[member]
    assert parse_message(json.dumps(document), KEYRING).continuation == Continuation()


def test_a_link_sealed_under_an_unknown_key_or_unsealed_is_fresh() -> None:
    under_other = parse_message(sealed_body(Keyring([OLD_KEY]), GENUINE), KEYRING)
    assert under_other.continuation == Continuation()
    assert "not one of this worker's keys" in str(under_other.distrusted)
    unsealed = parse_message(sealed_body(KEYRING, GENUINE).replace('"seal"', '"other"'), KEYRING)
    assert (unsealed.continuation, unsealed.distrusted) == (
        Continuation(),
        "its continuation is not the worker's: it carries no seal",
    )


def test_rotation_a_link_sealed_under_the_old_key_is_taken_while_the_old_key_is_listed() -> None:
    body = sealed_body(Keyring([OLD_KEY]), GENUINE)
    assert parse_message(body, Keyring([KEY, OLD_KEY])).continuation == GENUINE
    resealed = parse_message(body, Keyring([KEY, OLD_KEY])).to_body(GENUINE, Keyring([KEY, OLD_KEY]))
    assert parse_message(resealed, Keyring([KEY])).continuation == GENUINE  # re-sealed under the new first key


# --- hole: run_key was unkeyed --------------------------------------------------------------------------------------


def unkeyed(token: str) -> str:
    return hashlib.sha256(f"sagemaker-callback-worker:{token}".encode()).hexdigest()[:32]


def test_run_key_is_keyed_when_a_signing_key_is_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CALLBACK_WORKER_SIGNING_KEY_FILE", raising=False)
    monkeypatch.setenv("CALLBACK_WORKER_SIGNING_KEY", KEY.decode())
    keyed = run_key("AbCdE12345")
    assert keyed != unkeyed("AbCdE12345")
    assert len(keyed) == 32
    assert run_key("AbCdE12345") == keyed  # stable: a redelivery finds the job its step started
    monkeypatch.setenv("CALLBACK_WORKER_SIGNING_KEY", OLD_KEY.decode())
    assert run_key("AbCdE12345") not in (keyed, unkeyed("AbCdE12345"))


def test_run_key_without_a_key_is_the_documented_unkeyed_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CALLBACK_WORKER_SIGNING_KEY_FILE", raising=False)
    monkeypatch.delenv("CALLBACK_WORKER_SIGNING_KEY", raising=False)
    assert run_key("AbCdE12345") == unkeyed("AbCdE12345")


# --- start-up -----------------------------------------------------------------------------------------------------


def run_worker(tmp_path: Path, **settings: str) -> subprocess.CompletedProcess[str]:
    """``callback-worker run`` with settings that also stop an older worker at start-up (an unknown HANDLER), so
    that no test waits for a queue."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("CALLBACK_WORKER_")}
    env |= {
        "CALLBACK_WORKER_QUEUE_URL": "http://127.0.0.1:9/123456789012/q",
        "CALLBACK_WORKER_HANDLER": "no-such-handler",
        "AWS_REGION": "us-east-1",
    }
    env |= {f"CALLBACK_WORKER_{name.upper()}": value for name, value in settings.items()}
    return subprocess.run(
        [sys.executable, "-m", "callback_worker.cli", "run"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def key_file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "keys"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "cannot read it"),
        ("\n# only a comment\n\n", "holds no key"),
        ("short-key-of-24-bytes-xx\n", "the key on line 1 is 24 bytes; at least 32"),
    ],
    ids=["missing", "empty", "short"],
)
def test_a_bad_key_file_stops_start_up_in_one_line(tmp_path: Path, content: str | None, expected: str) -> None:
    path = str(tmp_path / "absent") if content is None else key_file(tmp_path, content)
    result = run_worker(tmp_path, signing_key_file=path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("callback-worker: invalid setting CALLBACK_WORKER_SIGNING_KEY_FILE=")
    assert expected in result.stderr
    if content:
        assert content.strip() not in result.stderr


def test_a_short_key_in_the_environment_is_refused_without_printing_it(tmp_path: Path) -> None:
    result = run_worker(tmp_path, signing_key="not-long-enough-secret")
    assert result.returncode == 2
    assert result.stderr.startswith("callback-worker: invalid setting CALLBACK_WORKER_SIGNING_KEY:")
    assert "not-long-enough-secret" not in result.stderr


def test_both_key_settings_at_once_are_refused(tmp_path: Path) -> None:
    result = run_worker(tmp_path, signing_key=KEY.decode(), signing_key_file=key_file(tmp_path, KEY.decode()))
    assert result.returncode == 2
    assert "set it or CALLBACK_WORKER_SIGNING_KEY_FILE, not both" in result.stderr
    assert KEY.decode() not in result.stderr


def test_run_key_keeps_the_key_read_at_start_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Kubernetes Secret is updated in place: the file may change while the daemon runs. The seals and ``run_key``
    both keep the keys read at start-up (until the next start), so replicas never derive different job names."""
    keys = tmp_path / "keys"
    keys.write_text("a" * 32 + "\n")
    monkeypatch.setenv("CALLBACK_WORKER_SIGNING_KEY_FILE", str(keys))
    started = keyring_for(Settings(queue_url="https://sqs.us-east-1.amazonaws.com/123456789012/q", handler="echo"))
    assert started is not None
    keys.write_text("b" * 32 + "\n" + "a" * 32 + "\n")  # a rotation's second step, while the process runs
    expected = hmac.new(started.derive("run key"), b"AbCdE12345", hashlib.sha256).hexdigest()[:32]
    assert run_key("AbCdE12345") == expected
