"""worker/app.py start-up: what is left for the garbage collector once the worker runs."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import gc
import callback_worker.worker.app
callback_worker.worker.app.settle_startup_objects()
print(gc.get_freeze_count(), len(gc.get_objects()))
"""


def test_startup_objects_are_frozen_out_of_full_collections() -> None:
    # In a child process: freezing is process-wide and would outlive this test.
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=60)
    frozen, still_tracked = map(int, result.stdout.split())

    assert frozen > 10_000  # the imported modules' objects, botocore's among them
    assert still_tracked < frozen / 10
