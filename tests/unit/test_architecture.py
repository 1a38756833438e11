"""The house, checked: the arrows of docs/architecture.md (import-linter's contracts in pyproject.toml), no module
reaching a sibling through its own package's ``__init__``, and the size limits of modules and functions."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: The repository's folders and the packages they are: one import package, ``callback_worker``, whose subpackages
#: ``worker``, ``handlers``, ``config`` and ``emulator`` are top-level folders linked into it.
FOLDERS = ("worker", "handlers", "config", "emulator")
PACKAGES = ("callback_worker", *FOLDERS)
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 50


def modules() -> Iterator[tuple[str, Path]]:
    """Every module of ours, by its import name, each once (``rglob`` does not follow the links)."""
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            parts = ("callback_worker", *parts) if package in FOLDERS else parts
            yield ".".join(parts[:-1] if parts[-1] == "__init__" else parts), path


def test_the_import_contracts_hold() -> None:
    command = [str(Path(sys.executable).parent / "lint-imports"), "--no-cache", "--config", "pyproject.toml"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_the_daemon_imports_neither_the_emulator_the_demo_nor_the_operator_commands() -> None:
    inner = {f"callback_worker.{name}" for name in ("worker", "handlers", "config")}
    for name, path in modules():
        if ".".join(name.split(".")[:2]) in inner:
            outer = [imported for imported in imports(path) if ".".join(imported.split(".")[:2]) not in inner]
            assert not [imported for imported in outer if imported.startswith("callback_worker")], name


def test_no_module_imports_its_own_package() -> None:
    """``from pkg import sibling`` inside ``pkg`` runs ``pkg/__init__`` from within itself: an import cycle."""
    offenders = []
    for name, path in modules():
        ancestors = {".".join(name.split(".")[:depth]) for depth in range(1, name.count(".") + 1)}
        if path.name == "__init__.py":
            ancestors.discard(name)
        offenders += [f"{name} imports {target}" for target in imports(path) if target in ancestors]
    assert offenders == []


def test_modules_and_functions_stay_small() -> None:
    too_long = []
    for name, path in modules():
        lines = path.read_text().count("\n")
        if lines > MAX_MODULE_LINES:
            too_long.append(f"{name}: {lines} lines")
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    too_long.append(f"{name}.{node.name}: {length} lines")
    assert too_long == []


def imports(path: Path) -> list[str]:
    """The modules ``path`` imports; ``from X import y`` counts as importing X (whose ``__init__`` runs first)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append(node.module)
    return found


def test_the_architecture_page_names_every_room() -> None:
    page = (ROOT / "docs" / "architecture.md").read_text()
    missing = [f"{package}/" for package in PACKAGES if f"`{package}/`" not in page]
    missing += [
        path.name
        for path in sorted((ROOT / "worker").glob("*.py"))
        if path.name != "__init__.py" and f"{path.name}`" not in page
    ]
    assert missing == []
