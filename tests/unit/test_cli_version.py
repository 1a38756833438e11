"""``callback-worker --version`` prints the distribution's one version and exits 0."""

from __future__ import annotations

import pytest

import callback_worker
import callback_worker.cli


def test_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        callback_worker.cli.main(["--version"])

    assert exited.value.code == 0
    assert capsys.readouterr().out == f"callback-worker {callback_worker.__version__}\n"
