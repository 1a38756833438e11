"""``python -m benchmarks.run``: floor, naive loop and worker side by side on the same servers, then in-flight scale.

Every consumer runs as its own process against LocalStack SQS and the emulator (on this process's loop); figures
come from /proc (CPU, peak RSS) and from the emulator's record of every answered step (rate, latency). See
BENCHMARKS.md for the method and the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

from benchmarks.harness import AWS_ENV, ROOT, Bench, Result, localstack, machine, median_result, percentile, python
from benchmarks.inflight import in_flight_scale
from callback_worker.emulator.server import EmulatorServer

WORKER = python("-m", "callback_worker.cli", "run")
#: Default settings: only the handler is chosen (logs at INFO, as in production, to /dev/null).
WORKER_DEFAULT = {"CALLBACK_WORKER_HANDLER": "echo"}
#: The tuned worker without token verification: what verification costs is the difference to "worker (tuned)".
VERIFY_OFF = "worker (tuned, no verification)"


def consumers(tuned: dict[str, str], floor_loops: list[int]) -> dict[str, tuple[list[str], dict[str, str]]]:
    floors = {
        f"floor x{loops}": (python("-m", "benchmarks.floor"), {"FLOOR_LOOPS": str(loops)}) for loops in floor_loops
    }
    return {
        **floors,
        "naive": (python("-m", "benchmarks.naive"), {}),
        "worker (default)": (WORKER, WORKER_DEFAULT),
        "worker (tuned)": (WORKER, {**WORKER_DEFAULT, **tuned}),
        VERIFY_OFF: (WORKER, {**WORKER_DEFAULT, **tuned, "CALLBACK_WORKER_VERIFY_TOKENS": "false"}),
    }


async def emulator_capacity(bench: Bench, seconds: float = 5.0, concurrency: int = 16) -> float:
    """Requests per second the emulator answers (DescribePipelineExecution), with nothing else running."""
    pipeline = await bench.new_pipeline(await bench.new_queue())
    count = 0
    async with bench.sagemaker_client() as sagemaker:
        arn = (await sagemaker.start_pipeline_execution(PipelineName=pipeline))["PipelineExecutionArn"]
        deadline = time.monotonic() + seconds

        async def hammer() -> None:
            nonlocal count
            while time.monotonic() < deadline:
                await sagemaker.describe_pipeline_execution(PipelineExecutionArn=arn)
                count += 1

        await asyncio.gather(*(hammer() for _ in range(concurrency)))
    return count / seconds


async def main(args: argparse.Namespace) -> dict[str, Any]:
    report: dict[str, Any] = {"machine": machine(), "messages": args.messages, "repeats": args.repeats}
    tuned = dict(item.split("=", 1) for item in args.tuned)
    report["tuned_settings"] = tuned
    os.environ.update(AWS_ENV)  # this process, too, must never reach AWS
    async with localstack() as sqs_url:
        os.environ["AWS_ENDPOINT_URL_SQS"] = sqs_url
        async with EmulatorServer() as emulator:
            return await measure_all(report, Bench(emulator, sqs_url), tuned, args)


async def measure_all(
    report: dict[str, Any], bench: Bench, tuned: dict[str, str], args: argparse.Namespace
) -> dict[str, Any]:
    report["emulator_requests_per_s"] = round(await emulator_capacity(bench), 1)
    print("emulator capacity", report["emulator_requests_per_s"], "req/s", flush=True)
    runs: dict[str, list[Result]] = {}
    for _ in range(args.repeats):
        for name, (command, env) in consumers(tuned, args.floor_loops).items():
            count = args.messages if name != "naive" else max(200, args.messages // 4)
            result = await bench.measure(name, command, env, count)
            runs.setdefault(name, []).append(result)
            print(json.dumps(result.summary()), flush=True)
    medians = {name: median_result(results) for name, results in runs.items()}
    floors = {name: row for name, row in medians.items() if name.startswith("floor x")}
    best = max(floors, key=lambda name: floors[name]["callbacks_per_s"])
    loops = int(best.removeprefix("floor x"))
    report["floor_by_loops"] = floors
    report["floor_loops"] = loops
    report["throughput"] = {"floor": {**floors[best], "name": "floor"}} | {
        name: row for name, row in medians.items() if name not in floors
    }
    if not args.skip_latency:
        report["latency"] = await latency_at_half_load(bench, report["throughput"], tuned, loops, args)
    report["ratios"] = ratios(report["throughput"])
    if not args.skip_inflight:
        report["in_flight"] = await in_flight_scale(bench, args.inflight_messages, args.hold_seconds)
    return report


async def latency_at_half_load(
    bench: Bench, throughput: dict[str, Any], tuned: dict[str, str], loops: int, args: argparse.Namespace
) -> dict[str, Any]:
    """End-to-end latency of the naive loop and of each worker configuration fed at half of its own peak rate, and
    of the floor fed at that same rate: the *added* latency is the difference."""
    runners = consumers(tuned, [loops])
    runners["floor"] = runners.pop(f"floor x{loops}")
    results: dict[str, Any] = {"seconds": args.latency_seconds}
    for name in ("naive", "worker (default)", "worker (tuned)"):
        rate = round(throughput[name]["callbacks_per_s"] / 2)
        row: dict[str, Any] = {"rate_per_s": rate}
        for consumer in ("floor", name):
            result = await bench.measure(consumer, *runners[consumer], int(rate * args.latency_seconds), rate=rate)
            row[consumer] = {
                "p50_ms": round(percentile(result.latencies_ms, 0.5), 1),
                "p99_ms": round(percentile(result.latencies_ms, 0.99), 1),
                "cpu_ms_per_callback": round(result.cpu_ms_per_callback, 3),
            }
            print(name, "at", rate, "/s:", consumer, json.dumps(row[consumer]), flush=True)
        row["added_p50_ms"] = round(row[name]["p50_ms"] - row["floor"]["p50_ms"], 1)
        row["added_p99_ms"] = round(row[name]["p99_ms"] - row["floor"]["p99_ms"], 1)
        results[name] = row
    return results


def ratios(throughput: dict[str, Any]) -> dict[str, float]:
    floor, naive = throughput["floor"], throughput["naive"]
    out: dict[str, float] = {}
    for name in ("worker (default)", "worker (tuned)", VERIFY_OFF):
        worker = throughput[name]
        out[f"{name} / floor callbacks/s"] = round(worker["callbacks_per_s"] / floor["callbacks_per_s"], 3)
        out[f"{name} / floor CPU per callback"] = round(worker["cpu_ms_per_callback"] / floor["cpu_ms_per_callback"], 3)
        out[f"{name} / naive callbacks/s"] = round(worker["callbacks_per_s"] / naive["callbacks_per_s"], 3)
        out[f"{name} / naive CPU per callback"] = round(worker["cpu_ms_per_callback"] / naive["cpu_ms_per_callback"], 3)
    on, off = throughput["worker (tuned)"], throughput[VERIFY_OFF]
    out["verification: extra CPU ms per callback"] = round(on["cpu_ms_per_callback"] - off["cpu_ms_per_callback"], 3)
    out["verification: look-up calls per callback"] = on["lookups_per_callback"]
    return out


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=5000, help="callbacks per throughput run")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each consumer (medians are reported)")
    parser.add_argument("--latency-seconds", type=float, default=10, help="length of each half-load latency run")
    parser.add_argument(
        "--tuned",
        nargs="*",
        default=["CALLBACK_WORKER_CONCURRENCY=100", "CALLBACK_WORKER_POLLERS=2", "CALLBACK_WORKER_LOG_LEVEL=WARNING"],
        help="settings of the tuned worker run",
    )
    parser.add_argument("--inflight-messages", type=int, default=10_000)
    parser.add_argument("--hold-seconds", type=float, default=120)
    parser.add_argument("--skip-inflight", action="store_true")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument(
        "--floor-loops",
        type=int,
        nargs="+",
        default=[2, 8],
        help="receive loops of the floor runs; the best median counts as the floor",
    )
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results" / "latest.json")
    return parser.parse_args()


if __name__ == "__main__":
    arguments = parse_args()
    result = asyncio.run(main(arguments))
    arguments.output.parent.mkdir(parents=True, exist_ok=True)
    arguments.output.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
