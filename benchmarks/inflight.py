"""In-flight scale: many messages held at once by an async handler, leases renewed while they wait."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import tempfile
import time
import urllib.request
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
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {match[1]: float(match[2]) for match in re.finditer(r"^(callback_worker_[a-z_]+) ([0-9.e+-]+)$", text, re.M)}


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
    process = bench.spawn(python("-m", "worker.cli", "run"), env)
    started = time.monotonic()
    try:
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
        "peak_rss_mb": round(rss, 1),
        "messages_received": metrics.get("callback_worker_messages_received_total"),
        "duplicate_handler_runs": metrics.get("callback_worker_messages_received_total", 0) - messages,
        "visibility_extensions": metrics.get("callback_worker_visibility_extensions_total"),
        "visibility_extension_calls": extension_calls,
        "extension_calls_per_minute": round(extension_calls / (hold_seconds / 60), 1),
        "loop_lag_ms": {
            "p50": percentile(lags, 0.5),
            "p99": percentile(lags, 0.99),
            "max": max(lags) if lags else None,
        },
    }
