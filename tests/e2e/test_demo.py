"""``callback-worker demo`` from the installed console script: exits 0 with the summary a newcomer wants."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path


def test_demo_runs_end_to_end_and_summarises() -> None:
    out = run_demo()
    assert "What SageMaker saw" in out
    assert "(succeeds): Succeeded  [ok]" in out
    assert "(unknown handler): Failed  [ok]" in out
    assert "(stopped): Stopped  [ok]" in out
    assert "no handler named 'no-such-handler'" in out
    assert "trainData=s3://demo-bucket/abalone.csv" in out
    assert "UNEXPECTED" not in out
    assert "(approved): Succeeded  [ok]" in out
    assert "(rejected): Failed  [ok]" in out
    assert re.search(r"Reject +Failed +Rejected: accuracy below 0\.9", out)
    assert_in_order(out, "succeeds", ["step Prepare Succeeded", "step Train Succeeded"])
    assert_in_order(out, "approved", ["step Review Succeeded", "step Gate Succeeded (outcome True)", "step Deploy"])
    assert_in_order(out, "rejected", ["step Review Succeeded", "step Gate Succeeded (outcome False)", "step Reject"])


def test_demo_speaks_in_users_terms() -> None:
    """Its handlers explained (the demo-only one too), no worker log line mid-output (the expected failure is told
    in the demo's words), what the worker did in a user's terms (no internal tally), and each execution's ARN."""
    out = run_demo()
    assert re.search(r"^ +wait +this demo's own: holds its step until the pipeline is stopped", out, re.MULTILINE)
    assert re.search(r"^ +echo +built in: ", out, re.MULTILINE)
    assert not re.search(r"\[(error|warning|info) *\]", out), out
    assert "a failure on purpose: no handler has that name" in out
    assert "stopped 2" not in out
    assert "reports_started" not in out
    assert "and answered 7 callback steps: 5 succeeded, 1 failed, 1 stopped." in out
    arns = re.findall(r"arn:aws:sagemaker:[a-z0-9-]+:[0-9]{12}:pipeline/[a-z-]+/execution/([a-z0-9]+)", out)
    ids = re.findall(r"started execution ([a-z0-9]+) ", out)
    assert len(ids) == 5
    assert set(arns) == set(ids)


def run_demo() -> str:
    script = shutil.which("callback-worker", path=str(Path(sys.executable).parent))
    assert script is not None, "the console script is installed next to the interpreter"
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "CALLBACK_WORKER_"))}
    result = subprocess.run([script, "demo"], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def assert_in_order(out: str, label: str, events: list[str]) -> None:
    """The lines of the execution started as ``label`` mention ``events`` in this order (progress lines only)."""
    execution_id = next(line.split("execution ")[1].split()[0] for line in out.splitlines() if f"({label};" in line)
    lines = [line for line in out.splitlines() if f"execution {execution_id}: step" in line]
    positions = [next(index for index, line in enumerate(lines) if event in line) for event in events]
    assert positions == sorted(positions), lines
