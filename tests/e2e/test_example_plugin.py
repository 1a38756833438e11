"""The example plugin package in ``examples/``: its entry point as the worker sees it, and its own tests.

Nothing is installed: the distribution's metadata is written from the example's own ``pyproject.toml`` onto a
temporary path (as an installer would write it), and the package's source is put on ``PYTHONPATH``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "callback-worker-plugin-example"


def write_metadata(root: Path) -> dict[str, str]:
    """Write the example's ``.dist-info`` (name, version, dependencies, entry points) under ``root``."""
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    info = root / f"{re.sub(r'[-_.]+', '_', project['name'])}-{project['version']}.dist-info"
    info.mkdir()
    requires = "".join(f"Requires-Dist: {requirement}\n" for requirement in project["dependencies"])
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n{requires}", encoding="utf-8"
    )
    groups = project["entry-points"]
    text = "".join(
        f"[{group}]\n" + "".join(f"{name} = {target}\n" for name, target in entries.items())
        for group, entries in groups.items()
    )
    (info / "entry_points.txt").write_text(text, encoding="utf-8")
    return {"name": project["name"], "version": project["version"], **groups["callback_worker.handlers"]}


def environment(*paths: Path) -> dict[str, str]:
    path = [*map(str, paths), str(REPO), os.environ.get("PYTHONPATH", "")]
    # PYTHONDONTWRITEBYTECODE: leave no __pycache__ in examples/.
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, path)), "PYTHONDONTWRITEBYTECODE": "1"}


def test_the_worker_lists_the_example_handler_with_its_distribution(tmp_path: Path) -> None:
    metadata = write_metadata(tmp_path)
    assert metadata["approval"] == "callback_worker_example.approval:ApprovalGate"
    result = subprocess.run(
        [sys.executable, "-m", "callback_worker.cli", "handlers"],
        env=environment(tmp_path, EXAMPLE / "src"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
    lines = {line.split()[0]: line.split(None, 1)[1] for line in result.stdout.splitlines()}
    # `handlers` loads every handler it lists: the entry point's object imports and builds.
    assert lines["approval"] == f"{metadata['approval']} ({metadata['name']} {metadata['version']})"
    assert "echo" in lines


def test_the_examples_own_tests_pass() -> None:
    result = subprocess.run(
        # The example's tests are synchronous; -p no:asyncio keeps this environment's pytest-asyncio from
        # configuring itself (and warning, an error under the example's filterwarnings) in the example's pytest.
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:asyncio"],
        cwd=EXAMPLE,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"\b\d+ passed\b", result.stdout), result.stdout
    assert "failed" not in result.stdout
