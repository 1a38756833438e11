"""sagemaker-callback-worker: the one import package of the distribution.

``callback_worker.worker`` is the daemon, ``callback_worker.handlers`` the built-in handlers,
``callback_worker.config`` the settings and ``callback_worker.emulator`` the local SageMaker Pipelines emulator; the
modules directly here (``cli``, ``demo``, ``ops``) are the face: the ``callback-worker`` command line, the demo and the
operator commands.

The handler SDK is importable from here::

    from callback_worker import CallbackContext, Fail, Retry

It loads on first use, so that importing the emulator (or any one part) does not load the daemon.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from callback_worker.worker.handler import CallbackContext, Fail, Handler, JSONValue, Outputs, Retry, StopHook

__all__ = ["CallbackContext", "Fail", "Handler", "JSONValue", "Outputs", "Retry", "StopHook", "__version__"]

#: The installed distribution's version (``callback-worker --version``).
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("callback_worker.worker.handler"), name)
    raise AttributeError(f"module 'callback_worker' has no attribute {name!r}")
