"""Operator commands of ``callback-worker``: look at executions and waiting callback steps, answer one by hand, and
rescue the callback messages that fell into the dead-letter queue.

========================================================  ============================================================
command                                                   what it does
========================================================  ============================================================
``describe EXECUTION_ARN``                                status, failure reason, experiment config and times
``steps EXECUTION_ARN``                                   every started step: status, queue, token (partly), outputs
``pending [--pipeline NAME]... [--older-than DURATION]``  callback steps still waiting, across running executions
                                                          (``--older-than 90m``: only those started before that)
``succeed TOKEN [--output NAME=VALUE]...``                answer a step with a Success
``fail TOKEN --reason TEXT``                              answer a step with a Failure
``send-test-message --queue-url URL [...]``               put a well-formed callback message on a queue
``dlq list [--queue-url URL]``                            the messages of the dead-letter queue named by the
                                                          queue's redrive policy: execution, step, receive count,
                                                          age, why (when the body says), token (partly)
``dlq answer SELECTION (--reason T | --succeed [...])``   answer the steps of the selected messages (``--all``,
                                                          ``--execution-arn``, ``--message-id``), then delete the
                                                          messages; ``--dry-run`` sends nothing
``dlq redrive [--dry-run]``                               move the messages back to the source queue
========================================================  ============================================================

Every command prints an aligned, human-readable view by default and JSON with ``--json``. JSON keeps the API's member
names and gives timestamps in ISO 8601. No output ever shows a callback token whole: only ``succeed`` and ``fail``
take one, as input. AWS settings come from the standard AWS environment (``AWS_REGION``,
``AWS_ENDPOINT_URL_SAGEMAKER``, ``AWS_ENDPOINT_URL_SQS``, the credentials chain).

The ``dlq`` commands take the source queue from ``--queue-url`` or ``CALLBACK_WORKER_QUEUE_URL``. ``list`` holds the
messages it reads for a moment only and releases them (:mod:`~callback_worker.ops.queues`); ``answer`` is idempotent
(:mod:`~callback_worker.ops.dlq`); ``redrive`` uses ``StartMessageMoveTask`` where SQS offers it and receive / send /
delete elsewhere, holding Ctrl-C between a send and its delete (:mod:`~callback_worker.ops.redrive`).

``succeed`` and ``fail`` check what they send as the worker does (token pattern, at most 50 outputs, names up to 256
and values up to 1,024 characters, a reason of 1-256 characters) and send the worker's deterministic
``ClientRequestToken``: repeating a command, or answering exactly as the worker did, is a harmless replay.

Exit codes (:class:`ExitCode`):

- ``0`` done;
- ``1`` an AWS or other error (access denied, throttled after retries, no connection, no region...);
- ``2`` usage: bad arguments, or a token, output, reason or ARN the rules refuse (nothing is sent), or the service's
  ``ValidationException``;
- ``3`` not found: ``ResourceNotFound`` (unknown execution, pipeline or callback token); a source queue without a
  redrive policy; ``dlq answer`` kept a message (a token SageMaker does not know, or a body without one);
- ``4`` already answered: ``ConflictException`` (the step already has an outcome; nothing changed);
- ``130`` interrupted (Ctrl-C).

Errors are one line on stderr, ``callback-worker: <ErrorCode>: <message>``, with any token masked.
"""

from callback_worker.ops.commands import add_commands, main
from callback_worker.ops.errors import ExitCode

__all__ = ["ExitCode", "add_commands", "main"]
