"""Settings in the deployment files against the settings model (``config.settings.Settings``).

- every ``CALLBACK_WORKER_*`` name written anywhere in deploy/ or the Dockerfile is a setting of the worker or of a
  built-in handler (``CALLBACK_WORKER_HTTP_HEADERS``) (the emulator's own ``CALLBACK_WORKER_EMULATOR_*`` options
  excepted);
- each deployment sets every required setting, and its values pass the model's validation;
- each deployment's stop timeout leaves the drain its time: SHUTDOWN_GRACE + WAIT_TIME + STOP_MARGIN;
- botocore finds the region in each deployment's environment.
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Callable

import botocore.session
import pytest

from callback_worker.config.settings import Settings, env_name, load_settings
from callback_worker.config.unknown import known_names
from tests.deploy.manifests import (
    DEPLOY,
    DOCKERFILE,
    STOP_MARGIN,
    compose_services,
    ecs_container,
    ecs_env,
    kubernetes_env,
    kubernetes_objects,
    load_image,
    load_json,
    seconds,
)
from tests.deploy.manifests import ECS as ECS_DIR

NAME = re.compile(r"\bCALLBACK_WORKER_[A-Z0-9_]*[A-Z0-9]\b")
EMULATOR_PREFIX = "CALLBACK_WORKER_EMULATOR_"
#: The built-in handlers' modules: importing one registers its settings model (``CALLBACK_WORKER_<HANDLER>_*``).
BUILT_IN_HANDLERS = ("batch", "command", "echo", "glue", "http", "lambda_", "stepfunctions")
for _module in BUILT_IN_HANDLERS:
    importlib.import_module(f"callback_worker.handlers.{_module}")
SETTINGS = {env_name(field) for field in Settings.model_fields} | known_names()
REQUIRED = {env_name(field) for field, info in Settings.model_fields.items() if info.is_required()}


def compose_worker_env() -> dict[str, str]:
    return {str(key): str(value) for key, value in compose_services()["worker"]["environment"].items()}


DEPLOYMENTS: dict[str, Callable[[], dict[str, str]]] = {
    "kubernetes": kubernetes_env,
    "ecs": ecs_env,
    "compose": compose_worker_env,
}


def stop_timeout(deployment: str) -> float:
    """Seconds between the stop signal and the kill in each deployment."""
    if deployment == "kubernetes":
        return float(kubernetes_objects()["Deployment"]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"])
    if deployment == "ecs":
        return float(ecs_container(load_json(ECS_DIR / "task-definition.json"))["stopTimeout"])
    return seconds(compose_services()["worker"]["stop_grace_period"])


def names_in_deployment_files() -> dict[str, set[str]]:
    """Each ``CALLBACK_WORKER_*`` name found, with the files it appears in."""
    files = [DOCKERFILE, *(path for path in DEPLOY.rglob("*") if path.is_file())]
    found: dict[str, set[str]] = {}
    for path in files:
        for name in NAME.findall(path.read_text(errors="replace")):
            if not name.startswith(EMULATOR_PREFIX):
                found.setdefault(name, set()).add(str(path.relative_to(DEPLOY.parent)))
    return found


def test_every_name_used_is_a_setting() -> None:
    found = names_in_deployment_files()
    unknown = {name: sorted(where) for name, where in found.items() if name not in SETTINGS}
    assert not unknown, f"not in config.settings.Settings: {unknown}"
    assert found.keys() >= REQUIRED, "the deployment files never mention a required setting"


@pytest.mark.parametrize("deployment", DEPLOYMENTS)
def test_deployment_sets_every_required_setting(deployment: str) -> None:
    env = DEPLOYMENTS[deployment]()
    missing = REQUIRED - env.keys()
    assert not missing, f"{deployment} does not set {sorted(missing)}"


@pytest.mark.parametrize("deployment", DEPLOYMENTS)
def test_deployment_settings_validate(deployment: str, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_of(deployment, monkeypatch)
    assert settings.health_port != 0, "probes and health checks need the health port on"


def settings_of(deployment: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Load settings as the worker would inside that deployment (the image's ENV first, then the deployment's)."""
    for key in list(os.environ):
        if key.startswith("CALLBACK_WORKER_"):
            monkeypatch.delenv(key)
    environment = {**load_image().env(), **DEPLOYMENTS[deployment]()}
    for key, value in environment.items():
        if key.startswith("CALLBACK_WORKER_"):
            monkeypatch.setenv(key, value)
    return load_settings()


@pytest.mark.parametrize("deployment", DEPLOYMENTS)
def test_stop_timeout_covers_the_drain(deployment: str, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_of(deployment, monkeypatch)
    needed = settings.shutdown_grace + settings.wait_time + STOP_MARGIN
    assert stop_timeout(deployment) > settings.shutdown_grace
    assert stop_timeout(deployment) >= needed, (
        f"{deployment}: stop timeout {stop_timeout(deployment)} s < SHUTDOWN_GRACE {settings.shutdown_grace} "
        f"+ WAIT_TIME {settings.wait_time} + {STOP_MARGIN} s"
    )


@pytest.mark.parametrize("deployment", DEPLOYMENTS)
def test_botocore_finds_the_region(deployment: str, monkeypatch: pytest.MonkeyPatch) -> None:
    env = DEPLOYMENTS[deployment]()
    for key in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    for key in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        if key in env:
            monkeypatch.setenv(key, env[key])
    region = botocore.session.get_session().get_config_variable("region")
    assert region is not None, f"{deployment}: botocore reads AWS_DEFAULT_REGION; set it"
    assert region == env.get("AWS_REGION", region), f"{deployment}: AWS_REGION and AWS_DEFAULT_REGION differ"
