"""The worker's error tree: one root, one subclass per kind of trouble.

Handler-facing control flow (:class:`worker.handler.Fail`, :class:`worker.handler.Retry`) lives apart from these:
those are how a handler speaks, these are how the worker reports that something is wrong. Elsewhere under the root:
:class:`worker.queue.BatchEntryError` (one entry of an SQS batch call failed), :class:`worker.step_context.LookupFailed`
and the built-in ``http`` handler's ``HttpCallError``. The settings layer below raises
:class:`config.errors.SettingsError`, which :class:`ConfigurationError` also is. The emulator is a separate package
with its own root (:class:`emulator.errors.EmulatorError`).
"""

from __future__ import annotations

from callback_worker.config.errors import SettingsError


class WorkerError(Exception):
    """Root of every error the worker raises on purpose."""


class ConfigurationError(WorkerError, SettingsError):
    """A setting is missing or invalid, or the queue cannot be used; start-up stops with this message.

    Also a :class:`config.errors.SettingsError`, the error the settings layer raises on its own.
    """


class PluginError(WorkerError):
    """A handler plugin could not be loaded, or two plugins claim one name."""


class DuplicateHandlerName(PluginError):
    """Two entry points claim one handler name: neither is used (which one a message meant cannot be known)."""


class MalformedMessage(WorkerError):
    """An SQS body that is not a usable callback message.

    ``token`` is set when the body carried a well-formed callback token despite its other faults: such a message can
    still be answered with a Failure that says what was wrong. Without a token nothing can be answered, and the
    message is left to the queue's redrive policy.
    """

    def __init__(self, reason: str, *, token: str | None = None, pipeline_execution_arn: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.token = token
        self.pipeline_execution_arn = pipeline_execution_arn
