"""``python -m callback_worker.emulator [options]``: the same as ``callback-worker emulate``."""

from __future__ import annotations

import argparse
import sys

from callback_worker.emulator.cli import add_arguments, run


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and serve; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m callback_worker.emulator", description="Local SageMaker Pipelines endpoint for callback steps."
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
