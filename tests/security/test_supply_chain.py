"""Finding 11 (supply chain): the image installs its runtime dependencies from a hashed lock, and every runtime
dependency has an upper bound.

Before: the Dockerfile ran ``pip install /src``, resolving whatever versions the index offered at build time, with no
hash checked; ``structlog``, ``pydantic``, ``pydantic-settings`` and ``prometheus-client`` had no upper bound.
"""

from __future__ import annotations

import re
import tomllib

from packaging.requirements import Requirement
from packaging.version import Version

from tests.deploy.manifests import DOCKERFILE, REPO, parse_dockerfile

LOCK = REPO / "requirements.lock"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)")


def locked() -> dict[str, tuple[Version, list[str]]]:
    """Each pinned package of the lock: its version and hashes."""
    entries: dict[str, tuple[Version, list[str]]] = {}
    current = ""
    for line in LOCK.read_text().splitlines():
        match = PIN.match(line)
        if match:
            current = match[1].lower().replace("_", "-")
            entries[current] = (Version(match[2].rstrip("\\").strip()), [])
        elif line.strip().startswith("--hash="):
            entries[current][1].append(line.strip().removesuffix("\\").strip())
    return entries


def runtime_requirements() -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return [Requirement(text) for text in project["dependencies"]]


def test_every_locked_package_is_pinned_with_hashes() -> None:
    entries = locked()
    assert len(entries) >= len(runtime_requirements())
    for name, (_, hashes) in entries.items():
        assert hashes, f"{name} has no hash"
        assert all(re.fullmatch(r"--hash=sha256:[0-9a-f]{64}", item) for item in hashes), name
    requirement_lines = [line for line in LOCK.read_text().splitlines() if line and not line[0].isspace()]
    assert all(line.startswith("#") or PIN.match(line) for line in requirement_lines), "only pins and comments"


def test_the_lock_satisfies_every_runtime_dependency() -> None:
    entries = locked()
    for requirement in runtime_requirements():
        name = requirement.name.lower().replace("_", "-")
        assert name in entries, f"{name} is not locked"
        assert entries[name][0] in requirement.specifier, f"{name}=={entries[name][0]} outside {requirement}"


def test_every_runtime_dependency_has_an_upper_bound() -> None:
    for requirement in runtime_requirements():
        assert any(spec.operator in ("<", "<=", "==", "~=") for spec in requirement.specifier), str(requirement)


def test_the_lock_names_no_index_or_host() -> None:
    text = LOCK.read_text()
    assert not re.search(r"--(extra-)?index-url|--find-links|--trusted-host|https?://|file:", text)


def test_the_image_installs_the_lock_with_require_hashes_before_the_project() -> None:
    runs = [item.arguments for item in parse_dockerfile(DOCKERFILE.read_text()) if item.keyword == "RUN"]
    lock_install = [index for index, text in enumerate(runs) if "-r requirements.lock" in text]
    project_install = [index for index, text in enumerate(runs) if "/src" in text and "install" in text]
    assert lock_install, "the lock is never installed"
    assert "--require-hashes" in runs[lock_install[0]]
    assert project_install, "the project is never installed"
    assert lock_install[0] < project_install[0]
    assert all("--no-deps" in runs[index] for index in project_install), "nothing unlocked comes in with the project"
