"""The image tier's fixtures: the stand-in base, the wheelhouse, both build targets, and the figures it measured.

The tier runs only with ``CALLBACK_WORKER_IMAGE_TEST=1`` (``make image-test`` sets it after installing podman,
buildah, runc and mmdebstrap); the default ``pytest`` run skips it. ``IMAGE_TEST_PYTHON_IMAGE`` builds on another
base instead of the stand-in, for instance the Dockerfile's default on a machine that can pull it.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.image import podman

ENABLED = os.environ.get("CALLBACK_WORKER_IMAGE_TEST") == "1"
SKIP_REASON = (
    "the image tier builds and runs the container image: `make image-test` "
    "(sets CALLBACK_WORKER_IMAGE_TEST=1; needs podman, buildah, runc, mmdebstrap)"
)
STAND_IN_BASE = "localhost/callback-worker-stand-in:bookworm"
WORKER_IMAGE = "localhost/sagemaker-callback-worker:image-test"
EMULATOR_IMAGE = "localhost/sagemaker-pipelines-emulator:image-test"
REPORT = podman.REPO / "build" / "image-test.json"

#: Figures the tests measured (image sizes, start-up and drain times), printed at the end and written to REPORT.
FIGURES: dict[str, Any] = {}


@dataclass(frozen=True)
class Images:
    base: str
    worker: str
    emulator: str


@pytest.fixture(scope="session")
def images() -> Iterator[Images]:
    """Both targets built from the repository on the stand-in base (or ``IMAGE_TEST_PYTHON_IMAGE``), offline."""
    missing = [tool for tool in ("podman", "buildah", "runc", "mmdebstrap") if shutil.which(tool) is None]
    assert not missing, f"not installed: {', '.join(missing)} (`make image-test` installs them)"
    workdir = podman.scratch_directory()
    try:
        base = os.environ.get("IMAGE_TEST_PYTHON_IMAGE") or STAND_IN_BASE
        if base == STAND_IN_BASE and not podman.image_exists(base):
            podman.build_stand_in_base(base, workdir)
        platform = podman.base_platform(base)
        wheels = podman.fill_wheelhouse(workdir / "wheelhouse", platform)
        FIGURES["base"] = {"image": base, "python": platform.python, "glibc": platform.glibc, "wheels": len(wheels)}
        for target, tag in (("worker", WORKER_IMAGE), ("emulator", EMULATOR_IMAGE)):
            podman.build_image(tag, target=target, base=base, wheelhouse=workdir / "wheelhouse")
        FIGURES["size_mb"] = {
            "base": round(podman.image_size(base) / 1e6, 1),
            "worker": round(podman.image_size(WORKER_IMAGE) / 1e6, 1),
            "emulator": round(podman.image_size(EMULATOR_IMAGE) / 1e6, 1),
        }
        yield Images(base=base, worker=WORKER_IMAGE, emulator=EMULATOR_IMAGE)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The measured figures, after the test results (and in build/image-test.json)."""
    if not FIGURES:
        return
    REPORT.parent.mkdir(exist_ok=True)
    REPORT.write_text(json.dumps(FIGURES, indent=2) + "\n")
    terminalreporter.section("image figures")
    for key, value in FIGURES.items():
        terminalreporter.write_line(f"{key}: {json.dumps(value)}")
    terminalreporter.write_line(f"(written to {REPORT.relative_to(podman.REPO)})")
