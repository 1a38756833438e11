"""config/unknown.py: CALLBACK_WORKER_* variables that name no setting, and the closest known name for each."""

from __future__ import annotations

from typing import Annotated

import pytest
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from callback_worker.config.settings import Settings, env_name
from callback_worker.config.unknown import UnknownSetting, known_names, open_namespaces, unknown_settings

WORKER = [env_name(field) for field in Settings.model_fields]
HTTP = ["CALLBACK_WORKER_HTTP_URL", "CALLBACK_WORKER_HTTP_ALLOWED_URLS", "CALLBACK_WORKER_HTTP_TIMEOUT"]


class PluginSettings(BaseSettings):
    """A third-party handler's settings, as a plugin would declare them."""

    model_config = SettingsConfigDict(env_prefix="CALLBACK_WORKER_TESTPLUG_", extra="ignore")

    api_url: Annotated[str, Field(default="")]
    retries: Annotated[int, Field(default=1)]


class OtherProgramSettings(BaseSettings):
    """Settings of some other program in the same process: not ours, not known names."""

    model_config = SettingsConfigDict(env_prefix="OTHER_")

    concurrency: int = 1


@pytest.mark.parametrize(
    ("typo", "closest"),
    [
        ("CALLBACK_WORKER_CONCURENCY", "CALLBACK_WORKER_CONCURRENCY"),
        ("CALLBACK_WORKER_QUEUE", "CALLBACK_WORKER_QUEUE_URL"),
        ("CALLBACK_WORKER_VISIBILITY_TIMOUT", "CALLBACK_WORKER_VISIBILITY_TIMEOUT"),
        ("CALLBACK_WORKER_HANDLER_ARG", "CALLBACK_WORKER_HANDLER_ARGUMENT"),
        ("CALLBACK_WORKER_HTTP_ALLOWD_URLS", "CALLBACK_WORKER_HTTP_ALLOWED_URLS"),
        ("CALLBACK_WORKER_HTPP_URL", "CALLBACK_WORKER_HTTP_URL"),
        ("CALLBACK_WORKER_ZZZ", None),
    ],
)
def test_a_name_that_is_no_setting_is_reported_with_the_closest_one(typo: str, closest: str | None) -> None:
    found = unknown_settings({typo: "1", "CALLBACK_WORKER_QUEUE_URL": "http://q"}, [*WORKER, *HTTP])
    assert found == [UnknownSetting(typo, closest)]


def test_known_names_other_variables_and_open_namespaces_pass() -> None:
    environ = {
        "CALLBACK_WORKER_QUEUE_URL": "http://q",
        "callback_worker_log_level": "debug",  # pydantic-settings reads names case-insensitively
        "CALLBACK_WORKER_HTTP_TIMEOUT": "5",
        "CALLBACK_WORKER_EMULATOR_PORT": "8080",  # the emulator's own
        "CALLBACK_WORKER_MYPLUGIN_ANYTHING": "x",  # a handler whose settings cannot be seen
        "AWS_REGION": "us-east-1",
        "CALLBACK_WORKERS": "3",  # not under the prefix
        "PATH": "/bin",
    }
    assert unknown_settings(environ, [*WORKER, *HTTP], ["CALLBACK_WORKER_MYPLUGIN_"]) == []


def test_several_are_reported_sorted_and_each_says_what_to_do() -> None:
    found = unknown_settings({"CALLBACK_WORKER_B_C": "", "CALLBACK_WORKER_CONCURENCY": "5"}, WORKER)
    assert [item.message() for item in found] == [
        "CALLBACK_WORKER_B_C names no setting and is ignored",
        "CALLBACK_WORKER_CONCURENCY names no setting and is ignored; did you mean CALLBACK_WORKER_CONCURRENCY?",
    ]


def test_known_names_are_those_of_every_settings_model_under_the_prefix() -> None:
    names = known_names()
    assert set(WORKER) <= names
    assert {"CALLBACK_WORKER_TESTPLUG_API_URL", "CALLBACK_WORKER_TESTPLUG_RETRIES"} <= names
    assert "OTHER_CONCURRENCY" not in names
    assert unknown_settings({"CALLBACK_WORKER_TESTPLUG_RETRYS": "2"}, names) == [
        UnknownSetting("CALLBACK_WORKER_TESTPLUG_RETRYS", "CALLBACK_WORKER_TESTPLUG_RETRIES")
    ]


def test_a_handler_owns_its_namespace_only_when_its_settings_are_unseen() -> None:
    known = [*WORKER, *HTTP]
    assert open_namespaces(["http", "my-plugin", "echo", "lambda"], known) == [
        "CALLBACK_WORKER_ECHO_",
        "CALLBACK_WORKER_LAMBDA_",
        "CALLBACK_WORKER_MY_PLUGIN_",
    ]
