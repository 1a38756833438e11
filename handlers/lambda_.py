"""The ``lambda`` handler: invokes an AWS Lambda function synchronously and answers with what it returns.

Settings, arguments, outputs and stop behaviour are documented on :class:`LambdaHandler`.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import ReadTimeoutError
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from callback_worker.handlers._aws import LazyClient, aws_errors
from callback_worker.handlers._context import canonical_json, context_document, object_outputs, preview
from callback_worker.handlers._settings import HandlerSettings, load_settings
from callback_worker.worker.handler import CallbackContext, Fail, OutputValue

if TYPE_CHECKING:
    from types_aiobotocore_lambda import LambdaClient

FUNCTION_ARGUMENT = "lambda_function_name"
CONNECT_TIMEOUT = 10.0


class LambdaSettings(HandlerSettings):
    """Settings of the ``lambda`` handler."""

    model_config = SettingsConfigDict(env_prefix="CALLBACK_WORKER_LAMBDA_")

    function_name: Annotated[
        str | None,
        Field(default=None, min_length=1, max_length=170, description="The function: name, ARN or partial ARN."),
    ]
    qualifier: Annotated[
        str | None,
        Field(
            default=None,
            pattern=r"^[A-Za-z0-9$_-]{1,128}$",
            description="Version or alias to invoke; unset: $LATEST or the ARN's own.",
        ),
    ]
    allow_function_argument: Annotated[
        bool, Field(default=False, description=f"Let the step argument '{FUNCTION_ARGUMENT}' choose the function.")
    ]
    timeout: Annotated[
        float,
        Field(
            default=905.0, ge=1.0, le=3600.0, description="Seconds to wait for the function's answer (read timeout)."
        ),
    ]
    send_token: Annotated[bool, Field(default=False, description="Include the callback token in the payload.")]


class LambdaHandler:
    """The ``lambda`` handler: invokes an AWS Lambda function synchronously and answers with what it returns.

    Settings (environment, prefix ``CALLBACK_WORKER_LAMBDA_``):

    - ``FUNCTION_NAME`` (unset by default): The function: name, ARN or partial ARN.
    - ``QUALIFIER`` (unset by default): Version or alias to invoke; unset: ``$LATEST`` or the ARN's own.
    - ``ALLOW_FUNCTION_ARGUMENT`` (default ``false``): Let the step argument ``lambda_function_name`` choose the
      function.
    - ``TIMEOUT`` (default ``905``): Seconds to wait for the function's answer (1 to 3,600); keep it above the
      function's own timeout (at most 900 s).
    - ``SEND_TOKEN`` (default ``false``): Include the callback token in the payload.

    Payload: the context document (``{"arguments", "pipelineName", "pipelineExecutionArn", "executionId", "attempt"}``,
    plus ``token`` with ``SEND_TOKEN``); step argument ``lambda_function_name`` (when allowed) chooses the function and
    is not passed on.

    Outputs: the function's result, which must be a JSON object (or ``null``/empty: no outputs): scalars as they are,
    lists and objects as compact JSON. A function error (``X-Amz-Function-Error``) fails the step with its ``errorType``
    and ``errorMessage``; no answer within ``TIMEOUT`` fails it naming the setting. Throttling, 5xx and connection
    errors propagate, so the worker calls again with backoff (``CALLBACK_WORKER_MAX_ATTEMPTS``); other Lambda errors (no
    such function, access denied) fail the step.

    **Why synchronous.** An asynchronous (``Event``) invocation returns no handle to poll, so there would be nothing to
    wait for; ``RequestResponse`` keeps the worker's slot (and the message's lease) for at most the function's 15
    minutes. botocore's own retries are off for Invoke: a retried call could run the function twice.

    **Not idempotent, not stoppable.** Lambda has no idempotency token: a message delivered again (a worker that died
    mid-call, a crash retry) invokes the function again, so functions should tolerate that. A running invocation cannot
    be stopped: on Stopping or shutdown the worker stops waiting, and the function runs to its end.

    Permissions: ``lambda:InvokeFunction``. Tested against moto server with ``{"lambda": {"use_docker": false}}`` (a
    successful invocation answering queued results) and against an HTTP-level stub of the Lambda REST API for function
    errors and timeouts, which moto's docker-free Lambda cannot produce.
    """

    def __init__(self) -> None:
        self.settings = load_settings(LambdaSettings)
        config = AioConfig(
            retries={"total_max_attempts": 1},
            connect_timeout=CONNECT_TIMEOUT,
            read_timeout=self.settings.timeout,
        )
        self._client: LazyClient[LambdaClient] = LazyClient(
            lambda: get_session().create_client("lambda", config=config)
        )

    async def aclose(self) -> None:
        """Close the handler's Lambda client."""
        await self._client.aclose()

    def function_name(self, context: CallbackContext) -> str:
        """The function for this step: its ``lambda_function_name`` argument when allowed, else the setting."""
        chosen = context.arguments.get(FUNCTION_ARGUMENT)
        if chosen is not None and self.settings.allow_function_argument:
            if not isinstance(chosen, str) or not chosen:
                raise Fail(f"the step argument {FUNCTION_ARGUMENT!r} must be a non-empty string")
            return chosen
        return str(self.settings.require("function_name"))

    def _overrides(self) -> tuple[str, ...]:
        """The step arguments this handler consumes (and so does not pass on)."""
        return (FUNCTION_ARGUMENT,) if self.settings.allow_function_argument else ()

    async def __call__(self, context: CallbackContext) -> dict[str, OutputValue]:
        function = self.function_name(context)
        document = context_document(context, include_token=self.settings.send_token, exclude=self._overrides())
        request: dict[str, Any] = {
            "FunctionName": function,
            "InvocationType": "RequestResponse",
            "Payload": canonical_json(document).encode(),
        }
        if self.settings.qualifier is not None:
            request["Qualifier"] = self.settings.qualifier
        client = await self._client.get()
        try:
            async with aws_errors(f"Lambda function {function}"):
                response = await client.invoke(**request)
                payload = await response["Payload"].read()
        except ReadTimeoutError:
            raise Fail(
                f"Lambda function {function} did not answer within {self.settings.timeout:g} s "
                f"({LambdaSettings.env_name('timeout')}); it may still be running"
            ) from None
        if response.get("FunctionError"):
            raise Fail(_function_error(function, payload))
        return object_outputs(payload, f"the result of Lambda function {function}")


def _function_error(function: str, payload: bytes) -> str:
    try:
        error = json.loads(payload)
    except ValueError:
        return f"Lambda function {function} failed: {preview(payload, 160)}"
    if not isinstance(error, dict):
        return f"Lambda function {function} failed: {preview(payload, 160)}"
    kind = error.get("errorType") or "error"
    message = error.get("errorMessage") or "no error message"
    return f"Lambda function {function} failed ({kind}): {message}"
