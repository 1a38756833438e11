"""The ``echo`` handler: succeeds at once with one output per argument.

Scalars are converted as every output is (``bool`` → ``true``/``false``, numbers as decimal text); lists, objects
and ``null`` become compact JSON. The routing argument (``CALLBACK_WORKER_HANDLER_ARGUMENT``) is left out.
"""

from __future__ import annotations

import json
import os

from callback_worker.worker.handler import CallbackContext, OutputValue


class EchoHandler:
    """Answers every callback with its own arguments."""

    def __init__(self, routing_argument: str | None = None) -> None:
        self.routing_argument = routing_argument or os.environ.get("CALLBACK_WORKER_HANDLER_ARGUMENT", "handler")

    async def __call__(self, context: CallbackContext) -> dict[str, OutputValue]:
        outputs: dict[str, OutputValue] = {}
        for name, value in context.arguments.items():
            if name == self.routing_argument:
                continue
            if isinstance(value, str | int | float | bool):
                outputs[name] = value
            else:
                outputs[name] = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        return outputs
