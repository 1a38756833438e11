"""One import namespace: everything of ours is ``callback_worker.*``, importable and imported under one name only."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import callback_worker
from callback_worker.worker.handler import CallbackContext, Fail, Retry
from tests.unit.test_architecture import FOLDERS, ROOT, modules

#: Imports every module of ours by its one name, then reports, for each file of ours loaded, the names it is loaded
#: under, and whether a bare folder name (``worker``, ``config``...) can be imported at all.
PROBE = """
import importlib, importlib.util, json, os, sys
names, folders, root = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
for name in names:
    importlib.import_module(name)
loaded = {}
for name, module in list(sys.modules.items()):
    path = getattr(module, "__file__", None)
    if path and os.path.realpath(path).startswith(root) and "site-packages" not in path:
        loaded.setdefault(os.path.realpath(path), []).append(name)
bare = {}
for folder in folders:
    spec = importlib.util.find_spec(folder)
    bare[folder] = spec.origin if spec else None
print(json.dumps({"loaded": loaded, "bare": bare}))
"""


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, object]]:
    names = [name for name, _ in modules() if not name.endswith("__main__")]
    result = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(names), json.dumps(FOLDERS), str(ROOT.resolve())],
        cwd=tmp_path_factory.mktemp("elsewhere"),  # not the repository: only what is installed is importable
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    report: dict[str, dict[str, object]] = json.loads(result.stdout)
    return report


def test_every_module_is_loaded_under_one_name_only(probe: dict[str, dict[str, object]]) -> None:
    twice = {path: names for path, names in probe["loaded"].items() if isinstance(names, list) and len(names) > 1}
    assert twice == {}
    assert all(isinstance(names, list) and names[0].startswith("callback_worker") for names in probe["loaded"].values())


def test_no_folder_of_ours_is_importable_under_its_bare_name(probe: dict[str, dict[str, object]]) -> None:
    ours = {
        folder: origin
        for folder, origin in probe["bare"].items()
        if isinstance(origin, str) and Path(origin).resolve().is_relative_to(ROOT.resolve())
    }
    assert ours == {}


def test_the_handler_sdk_is_importable_from_the_package_itself() -> None:
    assert (callback_worker.CallbackContext, callback_worker.Fail, callback_worker.Retry) == (
        CallbackContext,
        Fail,
        Retry,
    )
    with pytest.raises(AttributeError, match="no attribute 'Dispatcher'"):
        _ = callback_worker.Dispatcher


def test_importing_the_emulator_loads_nothing_of_the_daemon() -> None:
    code = (
        "import sys, callback_worker.emulator.server; "
        "print(sorted(n for n in sys.modules if n.startswith(('callback_worker.worker', 'callback_worker.config'))))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "[]"
