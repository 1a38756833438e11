"""In-flight scale: many messages held at once by an async handler, leases renewed while they wait."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.harness import Bench, free_port, percentile, process_peak_rss_mb, python

ENTRY_POINTS = "[callback_worker.handlers]\nhold = benchmarks.hold:HoldHandler\n"


def plugin_path() -> Path:
    """A directory holding a distribution whose entry point registers the ``hold`` handler."""
    root = Path(tempfile.mkdtemp(prefix="bench-plugin-"))
    info = root / "callback_worker_bench-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: callback-worker-bench\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    return root


def scrape(port: int) -> dict[str, float]:
    """The worker's metrics by series (``name`` or ``name{labels}``)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    pattern = r"^(callback_worker_[a-z_]+(?:\{[^}]*\})?) ([0-9.e+-]+|\+Inf)$"
    return {match[1]: float(match[2]) for match in re.finditer(pattern, text, re.M)}


def lag_between(before: dict[str, float], after: dict[str, float]) -> dict[str, Any]:
    """Event-loop lag samples taken between two scrapes: how many, and the bucket bounds of their p50 and p99."""
    prefix = 'callback_worker_event_loop_lag_seconds_bucket{le="'
    bounds = sorted((float(key[len(prefix) : -2]), key) for key in after if key.startswith(prefix))
    counts = [(bound, after[key] - before.get(key, 0.0)) for bound, key in bounds]
    total = counts[-1][1] if counts else 0.0

    def bound_of(fraction: float) -> float | None:
        return next((1000 * bound for bound, count in counts if count >= fraction * total), None) if total else None

    return {"samples": total, "p50_ms_at_most": bound_of(0.5), "p99_ms_at_most": bound_of(0.99)}


async def wait_for(port: int, process: Any, ready: Callable[[dict[str, float]], bool]) -> dict[str, float]:
    """Scrape every half second until ``ready`` holds; the metrics that made it hold."""
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"worker exited with {process.returncode}")
        try:
            metrics = await asyncio.to_thread(scrape, port)
        except OSError:
            metrics = {}
        if metrics and ready(metrics):
            return metrics
        await asyncio.sleep(0.5)


async def in_flight_scale(bench: Bench, messages: int, hold_seconds: float) -> dict[str, Any]:
    bodies = await bench.staged_bodies(messages)
    tokens = [json.loads(body)["token"] for body in bodies]
    queue_url = await bench.new_queue()
    await bench.fill(queue_url, bodies)
    port = free_port()
    env = {
        "BENCH_QUEUE_URL": queue_url,
        "CALLBACK_WORKER_QUEUE_URL": queue_url,
        "CALLBACK_WORKER_HANDLER": "hold",
        "CALLBACK_WORKER_CONCURRENCY": str(messages + 100),
        "CALLBACK_WORKER_VISIBILITY_TIMEOUT": "30",
        "CALLBACK_WORKER_POLLERS": "4",
        "CALLBACK_WORKER_HEALTH_PORT": str(port),
        "CALLBACK_WORKER_LOG_LEVEL": "WARNING",
        "BENCH_HOLD_SECONDS": str(hold_seconds),
        "PYTHONPATH": str(plugin_path()),
    }
    process = bench.spawn(python("-m", "callback_worker.cli", "run"), env)
    started = time.monotonic()
    received = "callback_worker_messages_received_total"
    try:
        await wait_for(port, process, lambda metrics: metrics.get(received, 0) > 0)
        first_received = time.monotonic()
        holding = await wait_for(port, process, lambda metrics: metrics.get(received, 0) >= messages)
        all_received = time.monotonic()
        await asyncio.sleep(max(0.0, first_received + hold_seconds - 2 - time.monotonic()))
        held_metrics = await asyncio.to_thread(scrape, port)
        while len(bench.answer_times(tokens)) < messages:
            if process.poll() is not None:
                raise RuntimeError(f"worker exited with {process.returncode}")
            await asyncio.sleep(1)
        held = time.monotonic() - started
        metrics = await asyncio.to_thread(scrape, port)
        rss = process_peak_rss_mb(process.pid)
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.to_thread(process.wait, 60)
    lags = [
        float(pair["Value"])
        for token in tokens
        for pair in (bench.emulator.store.tokens[token][1].outputs or [])
        if pair["Name"] == "lag_ms"
    ]
    extension_calls = metrics.get("callback_worker_visibility_extension_calls_total", 0.0)
    return {
        "messages": messages,
        "hold_seconds": hold_seconds,
        "visibility_timeout": 30,
        "wall_seconds": round(held, 1),
        "receive_seconds": round(all_received - first_received, 1),
        "peak_rss_mb": round(rss, 1),
        "messages_received": metrics.get("callback_worker_messages_received_total"),
        "duplicate_handler_runs": metrics.get("callback_worker_messages_received_total", 0) - messages,
        "visibility_extensions": metrics.get("callback_worker_visibility_extensions_total"),
        "visibility_extension_calls": extension_calls,
        "extension_calls_per_minute": round(extension_calls / (hold_seconds / 60), 1),
        "loop_lag_while_holding": lag_between(holding, held_metrics),
        "loop_lag_ms": {
            "p50": percentile(lags, 0.5),
            "p99": percentile(lags, 0.99),
            "max": max(lags) if lags else None,
        },
    }
