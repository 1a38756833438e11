"""``--stub-steps``, ``--stub-values FILE`` and ``--stub-delay`` (and their environment variables)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from callback_worker.emulator.cli import add_arguments, server_options
from callback_worker.emulator.stubs import DEFAULT_STUB_DELAY, StubConfig


def options(*argv: str, environ: dict[str, str] | None = None) -> StubConfig:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    stubs = server_options(parser.parse_args(list(argv)), environ or {})["stubs"]
    assert isinstance(stubs, StubConfig)
    return stubs


def test_stubs_are_off_unless_asked_for() -> None:
    assert options() == StubConfig(enabled=False, delay=DEFAULT_STUB_DELAY, values={})


def test_flags_turn_stubs_on_with_values_and_delay(tmp_path: Path) -> None:
    values = tmp_path / "stubs.json"
    values.write_text(json.dumps({"Train": {"ModelArtifacts.S3ModelArtifacts": "s3://b/m.tar.gz"}}))
    stubs = options("--stub-steps", "--stub-values", str(values), "--stub-delay", "0.1")
    assert stubs.enabled
    assert stubs.delay == 0.1
    assert stubs.value("Train", "ModelArtifacts.S3ModelArtifacts") == "s3://b/m.tar.gz"


def test_the_environment_is_read_when_flags_are_absent() -> None:
    stubs = options(environ={"CALLBACK_WORKER_EMULATOR_STUB_STEPS": "true", "CALLBACK_WORKER_EMULATOR_STUB_DELAY": "2"})
    assert (stubs.enabled, stubs.delay) == (True, 2.0)


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (None, "cannot read the stub values file"),
        ("{", "is not valid JSON"),
        ('{"Train": 5}', "must be a JSON object of objects"),
        ('{"Train": {"x": 1e999}}', "too large"),
    ],
)
def test_a_bad_values_file_is_an_option_error(tmp_path: Path, content: str | None, fragment: str) -> None:
    path = tmp_path / "stubs.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ValueError, match=fragment):
        options("--stub-steps", "--stub-values", str(path))


def test_a_negative_delay_is_an_option_error() -> None:
    with pytest.raises(ValueError, match="--stub-delay"):
        options("--stub-steps", "--stub-delay", "-1")
