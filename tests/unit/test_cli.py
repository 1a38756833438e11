"""The console script's parser: the emulator's options (and modules) only for ``emulate``."""

from __future__ import annotations

import subprocess
import sys

import callback_worker.cli

PROBE = """
import sys, callback_worker.cli
callback_worker.cli.main(["handlers"])
print("emulator loaded" if "callback_worker.emulator.server" in sys.modules else "emulator not loaded")
"""


def test_other_commands_do_not_load_the_emulator() -> None:
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=60)

    assert result.stdout.splitlines()[-1] == "emulator not loaded"


def test_emulate_takes_the_emulator_options() -> None:
    args = callback_worker.cli.build_parser().parse_args(["emulate", "--port", "4567", "--throttle-rate", "0.5"])

    assert (args.port, args.throttle_rate) == (4567, 0.5)


def test_run_help_names_no_file_an_installed_wheel_lacks() -> None:
    text = callback_worker.cli.settings_help()

    assert "README" not in text
    assert text.splitlines()[0].startswith("settings (environment variables, each with its default")
    assert "Check them all with: callback-worker doctor" in text
