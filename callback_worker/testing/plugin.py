"""The pytest plugin of the testing kit (entry point ``pytest11``: ``callback_worker``), loaded by every pytest run
where the package is installed: it only declares fixtures, and imports the worker when a test first asks for one.

* ``callback_context`` — a factory: ``callback_context({"dataset": "s3://b/k"}, state={"job": "j-1"})`` is a
  :class:`~callback_worker.CallbackContext` with defaults for the fields not given
  (:func:`callback_worker.testing.context.make_context`).
* ``callback_harness`` — a factory: ``callback_harness(handler, **options)`` is a
  :class:`~callback_worker.testing.harness.CallbackHarness` whose ``run_sync(arguments)`` (or ``await run(...)``)
  runs the handler through the worker's dispatcher, in memory, and returns what SageMaker saw.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import Callable

    from callback_worker.testing.harness import CallbackHarness
    from callback_worker.worker.handler import CallbackContext, Handler


@pytest.fixture
def callback_context() -> Callable[..., CallbackContext]:
    """A factory of handler contexts: positional ``arguments``, any context field as a keyword."""
    from callback_worker.testing.context import make_context  # noqa: PLC0415 - plugins load in every pytest run

    return make_context


@pytest.fixture
def callback_harness() -> Callable[..., CallbackHarness]:
    """A factory of harnesses: ``callback_harness(handler, name="approval", max_attempts=2, ...)``."""
    from callback_worker.testing.harness import CallbackHarness  # noqa: PLC0415 - plugins load in every pytest run

    def build(handler: Handler, **options: Any) -> CallbackHarness:
        return CallbackHarness(handler, **options)

    return build
