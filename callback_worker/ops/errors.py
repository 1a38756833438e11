"""Exit codes of the operator commands and the errors that carry them."""

from __future__ import annotations

from enum import IntEnum

from callback_worker.worker.errors import WorkerError


class ExitCode(IntEnum):
    """What an operator command's exit status means."""

    OK = 0
    ERROR = 1
    """An AWS or other error."""
    USAGE = 2
    """Bad arguments or input (nothing was sent), or the service's ValidationException. argparse uses 2 too."""
    NOT_FOUND = 3
    """ResourceNotFound: no such execution, pipeline or callback token."""
    CONFLICT = 4
    """ConflictException: the step already has an outcome."""
    INTERRUPTED = 130
    """Ctrl-C (128 + SIGINT), as shells report it."""


class OperatorError(WorkerError):
    """An operator command cannot go on; the message is the one line printed, ``exit_code`` the status."""

    exit_code: ExitCode = ExitCode.ERROR


class UsageError(OperatorError):
    """An argument breaks the rules; nothing was sent."""

    exit_code = ExitCode.USAGE


class NotFoundError(OperatorError):
    """What the command names does not exist."""

    exit_code = ExitCode.NOT_FOUND


class ConflictError(OperatorError):
    """The step already has an outcome; nothing was sent."""

    exit_code = ExitCode.CONFLICT
