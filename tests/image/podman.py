"""Build and run the container image with podman and buildah, without a Docker engine and without a network inside
the build.

Facts of the machines this runs on (Debian 12, root), each the reason for one flag here:

- ``--runtime runc``: crun refuses the hosts' hybrid cgroup hierarchy;
- ``--ulimit nofile=20000:20000 --ulimit nproc=1024:1024``: podman's default limits exceed the hosts' hard limits;
- ``buildah bud --isolation chroot``: no nested container runtime is needed to run the build's ``RUN`` steps;
- ``--format docker``: the OCI image format has no ``HEALTHCHECK``;
- the build's only network is the host's, and Python packages come from a wheelhouse that pip, as configured on
  the host, fills from the lock (the Dockerfile's ``wheelhouse`` build context).

The base image is a stand-in built from Debian's packages with mmdebstrap (python3, python3-venv, ca-certificates),
for tests only; the Dockerfile's default base is the official slim Python image.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ENGINE = ["podman", "--runtime", "runc"]
LIMITS = ["--ulimit", "nofile=20000:20000", "--ulimit", "nproc=1024:1024"]
#: The stand-in base's packages, from the suite the official image is built on.
STAND_IN_PACKAGES = "python3,python3-venv,ca-certificates"
STAND_IN_SUITE = "bookworm"
#: What the build needs beyond the lock: the project's build backend (pyproject.toml's build-system).
BUILD_REQUIREMENTS = ("setuptools>=77",)
#: manylinux wheels run on any glibc at least as new as their tag; pip lists no older tags by itself.
OLDEST_MANYLINUX = 17
LEGACY_MANYLINUX = ("manylinux2014", "manylinux2010", "manylinux1")


def command(*args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a command with its output captured; a failure shows the command and everything it printed."""
    result = subprocess.run(
        list(args), capture_output=True, text=True, timeout=timeout, check=False, stdin=subprocess.DEVNULL
    )
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


def podman(*args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess[str]:
    return command(*ENGINE, *args, timeout=timeout, check=check)


def image_exists(tag: str) -> bool:
    return podman("image", "exists", tag, check=False).returncode == 0


def build_stand_in_base(tag: str, workdir: Path) -> None:
    """A root filesystem of Debian packages (mmdebstrap, minbase) imported as ``tag``."""
    tarball = workdir / "stand-in-base.tar"
    command(
        "mmdebstrap",
        "--quiet",
        "--variant=minbase",
        f"--include={STAND_IN_PACKAGES}",
        STAND_IN_SUITE,
        str(tarball),
        timeout=900,
    )
    podman("import", str(tarball), tag)
    tarball.unlink()


@dataclass(frozen=True)
class Platform:
    """The base image's Python and C library, which decide the wheels it can install."""

    python: str  # "3.11"
    glibc: str  # "2.36"
    machine: str  # "x86_64"

    def pip_options(self) -> list[str]:
        major, minor = (int(part) for part in self.glibc.split("."))
        tags = [f"manylinux_{major}_{number}_{self.machine}" for number in range(OLDEST_MANYLINUX, minor + 1)]
        tags += [f"{legacy}_{self.machine}" for legacy in LEGACY_MANYLINUX]
        options = ["--only-binary=:all:", "--implementation", "cp", "--python-version", self.python]
        return options + [option for tag in tags for option in ("--platform", tag)]


def base_platform(base: str) -> Platform:
    probe = "import json, platform, sys; print(json.dumps([f'{sys.version_info[0]}.{sys.version_info[1]}', "
    probe += "platform.libc_ver()[1], platform.machine()]))"
    result = podman("run", "--rm", *LIMITS, "--network", "none", base, "python3", "-c", probe)
    python, glibc, machine = json.loads(result.stdout)
    return Platform(python=python, glibc=glibc, machine=machine)


def fill_wheelhouse(directory: Path, platform: Platform) -> list[str]:
    """The lock's wheels (hash-checked) and the build backend's, for ``platform``, downloaded by the host's pip."""
    directory.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip", "download", "--quiet", "--dest", str(directory), *platform.pip_options()]
    command(*pip, "--require-hashes", "--requirement", str(REPO / "requirements.lock"))
    command(*pip, *BUILD_REQUIREMENTS)
    return sorted(path.name for path in directory.glob("*.whl"))


def build_image(tag: str, *, target: str, base: str, wheelhouse: Path) -> None:
    """``buildah bud`` of the repository's Dockerfile: ``target`` on ``base``, packages from ``wheelhouse``."""
    command(
        "buildah",
        "bud",
        "--quiet",
        "--isolation",
        "chroot",
        "--format",
        "docker",
        "--layers",
        "--build-arg",
        f"PYTHON_IMAGE={base}",
        "--build-context",
        f"wheelhouse={wheelhouse}",
        "--target",
        target,
        "--tag",
        tag,
        str(REPO),
        timeout=1200,
    )


def image_size(tag: str) -> int:
    return int(podman("image", "inspect", "--format", "{{.Size}}", tag).stdout)


def run_once(image: str, *args: str, options: Sequence[str] = ()) -> subprocess.CompletedProcess[str]:
    """``podman run --rm`` with the hosts' limits and no network; the caller reads the exit code."""
    flags = ["--rm", *LIMITS, "--no-healthcheck", "--network", "none"]
    return podman("run", *flags, *options, image, *args, timeout=120, check=False)


def start(name: str, image: str, *args: str, env: dict[str, str], options: Sequence[str] = ()) -> None:
    """A detached container on the host's network (loopback servers are reachable), read-only root filesystem.

    The image's HEALTHCHECK stays, without podman's timer (a systemd unit, and the hosts run no systemd):
    ``podman healthcheck run`` runs it when a test asks."""
    flags = [item for key, value in sorted(env.items()) for item in ("--env", f"{key}={value}")]
    flags += ["--health-interval", "disable"]
    podman(
        "run", "--detach", "--name", name, *LIMITS, "--network", "host", "--read-only", *flags, *options, image, *args
    )


def inspect(name: str) -> dict[str, object]:
    (state,) = json.loads(podman("container", "inspect", name).stdout)
    assert isinstance(state, dict)
    return state


def logs(name: str) -> str:
    result = podman("logs", name, check=False)
    return result.stdout + result.stderr


def remove(name: str) -> None:
    podman("rm", "--force", "--ignore", name, check=False)


def scratch_directory() -> Path:
    """A fresh directory under ``build/`` (git ignores it) for the stand-in base's tarball and the wheelhouse."""
    root = REPO / "build"
    root.mkdir(exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="image-test-", dir=root))
