"""``CALLBACK_WORKER_*`` environment variables that name no setting: a typo'd setting must not pass silently.

pydantic-settings ignores variables it has no field for, so ``CALLBACK_WORKER_CONCURENCY=50`` would leave the
concurrency at its default without a word. :func:`unknown_settings` finds such variables and, for each, the closest
known name (:func:`difflib.get_close_matches`), for start-up to warn about.

Known names are those of every settings model imported so far whose ``env_prefix`` starts with ``CALLBACK_WORKER_``
(:func:`known_names`): the worker's own and those of the handlers loaded (each handler's settings class reads
``CALLBACK_WORKER_<HANDLER>_*``). A handler whose settings cannot be seen (not loaded, or not a pydantic-settings
model) owns its whole ``CALLBACK_WORKER_<HANDLER>_`` namespace: the caller passes those as ``open_prefixes``, and
:data:`OTHER_PROGRAMS` are the namespaces of this distribution's other programs.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from pydantic_settings import BaseSettings

from callback_worker.config.settings import ENV_PREFIX

#: Namespaces of the distribution's other programs: the SageMaker emulator reads ``CALLBACK_WORKER_EMULATOR_*``.
OTHER_PROGRAMS = (f"{ENV_PREFIX}EMULATOR_",)
#: How alike a name must be (0-1, difflib's ratio) to be offered as "did you mean".
CLOSENESS = 0.6
_NOT_NAME = re.compile(r"[^A-Z0-9]+")


@dataclass(frozen=True, slots=True)
class UnknownSetting:
    """An environment variable in the settings' namespace that names no setting, and the closest known name."""

    name: str
    closest: str | None

    def message(self) -> str:
        """One line for the operator."""
        hint = f"; did you mean {self.closest}?" if self.closest else ""
        return f"{self.name} names no setting and is ignored{hint}"


def unknown_settings(
    environ: Mapping[str, str],
    known: Iterable[str],
    open_prefixes: Iterable[str] = (),
    prefix: str = ENV_PREFIX,
) -> list[UnknownSetting]:
    """The variables of ``environ`` under ``prefix`` that are not ``known`` (case-insensitively, as pydantic-settings
    reads them) and not under one of ``open_prefixes``, sorted by name."""
    exact = {name.upper() for name in known}
    # Compared without the prefix every name shares, which would make any two names look alike.
    suffixes = sorted(name[len(prefix) :] for name in exact if name.startswith(prefix))
    namespaces = tuple(namespace.upper() for namespace in (*OTHER_PROGRAMS, *open_prefixes))
    found = []
    for name in sorted(environ):
        upper = name.upper()
        if not upper.startswith(prefix) or upper in exact or upper.startswith(namespaces):
            continue
        closest = difflib.get_close_matches(upper[len(prefix) :], suffixes, n=1, cutoff=CLOSENESS)
        found.append(UnknownSetting(name, prefix + closest[0] if closest else None))
    return found


def known_names(prefix: str = ENV_PREFIX) -> set[str]:
    """The variable of every field of every settings model imported so far whose ``env_prefix`` starts with
    ``prefix``."""
    return {
        f"{model.model_config.get('env_prefix', '')}{field}".upper()
        for model in _settings_models()
        if str(model.model_config.get("env_prefix", "")).upper().startswith(prefix)
        for field in model.model_fields
    }


def open_namespaces(handler_names: Iterable[str], known: Iterable[str], prefix: str = ENV_PREFIX) -> list[str]:
    """``CALLBACK_WORKER_<HANDLER>_`` of each handler whose settings are not among ``known`` (no known name is in
    that namespace): the handler may read any variable there."""
    known_upper = [name.upper() for name in known]
    namespaces = (f"{prefix}{_NOT_NAME.sub('_', name.upper()).strip('_')}_" for name in handler_names)
    return sorted({space for space in namespaces if not any(name.startswith(space) for name in known_upper)})


def _settings_models() -> Iterator[type[BaseSettings]]:
    pending = list(BaseSettings.__subclasses__())
    seen: set[type[BaseSettings]] = set()
    while pending:
        model = pending.pop()
        if model not in seen:
            seen.add(model)
            pending.extend(model.__subclasses__())
            yield model
