"""Every setting of the worker whose value is JSON text: text that is not JSON stops start-up with one line naming the
variable (exit 2 from the command line), never pydantic-settings' traceback."""

from __future__ import annotations

import typing

import pytest

from callback_worker.config.errors import SettingsError
from callback_worker.config.settings import Settings, env_name, load_settings

QUEUE = "https://sqs.us-east-1.amazonaws.com/123456789012/callbacks"


def json_settings() -> list[str]:
    """The worker's settings whose value is JSON text (mappings and lists, not comma-separated names)."""
    return [
        name
        for name, field in Settings.model_fields.items()
        if typing.get_origin(field.annotation) in (dict, list) or field.annotation in (dict, list)
    ]


@pytest.mark.parametrize("name", json_settings())
def test_a_json_setting_that_is_not_json_is_one_line_naming_it(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(env_name("queue_url"), QUEUE)
    monkeypatch.setenv(env_name(name), "{bad")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert str(caught.value).startswith(f"invalid setting {env_name(name)}='{{bad': ")
    assert "not valid JSON" in str(caught.value)


def test_routes_are_a_json_setting() -> None:
    assert "routes" in json_settings()


def test_a_route_whose_handler_is_no_string_names_the_route(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(env_name("queue_url"), QUEUE)
    monkeypatch.setenv(env_name("routes"), '{"p/s": 5}')
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert str(caught.value) == (
        "invalid setting CALLBACK_WORKER_ROUTES: route 'p/s': Input should be a valid string (got 5)"
    )
