"""The worker's settings: one pydantic-settings model, read from ``CALLBACK_WORKER_*`` environment variables.

AWS region, endpoints and credentials are deliberately absent: they come from the standard AWS environment
(``AWS_REGION``, ``AWS_ENDPOINT_URL_SQS``, ``AWS_ENDPOINT_URL_SAGEMAKER``, credentials chain) so that the worker runs
the same way as every other AWS program in the same pod or task.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from callback_worker.config.errors import SettingsError
from callback_worker.config.limits import MAX_VISIBILITY_SECONDS, MAX_WAIT_SECONDS

ENV_PREFIX = "CALLBACK_WORKER_"


class Settings(BaseSettings):
    """Settings of ``callback-worker run``. Each field is read from ``CALLBACK_WORKER_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True, env_ignore_empty=True)

    queue_url: Annotated[str, Field(min_length=1, description="URL of the SQS queue the callback steps send to.")]
    handler: Annotated[
        str | None,
        Field(
            default=None,
            min_length=1,
            description="Name of the handler for messages that do not name one. Unset: every message must name "
            "its handler in the routing argument.",
        ),
    ]
    handler_argument: Annotated[
        str,
        Field(
            default="handler",
            min_length=1,
            description="Step argument whose value, when present, names the handler for that message.",
        ),
    ]
    step_context: Annotated[
        bool,
        Field(
            default=False,
            description="Look up each token's step name and the execution's experiment config in SageMaker "
            "(ListPipelineExecutionSteps, DescribePipelineExecution; cached per execution).",
        ),
    ]
    verify_tokens: Annotated[
        bool,
        Field(
            default=True,
            description="Before a handler first runs for a token, and before each continuation wakes, confirm "
            "with ListPipelineExecutionSteps (cached per execution for 2 s) that the token's step exists and is "
            "still Executing; unknown tokens and finished steps run no handler. Also cancels a long-running "
            "handler whose step was stopped or answered elsewhere. Costs one call per execution per check.",
        ),
    ]
    routes: Annotated[
        dict[str, str],
        NoDecode,
        Field(
            default_factory=dict,
            description='JSON object routing by pipeline and step: {"PIPELINE/STEP": "handler"}; either part may '
            "be `*`, a key without `/` means every step of that pipeline. Step keys need STEP_CONTEXT.",
        ),
    ]
    handlers: Annotated[
        tuple[str, ...] | None,
        NoDecode,
        Field(
            default=None,
            description="Comma-separated names of the handlers messages may run (an allowlist). A message naming "
            "any other handler is answered with a Failure and nothing runs. Unset: every loaded handler.",
        ),
    ]
    concurrency: Annotated[
        int, Field(default=10, ge=1, le=100_000, description="Maximum number of messages handled at once.")
    ]
    visibility_timeout: Annotated[
        int,
        Field(
            default=60,
            ge=3,
            le=MAX_VISIBILITY_SECONDS,
            description="Seconds a received message stays hidden; the lease is renewed while its handler runs.",
        ),
    ]
    max_attempts: Annotated[
        int,
        Field(
            default=3,
            ge=1,
            le=100,
            description="Handler calls that may crash before the step is answered with a Failure.",
        ),
    ]
    retry_backoff: Annotated[
        float,
        Field(
            default=2.0,
            ge=0,
            le=3600,
            description="Base delay in seconds before a crashed handler is called again; doubles per attempt, "
            "up to an hour.",
        ),
    ]
    shutdown_grace: Annotated[
        float,
        Field(
            default=30.0,
            ge=0,
            le=3600,
            description="Seconds in-flight handlers may finish after SIGTERM before they are cancelled.",
        ),
    ]
    health_port: Annotated[
        int, Field(default=0, ge=0, le=65_535, description="Port of /healthz, /readyz and /metrics; 0 turns it off.")
    ]
    health_host: Annotated[
        str,
        Field(
            default="127.0.0.1",
            min_length=1,
            description="Address the health port listens on. The image and the deployments in deploy/ set "
            "`0.0.0.0`, so that probes and Prometheus reach the container on its own address.",
        ),
    ]
    log_format: Annotated[
        Literal["json", "console"], Field(default="json", description="`json` for machines, `console` for people.")
    ]
    log_level: Annotated[
        Literal["DEBUG", "INFO", "WARNING", "ERROR"], Field(default="INFO", description="Lowest level logged.")
    ]
    wait_time: Annotated[
        int,
        Field(
            default=MAX_WAIT_SECONDS,
            ge=0,
            le=MAX_WAIT_SECONDS,
            description="Seconds a receive long-polls for messages before it returns empty.",
        ),
    ]
    pollers: Annotated[
        int,
        Field(
            default=1,
            ge=1,
            le=100,
            description="Receive calls kept open at once; more help throughput when handlers are fast.",
        ),
    ]
    sagemaker_max_rps: Annotated[
        float | None,
        Field(
            default=None,
            gt=0,
            le=10_000,
            description="Most SageMaker calls per second this process makes (reports, token verification, step "
            "look-ups together). Unset: no fixed cap; the adaptive limiter alone slows the calls down when "
            "SageMaker throttles them. Set it where other programs share the account's SageMaker budget.",
        ),
    ]

    signing_key_file: Annotated[
        str | None,
        Field(
            default=None,
            min_length=1,
            description="File of keys that seal the worker's own continuations (HMAC-SHA256), one a line, each at "
            "least 32 bytes: the first signs, every one verifies (add the new key below the old, then move it to the "
            "top). With a key, a continuation that is not sealed under one of them is run as a fresh delivery of its "
            "token, and run_key is keyed. Unset (and no SIGNING_KEY): continuations are checked, not authenticated, "
            "and handed-on answers are not accepted.",
        ),
    ]
    signing_key: Annotated[
        SecretStr | None,
        Field(
            default=None,
            description="The same keys as SIGNING_KEY_FILE, given in the environment (a secret the platform "
            "injects, such as an ECS secret); set one of the two.",
        ),
    ]

    @field_validator("queue_url")
    @classmethod
    def _standard_queue(cls, value: str) -> str:
        if value.rstrip("/").endswith(".fifo"):
            raise ValueError(
                "FIFO queues cannot take callback messages: SageMaker sends them without a MessageGroupId, and "
                "the worker re-queues continuations with DelaySeconds, which FIFO queues refuse; use a standard queue"
            )
        return value

    @field_validator("routes", mode="before")
    @classmethod
    def _decode_routes(cls, value: object) -> object:
        return decode_json(value)

    @field_validator("routes")
    @classmethod
    def _routes_are_usable(cls, value: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        normalised: dict[str, str] = {}
        for key, handler in value.items():
            pipeline, _, step = key.partition("/")
            if not pipeline or not handler:
                raise ValueError(f"route {key!r}: expected PIPELINE or PIPELINE/STEP mapped to a handler name")
            if step not in ("", "*") and not info.data.get("step_context"):
                raise ValueError(
                    f"route {key!r} names a step; set {ENV_PREFIX}STEP_CONTEXT=true so step names are looked up"
                )
            normalised[f"{pipeline.lower()}/{step or '*'}"] = handler
        return normalised

    @field_validator("handlers", mode="before")
    @classmethod
    def _split_handlers(cls, value: object) -> object:
        return value.split(",") if isinstance(value, str) else value

    @field_validator("handlers")
    @classmethod
    def _handlers_cover_the_settings(
        cls, value: tuple[str, ...] | None, info: ValidationInfo
    ) -> tuple[str, ...] | None:
        if value is None:
            return None
        names = tuple(sorted({name.strip() for name in value}))
        if not names or "" in names:
            raise ValueError("expected comma-separated handler names, none of them empty")
        for setting, handler in _named_handlers(info.data):
            if handler not in names:
                raise ValueError(
                    f"{env_name(setting)} names handler {handler!r}, which is not in this allowlist; "
                    "every handler the settings name must be allowed"
                )
        return names

    @field_validator("wait_time")
    @classmethod
    def _poll_fits_the_lease(cls, value: int, info: ValidationInfo) -> int:
        visibility = info.data.get("visibility_timeout")
        if visibility is not None and visibility < value:
            raise ValueError(
                f"longer than {env_name('visibility_timeout')}={visibility}: SQS does not say when within a long "
                "poll it handed a message out, and the worker counts the lease from the poll's return; a visibility "
                "timeout shorter than the poll could lapse before the first renewal. Set the visibility timeout to "
                "at least the wait time"
            )
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower_format(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("queue_url")
    @classmethod
    def _queue_url_is_url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("must be an http(s) URL such as https://sqs.us-east-1.amazonaws.com/123456789012/q")
        return value


def decode_json(value: object) -> object:
    """A ``mode="before"`` validator body: JSON text is decoded, anything else passes unchanged. Decoding in the
    field's own validator reports text that is not JSON like any other bad value (one line naming the variable)
    rather than by pydantic-settings' own decoder (a traceback). The handlers' settings use it too."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not valid JSON ({exc.msg} at character {exc.pos})") from None
    return value


def _named_handlers(values: dict[str, Any]) -> list[tuple[str, str]]:
    """(setting, handler name) for every handler that ``values`` (the settings validated so far) name."""
    named = [("handler", values["handler"])] if values.get("handler") is not None else []
    return named + [("routes", handler) for handler in values.get("routes", {}).values()]


def env_name(field_name: str) -> str:
    """The environment variable that sets ``field_name``."""
    return f"{ENV_PREFIX}{field_name.upper()}"


def load_settings() -> Settings:
    """Read settings from the environment, or raise :class:`SettingsError` naming the first bad setting."""
    try:
        return Settings()
    except ValidationError as exc:
        error = exc.errors()[0]
        name = env_name(str(error["loc"][0])) if error["loc"] else ENV_PREFIX + "*"
        if error["type"] == "missing":
            raise SettingsError(f"missing setting {name}: {_describe(str(error['loc'][0]))}") from None
        if len(error["loc"]) > 1:  # one entry of a JSON object or list: name it rather than show its value alone
            part = "route" if error["loc"][0] == "routes" else "entry"
            entry = f"{part} {error['loc'][1]!r}: {error['msg']} (got {error.get('input')!r})"
            raise SettingsError(f"invalid setting {name}: {entry}") from None
        raise SettingsError(f"invalid setting {name}={error.get('input')!r}: {error['msg']}") from None


def _describe(field_name: str) -> str:
    info = Settings.model_fields[field_name]
    return info.description or "required"
