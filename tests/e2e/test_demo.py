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
