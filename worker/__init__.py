"""The SageMaker Pipelines callback worker.

The handler SDK is importable from here: :class:`CallbackContext`, :class:`Fail`, :class:`Retry`, and the
:class:`Handler` protocol.
"""

from callback_worker.worker.handler import CallbackContext, Fail, Handler, JSONValue, Outputs, Retry, StopHook

__all__ = ["CallbackContext", "Fail", "Handler", "JSONValue", "Outputs", "Retry", "StopHook"]
