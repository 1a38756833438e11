"""Shared pieces of the benchmark run: LocalStack, the emulator, queues prefilled with callback messages, and
measurements of one consumer process (callbacks/s, CPU per callback, latency, peak RSS) read from /proc."""

from __future__ import annotations

import asyncio
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

from aiobotocore.session import get_session

from callback_worker.emulator.server import EmulatorServer
from callback_worker.offline import offline_aws_env

ROOT = Path(__file__).resolve().parents[1]
ROLE_ARN = "arn:aws:iam::123456789012:role/bench"
TICKS = os.sysconf("SC_CLK_TCK")
AWS_ENV = offline_aws_env()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def localstack() -> AsyncIterator[str]:
    """LocalStack SQS on a free loopback port, stopped afterwards (exactly the instance started here)."""
    port = free_port()
    run_dir = Path(tempfile.mkdtemp(prefix="bench-localstack-"))
    env = {**os.environ, "LOCALSTACK_RUN_DIR": str(run_dir)}
    started = await asyncio.to_thread(
        subprocess.run,
        [str(ROOT / "scripts" / "localstack-start"), str(port)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if started.returncode != 0:
        raise RuntimeError(f"LocalStack did not start: {started.stderr.strip()}")
    try:
        yield started.stdout.strip().splitlines()[-1]
    finally:
        await asyncio.to_thread(stop_process, int((run_dir / "localstack.pid").read_text()))
        shutil.rmtree(run_dir, ignore_errors=True)


def stop_process(pid: int, grace: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if ``pid`` is still there after ``grace`` seconds (LocalStack can ignore SIGTERM)."""
    try:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return  # exited; only its parent (not us) can reap it
            time.sleep(0.2)
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, FileNotFoundError):
        return


def process_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def process_peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


@dataclass
class Result:
    name: str
    callbacks: int
    seconds: float
    cpu_seconds: float
    peak_rss_mb: float
    latencies_ms: list[float] = field(default_factory=list)
    lookups: int = 0
    """ListPipelineExecutionSteps and DescribePipelineExecution calls the consumer made (token verification)."""

    @property
    def rate(self) -> float:
        return self.callbacks / self.seconds if self.seconds else float("nan")

    @property
    def cpu_ms_per_callback(self) -> float:
        return 1000 * self.cpu_seconds / self.callbacks if self.callbacks else float("nan")

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "callbacks": self.callbacks,
            "seconds": round(self.seconds, 3),
            "callbacks_per_s": round(self.rate, 1),
            "cpu_ms_per_callback": round(self.cpu_ms_per_callback, 3),
            "cpu_s_per_1000": round(self.cpu_ms_per_callback, 3),
            "peak_rss_mb": round(self.peak_rss_mb, 1),
            "latency_p50_ms": round(percentile(self.latencies_ms, 0.5), 1),
            "latency_p99_ms": round(percentile(self.latencies_ms, 0.99), 1),
            "lookups_per_callback": round(self.lookups / self.callbacks, 3) if self.callbacks else float("nan"),
        }


def median_result(results: list[Result]) -> dict[str, Any]:
    """Per-field medians of several runs of one consumer."""
    rows = [result.summary() for result in results]
    merged: dict[str, Any] = {"name": rows[0]["name"], "runs": len(rows)}
    for key in rows[0]:
        if key != "name":
            merged[key] = statistics.median(row[key] for row in rows)
    return merged


class Bench:
    """The servers of one benchmark run: LocalStack SQS and the emulator on this process's loop."""

    def __init__(self, emulator: EmulatorServer, sqs_url: str) -> None:
        self.emulator = emulator
        self.sqs_url = sqs_url
        self.env = {**AWS_ENV, "AWS_ENDPOINT_URL_SQS": sqs_url, "AWS_ENDPOINT_URL_SAGEMAKER": emulator.endpoint_url}

    async def new_queue(self) -> str:
        async with get_session().create_client("sqs", endpoint_url=self.sqs_url) as sqs:
            return str((await sqs.create_queue(QueueName=f"bench-{uuid.uuid4().hex[:8]}"))["QueueUrl"])

    async def new_pipeline(self, queue_url: str) -> str:
        """A one-step callback pipeline sending to ``queue_url`` (empty arguments, no outputs); its name."""
        name = f"bench-{uuid.uuid4().hex[:8]}"
        step = {"Name": "Work", "Type": "Callback", "SqsQueueUrl": queue_url, "Arguments": {}, "OutputParameters": []}
        definition = json.dumps({"Version": "2020-12-01", "Steps": [step]})
        async with self.sagemaker_client() as sagemaker:
            await sagemaker.create_pipeline(PipelineName=name, PipelineDefinition=definition, RoleArn=ROLE_ARN)
        return name

    def sagemaker_client(self) -> Any:
        return get_session().create_client("sagemaker", endpoint_url=self.emulator.endpoint_url)

    async def staged_bodies(self, count: int) -> list[str]:
        """``count`` real callback messages (fresh tokens), taken off a staging queue nobody else reads."""
        staging = await self.new_queue()
        pipeline = await self.new_pipeline(staging)
        async with self.sagemaker_client() as sagemaker:
            semaphore = asyncio.Semaphore(32)

            async def start() -> None:
                async with semaphore:
                    await sagemaker.start_pipeline_execution(PipelineName=pipeline)

            await asyncio.gather(*(start() for _ in range(count)))
        await self.emulator.wait_idle()
        bodies: list[str] = []
        async with get_session().create_client("sqs", endpoint_url=self.sqs_url) as sqs:
            while len(bodies) < count:
                response = await sqs.receive_message(QueueUrl=staging, MaxNumberOfMessages=10, WaitTimeSeconds=1)
                messages = response.get("Messages", [])
                bodies.extend(message["Body"] for message in messages)
                if messages:
                    entries: list[Any] = [
                        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
                    ]
                    await sqs.delete_message_batch(QueueUrl=staging, Entries=entries)
        return bodies

    async def fill(self, queue_url: str, bodies: list[str]) -> None:
        """Put ``bodies`` on the queue as fast as SQS takes them (batches of ten, eight at a time)."""
        async with get_session().create_client("sqs", endpoint_url=self.sqs_url) as sqs:
            semaphore = asyncio.Semaphore(8)

            async def send(chunk: list[str]) -> None:
                async with semaphore:
                    entries: list[Any] = [{"Id": str(i), "MessageBody": body} for i, body in enumerate(chunk)]
                    await sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)

            await asyncio.gather(*(send(bodies[i : i + 10]) for i in range(0, len(bodies), 10)))

    async def feed(self, queue_url: str, bodies: list[str], rate: float, batch: int = 10) -> dict[str, float]:
        """Send ``bodies`` at ``rate`` per second, ``batch`` per SendMessageBatch (a light load for the feeder
        itself); returns each token's send time."""
        sent: dict[str, float] = {}
        async with get_session().create_client("sqs", endpoint_url=self.sqs_url) as sqs:
            loop = asyncio.get_running_loop()
            begin = loop.time()
            pending = []

            async def send(chunk: list[str]) -> None:
                started = time.time()
                entries: list[Any] = [{"Id": str(i), "MessageBody": body} for i, body in enumerate(chunk)]
                await sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
                for body in chunk:
                    sent[json.loads(body)["token"]] = started

            for index in range(0, len(bodies), batch):
                await asyncio.sleep(max(0.0, begin + index / rate - loop.time()))
                pending.append(asyncio.create_task(send(bodies[index : index + batch])))
            await asyncio.gather(*pending)
        return sent

    def answer_times(self, tokens: list[str]) -> dict[str, float]:
        """When SageMaker (the emulator) recorded each answered token's outcome."""
        times = {}
        for token in tokens:
            found = self.emulator.store.tokens.get(token)
            if found is not None and found[1].end_time is not None:
                times[token] = found[1].end_time
        return times

    def spawn(self, command: list[str], extra_env: Mapping[str, str]) -> subprocess.Popen[bytes]:
        env = {**os.environ, **self.env, **extra_env}
        return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    async def measure(
        self, name: str, command: list[str], extra_env: Mapping[str, str], count: int, rate: float | None = None
    ) -> Result:
        """Run one consumer over ``count`` fresh callbacks: prefilled (rate None) or fed at ``rate`` per second."""
        bodies = await self.staged_bodies(count)
        tokens = [json.loads(body)["token"] for body in bodies]
        queue_url = await self.new_queue()
        if rate is None:
            await self.fill(queue_url, bodies)
        env = {**extra_env, "BENCH_QUEUE_URL": queue_url, "CALLBACK_WORKER_QUEUE_URL": queue_url}
        lookups_before = self.lookups()
        process = self.spawn(command, env)
        sent: dict[str, float] = {}
        try:
            if rate is not None:
                await asyncio.sleep(3)  # let the consumer start and open its long polls before the clock runs
                feeding = asyncio.create_task(self.feed(queue_url, bodies, rate))
            first_cpu = await self._first_answer(process, tokens)
            while len(self.answer_times(tokens)) < count:
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited with {process.returncode}")
                await asyncio.sleep(0.1)
            last_cpu = process_cpu_seconds(process.pid)
            rss = process_peak_rss_mb(process.pid)
            if rate is not None:
                sent = await feeding
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(process.wait, 30)
            except subprocess.TimeoutExpired:
                process.kill()
                await asyncio.to_thread(process.wait)
        answered = self.answer_times(tokens)
        latencies = [1000 * (answered[token] - sent[token]) for token in sent]
        return Result(
            name,
            count,
            max(answered.values()) - min(answered.values()),
            last_cpu - first_cpu,
            rss,
            latencies,
            self.lookups() - lookups_before,
        )

    def lookups(self) -> int:
        calls = self.emulator.calls
        return calls["ListPipelineExecutionSteps"] + calls["DescribePipelineExecution"]

    async def _first_answer(self, process: subprocess.Popen[bytes], tokens: list[str]) -> float:
        """CPU seconds of the consumer when the first answer arrives, sampled as it happens."""
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"consumer exited with {process.returncode}")
            if self.answer_times(tokens):
                return process_cpu_seconds(process.pid)
            await asyncio.sleep(0.005)


def python(*arguments: str) -> list[str]:
    return [sys.executable, *arguments]


def machine() -> dict[str, Any]:

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
        "aiobotocore": version("aiobotocore"),
        "botocore": version("botocore"),
        "boto3": version("boto3"),
        "worker": version("sagemaker-callback-worker"),
        "date": time.strftime("%Y-%m-%d"),
    }
