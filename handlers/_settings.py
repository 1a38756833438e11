"""Settings of the built-in handlers: one pydantic-settings model per handler, prefix ``CALLBACK_WORKER_<HANDLER>_``.

Every handler is built when the worker starts (the registry builds all of them, used or not), so a *bad* value stops
start-up with a :class:`ConfigurationError` naming the variable, while a *missing* required value does not: the handler
is then unconfigured and answers each message routed to it with a Failure naming the variable to set.

JSON-valued settings (lists, objects) are decoded by the field's own validator (``config.settings.decode_json``), so
that a value that is not JSON is reported like any other bad value: with the variable's name.
"""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar

from pydantic import ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from callback_worker.worker.errors import ConfigurationError
from callback_worker.worker.handler import Fail

_SHOWN_INPUT = 80

S = TypeVar("S", bound="HandlerSettings")


class HandlerSettings(BaseSettings):
    """Base of every built-in handler's settings. Subclasses set ``env_prefix``."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True, enable_decoding=False)

    secret_fields: ClassVar[frozenset[str]] = frozenset()
    """Fields whose values never appear in error messages (headers may carry credentials)."""

    @classmethod
    def env_name(cls, field_name: str) -> str:
        """The environment variable that sets ``field_name``."""
        return f"{cls.model_config.get('env_prefix', '')}{field_name.upper()}"

    def require(self, field_name: str) -> Any:
        """The value of an optional setting this call needs, or :class:`Fail` naming the variable to set."""
        value = getattr(self, field_name)
        if value is None:
            description = type(self).model_fields[field_name].description or ""
            raise Fail(f"the handler is not configured: set {self.env_name(field_name)} ({description})")
        return value


def load_settings(cls: type[S]) -> S:
    """Read ``cls`` from the environment, or raise :class:`ConfigurationError` naming the first bad variable."""
    try:
        return cls()
    except ValidationError as exc:
        error = exc.errors()[0]
        field = str(error["loc"][0]) if error["loc"] else ""
        name = cls.env_name(field) if field else f"{cls.model_config.get('env_prefix', '')}*"
        shown = "" if field in cls.secret_fields else f"={_short(error.get('input'))}"
        raise ConfigurationError(f"invalid setting {name}{shown}: {error['msg']}") from None


def split_commas(value: object) -> object:
    """A ``mode="before"`` validator body: comma-separated text becomes a tuple of its non-empty, stripped items;
    anything else passes unchanged."""
    if isinstance(value, str):
        return tuple(item.strip() for item in value.split(",") if item.strip())
    return value


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN_INPUT else text[: _SHOWN_INPUT - 3] + "..."
