"""The rate-limited scenario: three worker replicas with default settings against an emulator that allows only
``RATE`` ``SendPipelineExecutionStep*`` calls per second (a token bucket per operation, ``--rate-limit 'Send*=RATE'``).

What it measures, for N callbacks prefilled on the queue:

- **Send* attempts per callback**: every Send request the emulator received (throttled ones included) / N;
- **time**: first answer to last answer, against the ideal N / RATE;
- **Failure outcomes**: steps the emulator recorded as Failed (must be 0);
- **lease lapses**: deliveries the workers logged with ``receive_count`` above 1 (a message came back: its lease
  lapsed or it was released), from the replicas' JSON logs;
- look-up calls (token verification) per callback and how many of all calls the emulator throttled.

``python -m benchmarks.ratelimited --rates 25 5 100 --messages 1000`` runs it alone; ``make bench`` runs it after the
throughput runs. ``--variant`` picks the worker's configuration (see :data:`VARIANTS`); ``--worker-source DIR`` runs
the replicas from another source tree (an unpacked earlier commit, for before/after figures).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from benchmarks.harness import AWS_ENV, ROOT, Bench, localstack, machine, python
from callback_worker.emulator.ratelimit import RateLimiter
from callback_worker.emulator.server import EmulatorServer
from callback_worker.emulator.state import StepStatus

SEND_OPERATIONS = ("SendPipelineExecutionStepSuccess", "SendPipelineExecutionStepFailure")
LOOKUP_OPERATIONS = ("ListPipelineExecutionSteps", "DescribePipelineExecution")
#: Worker configurations: the command and its environment beside the defaults (only the handler is chosen).
VARIANTS: dict[str, tuple[list[str], dict[str, str]]] = {
    "default": (python("-m", "callback_worker.cli", "run"), {}),
    # botocore's own adaptive retry mode on the SageMaker client instead of the worker's limiter.
    "botocore-adaptive": (python("-m", "benchmarks.adaptive_worker"), {}),
}
REPLICAS = 3


async def run_scenario(
    bench: Bench,
    rate: float,
    messages: int,
    *,
    variant: str = "default",
    replicas: int = REPLICAS,
    source: Path | None = None,
    keep_logs: Path | None = None,
) -> dict[str, Any]:
    """One run: ``messages`` callbacks on a fresh queue, ``replicas`` workers, Send* limited to ``rate`` per s."""
    bodies = await bench.staged_bodies(messages)
    tokens = [json.loads(body)["token"] for body in bodies]
    queue_url = await bench.new_queue()
    await bench.fill(queue_url, bodies)
    emulator = bench.emulator
    limits = emulator.rate_limits = RateLimiter.from_specs([f"Send*={rate}"])
    calls_before = Counter(emulator.calls)
    command, extra = VARIANTS[variant]
    env = {"CALLBACK_WORKER_HANDLER": "echo", **extra, "CALLBACK_WORKER_QUEUE_URL": queue_url}
    if source is not None:
        env["PYTHONPATH"] = str(source)  # ahead of the installed (editable) package
    logs = [Path(tempfile.mkstemp(prefix=f"bench-rl-{index}-", suffix=".log")[1]) for index in range(replicas)]
    processes = [spawn(bench, command, env, log, cwd=source) for log in logs]
    started = time.time()
    try:
        await wait_answered(bench, tokens, processes)
    finally:
        await stop_all(processes)
        emulator.rate_limits = RateLimiter()
    calls = Counter(emulator.calls) - calls_before
    answered = bench.answer_times(tokens)
    result = {
        "variant": variant,
        "worker_source": str(source) if source is not None else "this tree",
        "replicas": replicas,
        **timing(answered, rate, started),
        **call_figures(calls, messages),
        "send_throttled": sum(limits.throttled.values()),
        "failure_outcomes": failures(bench, tokens),
        **log_figures(logs),
    }
    put_away(logs, keep_logs, f"{variant}-{rate:g}-")
    return result


def timing(answered: Mapping[str, float], rate: float, started: float) -> dict[str, float]:
    """First to last answer (and from the replicas' start) against the ideal N / rate."""
    seconds = max(answered.values()) - min(answered.values())
    ideal = len(answered) / rate
    return {
        "rate_per_s": rate,
        "callbacks": len(answered),
        "seconds_first_to_last_answer": round(seconds, 2),
        "seconds_from_start": round(max(answered.values()) - started, 2),
        "ideal_seconds": round(ideal, 2),
        "time_over_ideal": round(seconds / ideal, 3),
    }


def call_figures(calls: Mapping[str, int], messages: int) -> dict[str, float]:
    """Send* attempts (throttled ones included) and look-ups, in all and per callback."""
    sends = sum(calls[name] for name in SEND_OPERATIONS)
    return {
        "send_attempts": sends,
        "send_attempts_per_callback": round(sends / messages, 3),
        "lookups_per_callback": round(sum(calls[name] for name in LOOKUP_OPERATIONS) / messages, 3),
    }


def put_away(logs: list[Path], keep: Path | None, prefix: str) -> None:
    """Move the replicas' logs into ``keep`` (named ``prefix`` + their name), or delete them."""
    for log in logs:
        if keep is not None:
            keep.mkdir(parents=True, exist_ok=True)
            log.replace(keep / f"{prefix}{log.name}")
        log.unlink(missing_ok=True)


def spawn(
    bench: Bench, command: list[str], extra: Mapping[str, str], log: Path, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    """A replica logging to ``log``; in ``cwd`` when given (``python -m`` puts the working directory first on the
    path, so a replica run from this tree would import this tree's worker whatever ``PYTHONPATH`` says)."""
    env = {**os.environ, **bench.env, **extra}
    with log.open("wb") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=cwd)


async def wait_answered(bench: Bench, tokens: list[str], processes: list[subprocess.Popen[bytes]]) -> None:
    while len(bench.answer_times(tokens)) < len(tokens):
        for process in processes:
            if process.poll() is not None:
                raise RuntimeError(f"a replica exited with {process.returncode}")
        await asyncio.sleep(0.1)


async def stop_all(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            await asyncio.to_thread(process.wait, 60)
        except subprocess.TimeoutExpired:
            process.kill()
            await asyncio.to_thread(process.wait)


def failures(bench: Bench, tokens: list[str]) -> int:
    """Steps the emulator recorded as Failed."""
    found = (bench.emulator.store.tokens.get(token) for token in tokens)
    return sum(1 for entry in found if entry is not None and entry[1].status is StepStatus.FAILED)


def log_figures(logs: list[Path]) -> dict[str, int]:
    """From the replicas' JSON logs: deliveries received more than once, and throttling warnings."""
    redelivered: set[str] = set()
    events: Counter[str] = Counter()
    for log in logs:
        for line in log.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if not isinstance(record, dict):
                continue
            if int(record.get("receive_count") or 1) > 1:
                redelivered.add(str(record.get("message_id")))
            if record.get("level") in ("warning", "error"):
                events[str(record.get("event"))] += 1
    return {"messages_redelivered": len(redelivered), "warnings_and_errors": sum(events.values())}


async def main(args: argparse.Namespace) -> dict[str, Any]:
    report: dict[str, Any] = {"machine": machine(), "messages": args.messages, "runs": []}
    os.environ.update(AWS_ENV)
    async with localstack() as sqs_url:
        os.environ["AWS_ENDPOINT_URL_SQS"] = sqs_url
        async with EmulatorServer() as emulator:
            bench = Bench(emulator, sqs_url)
            for variant in args.variant:
                for rate in args.rates:
                    result = await run_scenario(
                        bench, rate, args.messages, variant=variant, source=args.worker_source, keep_logs=args.keep_logs
                    )
                    print(json.dumps(result), flush=True)
                    report["runs"].append(result)
    return report


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rates", type=float, nargs="+", default=[25.0, 5.0, 100.0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--variant", nargs="+", default=["default"], choices=sorted(VARIANTS))
    parser.add_argument("--worker-source", type=Path, help="run the replicas from this source tree")
    parser.add_argument("--keep-logs", type=Path, help="keep the replicas' JSON logs in this directory")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results" / "ratelimited.json")
    return parser.parse_args()


if __name__ == "__main__":
    arguments = parse_args()
    outcome = asyncio.run(main(arguments))
    arguments.output.parent.mkdir(parents=True, exist_ok=True)
    arguments.output.write_text(json.dumps(outcome, indent=2) + "\n")
