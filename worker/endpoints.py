"""``/healthz``, ``/readyz`` and ``/metrics`` on one small HTTP port (``CALLBACK_WORKER_HEALTH_PORT``).

- ``/healthz``: 200 while the event loop answers and the pollers make progress (a receive finished recently, or every
  slot is busy so not receiving is right); 503 when they are stuck. Liveness probes restart a stuck worker.
- ``/readyz``: 200 as soon as handlers are loaded and the queue check at start-up passed (SQS answered
  ``GetQueueAttributes``; the first long poll need not have returned), then while SQS and SageMaker answer the
  worker's calls; 503 while either is unreachable (5xx or no answer: the worker keeps its leases and retries
  meanwhile) and from the moment a drain begins.
- ``/metrics``: Prometheus text format.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

from callback_worker.worker.metrics import CONTENT_TYPE, Metrics
from callback_worker.worker.worker import Worker


def health_app(worker: Worker, metrics: Metrics) -> web.Application:
    """The aiohttp application serving the three endpoints for ``worker``."""
    health = worker.health

    async def healthz(_: web.Request) -> web.Response:
        return _status(health.is_alive(), {"alive": health.is_alive(), "saturated": health.saturated})

    async def readyz(_: web.Request) -> web.Response:
        details = {
            "ready": health.is_ready(),
            "running": health.running,
            "draining": health.draining,
            "sqs_reachable": health.sqs_reachable,
            "sagemaker_reachable": health.sagemaker(),
        }
        return _status(health.is_ready(), details)

    async def metrics_page(_: web.Request) -> web.Response:
        return web.Response(body=metrics.render(), headers={"Content-Type": CONTENT_TYPE})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_page)
    return app


def _status(ok: bool, details: dict[str, bool]) -> web.Response:
    return web.Response(status=200 if ok else 503, text=json.dumps(details), content_type="application/json")


@asynccontextmanager
async def serve_health(worker: Worker, host: str, port: int) -> AsyncIterator[int]:
    """Serve the endpoints on ``host:port`` (0: a free port) while inside the block; yields the bound port."""
    runner = web.AppRunner(health_app(worker, Metrics(worker)), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    try:
        yield int(runner.addresses[0][1])
    finally:
        await runner.cleanup()
