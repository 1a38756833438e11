"""``callback-worker demo`` from the installed console script: exits 0 with the summary a newcomer wants."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path


def test_demo_runs_end_to_end_and_summarises() -> None:
    script = shutil.which("callback-worker", path=str(Path(sys.executable).parent))
    assert script is not None, "the console script is installed next to the interpreter"
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "CALLBACK_WORKER_"))}
    result = subprocess.run([script, "demo"], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "What SageMaker saw" in out
    assert "(succeeds): Succeeded  [ok]" in out
    assert "(unknown handler): Failed  [ok]" in out
    assert "(stopped): Stopped  [ok]" in out
    assert "no handler named 'no-such-handler'" in out
    assert "trainData=s3://demo-bucket/abalone.csv" in out
    assert "UNEXPECTED" not in out
    assert "(approved): Succeeded  [ok]" in out
    assert "(rejected): Failed  [ok]" in out
    assert "failure reason: Rejected: accuracy below 0.9" in out
    assert_in_order(out, "succeeds", ["step Prepare Succeeded", "step Train Succeeded"])
    assert_in_order(out, "approved", ["step Review Succeeded", "step Gate Succeeded (outcome True)", "step Deploy"])
    assert_in_order(out, "rejected", ["step Review Succeeded", "step Gate Succeeded (outcome False)", "step Reject"])


def assert_in_order(out: str, label: str, events: list[str]) -> None:
    """The lines of the execution started as ``label`` mention ``events`` in this order (progress lines only)."""
    execution_id = next(line.split("execution ")[1].split()[0] for line in out.splitlines() if f"({label};" in line)
    lines = [line for line in out.splitlines() if f"execution {execution_id}: step" in line]
    positions = [next(index for index, line in enumerate(lines) if event in line) for event in events]
    assert positions == sorted(positions), lines
