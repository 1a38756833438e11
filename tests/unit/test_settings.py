"""config/settings.py: every bound, the required queue URL, and error messages that name the setting."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from callback_worker.config.errors import SettingsError
from callback_worker.config.settings import ENV_PREFIX, Settings, env_name, load_settings

QUEUE_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/callbacks"
README = Path(__file__).resolve().parents[2] / "README.md"

#: field → (lowest valid, highest valid, just below, just above)
NUMERIC_BOUNDS: dict[str, tuple[str, str, str, str]] = {
    "concurrency": ("1", "100000", "0", "100001"),
    "visibility_timeout": ("3", "43200", "2", "43201"),
    "max_attempts": ("1", "100", "0", "101"),
    "retry_backoff": ("0", "3600", "-0.001", "3600.001"),
    "shutdown_grace": ("0", "3600", "-0.001", "3600.001"),
    "health_port": ("0", "65535", "-1", "65536"),
    "wait_time": ("0", "20", "-1", "21"),
    "pollers": ("1", "100", "0", "101"),
}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No CALLBACK_WORKER_* variable from the outer environment leaks into a test."""
    for name in Settings.model_fields:
        monkeypatch.delenv(env_name(name), raising=False)
    return monkeypatch


@pytest.fixture
def env(clean_env: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """A clean environment with a valid queue URL set."""
    clean_env.setenv("CALLBACK_WORKER_QUEUE_URL", QUEUE_URL)
    return clean_env


def test_defaults(env: pytest.MonkeyPatch) -> None:
    settings = load_settings()
    assert settings.queue_url == QUEUE_URL
    assert settings.handler is None
    assert settings.handler_argument == "handler"
    assert settings.concurrency == 10
    assert settings.visibility_timeout == 60
    assert settings.max_attempts == 3
    assert settings.retry_backoff == 2.0
    assert settings.shutdown_grace == 30.0
    assert settings.health_port == 0
    assert settings.log_format == "json"
    assert settings.log_level == "INFO"
    assert settings.wait_time == 20
    assert settings.pollers == 1
    assert settings.health_host == "127.0.0.1"
    assert settings.handlers is None


def test_every_contract_setting_is_a_field() -> None:
    contract = {
        "queue_url",
        "handler",
        "handler_argument",
        "concurrency",
        "visibility_timeout",
        "max_attempts",
        "retry_backoff",
        "shutdown_grace",
        "health_port",
        "log_format",
        "log_level",
    }
    assert contract <= set(Settings.model_fields)


def test_every_field_is_documented() -> None:
    undocumented = [name for name, info in Settings.model_fields.items() if not info.description]
    assert undocumented == []


def test_env_name() -> None:
    assert env_name("queue_url") == "CALLBACK_WORKER_QUEUE_URL"
    assert env_name("health_port").startswith(ENV_PREFIX)


def test_missing_queue_url_names_the_variable(clean_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(SettingsError, match="CALLBACK_WORKER_QUEUE_URL") as caught:
        load_settings()
    assert "missing" in str(caught.value)
    assert caught.value.__cause__ is None  # pydantic's multi-line dump is not chained into the operator's line


@pytest.mark.parametrize("url", ["sqs.us-east-1.amazonaws.com/1/q", "ftp://host/q", " https://host/q"])
def test_queue_url_must_be_http(clean_env: pytest.MonkeyPatch, url: str) -> None:
    clean_env.setenv("CALLBACK_WORKER_QUEUE_URL", url)
    with pytest.raises(SettingsError, match="invalid setting CALLBACK_WORKER_QUEUE_URL"):
        load_settings()


@pytest.mark.parametrize("url", ["http://localhost:4566/000000000000/q", QUEUE_URL])
def test_queue_url_http_and_https(clean_env: pytest.MonkeyPatch, url: str) -> None:
    clean_env.setenv("CALLBACK_WORKER_QUEUE_URL", url)
    assert load_settings().queue_url == url


@pytest.mark.parametrize("field", sorted(NUMERIC_BOUNDS))
def test_numeric_bounds_inclusive(env: pytest.MonkeyPatch, field: str) -> None:
    low, high, _, _ = NUMERIC_BOUNDS[field]
    env.setenv(env_name("wait_time"), "0")  # a visibility timeout of 3 s needs a poll no longer than that
    for text in (low, high):
        env.setenv(env_name(field), text)
        assert getattr(load_settings(), field) == float(text)


@pytest.mark.parametrize("field", sorted(NUMERIC_BOUNDS))
def test_numeric_out_of_bounds_names_the_setting(env: pytest.MonkeyPatch, field: str) -> None:
    _, _, below, above = NUMERIC_BOUNDS[field]
    for text in (below, above):
        env.setenv(env_name(field), text)
        with pytest.raises(SettingsError) as caught:
            load_settings()
        message = str(caught.value)
        assert message.startswith(f"invalid setting {env_name(field)}=")
        assert text in message


@pytest.mark.parametrize(
    ("field", "text"),
    [
        ("concurrency", "ten"),
        ("concurrency", "1.5"),
        ("max_attempts", "true"),
        ("retry_backoff", "nan"),
        ("shutdown_grace", "inf"),
        ("health_port", "80/tcp"),
        ("pollers", "-"),
    ],
)
def test_non_numbers_rejected(env: pytest.MonkeyPatch, field: str, text: str) -> None:
    env.setenv(env_name(field), text)
    with pytest.raises(SettingsError, match=f"invalid setting {env_name(field)}="):
        load_settings()


def test_empty_variables_count_as_unset(env: pytest.MonkeyPatch) -> None:
    # Templated deployments often render an unset value as an empty string.
    env.setenv("CALLBACK_WORKER_HANDLER", "")
    env.setenv("CALLBACK_WORKER_HANDLER_ARGUMENT", "")
    env.setenv("CALLBACK_WORKER_VISIBILITY_TIMEOUT", "")
    settings = load_settings()
    assert settings.handler is None
    assert settings.handler_argument == "handler"
    assert settings.visibility_timeout == 60


def test_empty_queue_url_is_missing(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("CALLBACK_WORKER_QUEUE_URL", "")
    with pytest.raises(SettingsError, match="missing setting CALLBACK_WORKER_QUEUE_URL"):
        load_settings()


@pytest.mark.parametrize(("text", "expected"), [("echo", ("echo",)), (" http ,echo,http", ("echo", "http"))])
def test_handlers_allowlist_is_comma_separated(env: pytest.MonkeyPatch, text: str, expected: tuple[str, ...]) -> None:
    env.setenv("CALLBACK_WORKER_HANDLERS", text)
    assert load_settings().handlers == expected


def test_handlers_allowlist_must_cover_the_default_handler(env: pytest.MonkeyPatch) -> None:
    env.setenv("CALLBACK_WORKER_HANDLERS", "http")
    env.setenv("CALLBACK_WORKER_HANDLER", "echo")
    with pytest.raises(SettingsError, match=r"CALLBACK_WORKER_HANDLERS=.*CALLBACK_WORKER_HANDLER names") as caught:
        load_settings()
    assert str(caught.value).startswith("invalid setting")


def test_handlers_allowlist_given_as_a_list() -> None:
    settings = Settings(queue_url=QUEUE_URL, handlers=["b", "a"], routes={"p": "a"})
    assert settings.handlers == ("a", "b")


def test_handler_and_argument(env: pytest.MonkeyPatch) -> None:
    env.setenv("CALLBACK_WORKER_HANDLER", "echo")
    env.setenv("CALLBACK_WORKER_HANDLER_ARGUMENT", "route")
    settings = load_settings()
    assert (settings.handler, settings.handler_argument) == ("echo", "route")


@pytest.mark.parametrize(("text", "expected"), [("debug", "DEBUG"), ("Info", "INFO"), ("WARNING", "WARNING")])
def test_log_level_case_insensitive(env: pytest.MonkeyPatch, text: str, expected: str) -> None:
    env.setenv("CALLBACK_WORKER_LOG_LEVEL", text)
    assert load_settings().log_level == expected


@pytest.mark.parametrize(("text", "expected"), [("JSON", "json"), ("Console", "console"), ("console", "console")])
def test_log_format_case_insensitive(env: pytest.MonkeyPatch, text: str, expected: str) -> None:
    env.setenv("CALLBACK_WORKER_LOG_FORMAT", text)
    assert load_settings().log_format == expected


@pytest.mark.parametrize(("field", "text"), [("log_level", "warn"), ("log_level", "TRACE"), ("log_format", "text")])
def test_unknown_log_choices_name_the_setting(env: pytest.MonkeyPatch, field: str, text: str) -> None:
    env.setenv(env_name(field), text)
    with pytest.raises(SettingsError, match=f"invalid setting {env_name(field)}="):
        load_settings()


def test_variable_names_are_case_insensitive(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("callback_worker_queue_url", QUEUE_URL)
    assert load_settings().queue_url == QUEUE_URL


def test_unknown_variables_are_ignored(env: pytest.MonkeyPatch) -> None:
    env.setenv("CALLBACK_WORKER_NOT_A_SETTING", "whatever")
    assert load_settings().concurrency == 10


def test_settings_are_frozen(env: pytest.MonkeyPatch) -> None:
    settings = load_settings()
    with pytest.raises(ValidationError):
        settings.concurrency = 5  # type: ignore[misc]


def _tables(text: str) -> list[list[str]]:
    """Markdown tables as lists of their rows (contiguous lines starting with ``|``)."""
    tables: list[list[str]] = []
    current: list[str] = []
    for line in [*text.splitlines(), ""]:
        if line.lstrip().startswith("|"):
            current.append(line.strip())
        elif current:
            tables.append(current)
            current = []
    return tables


def _readme_setting_names(text: str) -> set[str]:
    """The first-column ``CALLBACK_WORKER_*`` names of the table that documents ``CALLBACK_WORKER_QUEUE_URL``."""
    for rows in _tables(text):
        first_cells = [row.strip("|").split("|")[0] for row in rows]
        names = {name for cell in first_cells for name in re.findall(r"`(CALLBACK_WORKER_[A-Z0-9_]+)`", cell)}
        if "CALLBACK_WORKER_QUEUE_URL" in names:
            return names
    return set()


def test_readme_table_parser() -> None:
    text = (
        "| command | what |\n|---|---|\n| `run` | reads `CALLBACK_WORKER_X` |\n\n"
        "| setting | default |\n|---|---|\n"
        "| `CALLBACK_WORKER_QUEUE_URL` | required |\n"
        "| `CALLBACK_WORKER_B_C` | `CALLBACK_WORKER_D` |\n"
        "see `CALLBACK_WORKER_E`\n"
        "| `CALLBACK_WORKER_EMULATOR_PORT` | other table |\n"
    )
    assert _readme_setting_names(text) == {"CALLBACK_WORKER_QUEUE_URL", "CALLBACK_WORKER_B_C"}
    assert _readme_setting_names("| `CALLBACK_WORKER_A` |") == set()


def test_readme_settings_table_matches_model() -> None:
    if not README.is_file():
        pytest.skip("README.md does not exist yet")
    documented = _readme_setting_names(README.read_text(encoding="utf-8"))
    if not documented:
        pytest.skip("README.md has no settings table with `CALLBACK_WORKER_*` names yet")
    assert documented == {env_name(name) for name in Settings.model_fields}


@pytest.mark.parametrize(
    "url", ["https://sqs.us-east-1.amazonaws.com/123456789012/callbacks.fifo", "http://localhost:4566/0/q.fifo/"]
)
def test_a_fifo_queue_stops_start_up(clean_env: pytest.MonkeyPatch, url: str) -> None:
    clean_env.setenv("CALLBACK_WORKER_QUEUE_URL", url)
    with pytest.raises(SettingsError, match=r"QUEUE_URL=.*FIFO queues cannot") as caught:
        load_settings()
    assert "\n" not in str(caught.value)


def test_a_visibility_timeout_shorter_than_the_long_poll_stops_start_up_naming_both(env: pytest.MonkeyPatch) -> None:
    env.setenv(env_name("visibility_timeout"), "5")
    env.setenv(env_name("wait_time"), "20")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    text = str(caught.value)
    assert text.startswith("invalid setting CALLBACK_WORKER_WAIT_TIME='20':")
    assert "CALLBACK_WORKER_VISIBILITY_TIMEOUT=5" in text
    assert "\n" not in text
    env.setenv(env_name("wait_time"), "5")
    assert (load_settings().visibility_timeout, load_settings().wait_time) == (5, 5)
