"""``emulate`` and ``demo`` where their packages are missing (the daemon's container image has neither the emulator
nor moto): one line naming what is missing and what to use instead, exit 2, and a note in ``--help``."""

from __future__ import annotations

import sys

import pytest

import callback_worker.cli


@pytest.fixture
def without_emulator_and_moto(monkeypatch: pytest.MonkeyPatch) -> None:
    """A ``None`` entry in ``sys.modules`` makes a package uninstalled for ``find_spec`` and ``import`` alike."""
    for package in ("callback_worker.emulator", "moto"):
        monkeypatch.setitem(sys.modules, package, None)


@pytest.mark.usefixtures("without_emulator_and_moto")
@pytest.mark.parametrize(
    ("argv", "missing", "instead"),
    [
        (["emulate", "--port", "4599"], "emulator not installed", "the image's `emulator` target"),
        (["demo"], "emulator, moto not installed", 'pip install "sagemaker-callback-worker[demo]" (from a wheel'),
        (["dev"], "emulator, moto not installed", 'from a wheel file: pip install "<wheel file>[demo]"'),
    ],
)
def test_a_command_without_its_packages_says_so_in_one_line_and_exits_2(
    argv: list[str], missing: str, instead: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = callback_worker.cli.main(argv)

    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""
    (line,) = captured.err.splitlines()
    assert line.startswith(f"callback-worker {argv[0]}: not available here: {missing}; use ")
    assert instead in line


def test_only_the_missing_package_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "moto", None)

    assert callback_worker.cli.missing_packages("demo") == ["moto"]
    assert callback_worker.cli.missing_packages("emulate") == []
    assert callback_worker.cli.missing_packages("run") == []


@pytest.mark.usefixtures("without_emulator_and_moto")
def test_help_marks_the_commands_that_are_not_installed(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        callback_worker.cli.main(["--help"])

    text = " ".join(capsys.readouterr().out.split())
    assert stopped.value.code == 0
    assert "serve the local SageMaker Pipelines emulator (not installed here: emulator)" in text
    assert "(no AWS account, no Docker) (not installed here: emulator, moto)" in text


def test_the_daemons_commands_run_without_the_optional_packages(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for package in ("callback_worker.emulator", "moto"):
        monkeypatch.setitem(sys.modules, package, None)

    assert callback_worker.cli.main(["handlers"]) == 0
    assert "echo" in capsys.readouterr().out
