"""The distribution built and installed as a release would be: ``python -m build`` makes the sdist and, from the sdist,
the wheel; ``twine check`` passes both; the wheel holds one import package, ``callback_worker``, with every module of
the repository's folders linked into it; installed with its dependencies (the ``demo`` extra) from the package index
into a fresh virtual environment, outside the repository and without an editable install, its console script runs
``--version``, ``handlers`` and ``demo``.

One build and one install for the module (about a minute, most of it the install): marked ``slow``, still in the
default run, because a broken distribution is what every user would meet first.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest

import callback_worker
from tests.e2e.test_dev_loop import DevLoop, wait_for_step
from tests.plugin_factory import make_plugin

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
#: The repository's folders whose modules the wheel holds under ``callback_worker``, by their name there.
LINKED = {"worker": "worker", "handlers": "handlers", "config": "config", "emulator": "emulator"}


@dataclass(frozen=True)
class Release:
    wheel: Path
    sdist: Path
    venv: Path


def clean_env() -> dict[str, str]:
    """The caller's environment less anything that would point the installed program at the repository, at an
    activated environment, or at AWS: the installed package must stand on its own."""
    dropped = ("AWS_", "CALLBACK_WORKER_", "PYTHON", "VIRTUAL_ENV")
    return {key: value for key, value in os.environ.items() if not key.startswith(dropped)}


def run(command: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        command, cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=timeout, check=False
    )
    assert result.returncode == 0, f"{command}: {result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Release:
    root = tmp_path_factory.mktemp("release")
    # No --sdist/--wheel: build makes the sdist, then the wheel from the unpacked sdist (the links must survive).
    run([sys.executable, "-m", "build", "--outdir", str(root / "dist"), str(REPO)], cwd=root)
    (wheel,) = (root / "dist").glob("*.whl")
    (sdist,) = (root / "dist").glob("*.tar.gz")
    venv = root / "venv"
    run([sys.executable, "-m", "venv", str(venv)], cwd=root)
    run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-compile", f"{wheel}[demo]"], cwd=root)
    return Release(wheel, sdist, venv)


def test_twine_check_passes_the_wheel_and_the_sdist(release: Release) -> None:
    twine = [sys.executable, "-m", "twine", "check", "--strict", str(release.wheel), str(release.sdist)]
    result = run(twine, cwd=release.venv)

    assert result.stdout.count("PASSED") == 2, result.stdout


def test_the_wheel_carries_the_license_it_declares(release: Release) -> None:
    with zipfile.ZipFile(release.wheel) as wheel:
        [license_file] = [name for name in wheel.namelist() if name.endswith(".dist-info/licenses/LICENSE")]
        assert wheel.read(license_file) == (REPO / "LICENSE").read_bytes()
        assert b"Apache License\n                           Version 2.0, January 2004" in wheel.read(license_file)


def test_the_wheel_holds_one_import_package(release: Release) -> None:
    with zipfile.ZipFile(release.wheel) as wheel:
        names = wheel.namelist()
        info = next(name.split("/")[0] for name in names if name.endswith(".dist-info/RECORD"))
        top_level = wheel.read(f"{info}/top_level.txt").decode().split()

    assert top_level == ["callback_worker"]
    assert {name.split("/")[0] for name in names} == {"callback_worker", info}


def test_the_wheel_holds_every_module_of_the_linked_folders(release: Release) -> None:
    with zipfile.ZipFile(release.wheel) as wheel:
        names = set(wheel.namelist())
    expected = {
        f"callback_worker/{inside}/{path.relative_to(REPO / folder).as_posix()}"
        for folder, inside in LINKED.items()
        for path in (REPO / folder).rglob("*.py")
        if "__pycache__" not in path.parts
    }

    assert expected, "the linked folders hold modules"
    assert expected - names == set()


def test_the_installed_package_is_the_venvs_own(release: Release, tmp_path: Path) -> None:
    python = str(release.venv / "bin" / "python")
    probe = "import callback_worker, sys; print(callback_worker.__file__); print('\\n'.join(sys.path))"
    lines = run([python, "-c", probe], cwd=tmp_path).stdout.splitlines()

    assert Path(lines[0]).is_relative_to(release.venv)
    assert not any(entry and Path(entry).resolve().is_relative_to(REPO) for entry in lines[1:])


def test_the_console_script_prints_its_version(release: Release, tmp_path: Path) -> None:
    result = run([str(release.venv / "bin" / "callback-worker"), "--version"], cwd=tmp_path)

    assert result.stdout == f"callback-worker {callback_worker.__version__}\n"


def test_the_console_script_lists_the_built_in_handlers(release: Release, tmp_path: Path) -> None:
    result = run([str(release.venv / "bin" / "callback-worker"), "handlers"], cwd=tmp_path)
    listed = {line.split()[0]: line for line in result.stdout.splitlines()}

    assert set(listed) >= {"echo", "command", "http", "glue", "batch", "stepfunctions", "lambda"}
    assert listed["echo"].endswith(f"(sagemaker-callback-worker {callback_worker.__version__})")


def test_the_demo_runs_from_the_installed_wheel(release: Release, tmp_path: Path) -> None:
    result = run([str(release.venv / "bin" / "callback-worker"), "demo"], cwd=tmp_path, timeout=120)

    assert "What SageMaker saw" in result.stdout
    assert "UNEXPECTED" not in result.stdout


#: A user's own handler, as its own distribution would install it: the SDK from the one import package.
USER_HANDLER = """
from callback_worker import CallbackContext


def approve(context: CallbackContext) -> dict[str, str]:
    return {"approvedBy": str(context.arguments["who"]), "pipeline": context.pipeline_name}
"""


def test_a_users_own_handler_answers_a_pipeline_on_the_dev_loop(release: Release, tmp_path: Path) -> None:
    """The first hour end to end: from the installed wheel, the user's own plugin answers a pipeline execution on
    ``callback-worker dev``, with token verification on, started by ``send-test-message`` from another shell."""
    (site,) = (release.venv / "lib").glob("python*/site-packages")
    make_plugin(site, "my-approvals", {"approve": "approve"}, USER_HANDLER, module="my_approvals")
    program = [str(release.venv / "bin" / "callback-worker")]
    env = clean_env() | {"CALLBACK_WORKER_HANDLERS": "approve", "CALLBACK_WORKER_WAIT_TIME": "1"}
    loop = DevLoop(env, program)
    try:
        loop.wait_ready()
        exports = loop.exports()
        sent = subprocess.run(
            [*program, "send-test-message", "--queue-url", exports["QUEUE_URL"],
             "--argument", "handler=approve", "--argument", "who=alice"],
            cwd=tmp_path, env=clean_env() | exports, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert (sent.returncode, sent.stderr) == (0, ""), sent.stderr
        arn = sent.stdout.splitlines()[0].removeprefix("started execution ")
        sagemaker = boto3.client(
            "sagemaker",
            endpoint_url=exports["AWS_ENDPOINT_URL_SAGEMAKER"],
            region_name=exports.get("AWS_REGION", "us-east-1"),
            aws_access_key_id=exports["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=exports["AWS_SECRET_ACCESS_KEY"],
        )
        step = wait_for_step(sagemaker, arn)
        outputs = {item["Name"]: item["Value"] for item in step["Metadata"]["Callback"]["OutputParameters"]}  # type: ignore[index]
        assert (step["StepStatus"], outputs["approvedBy"]) == ("Succeeded", "alice"), step
        code, _, err = loop.stop()
        assert code == 0, err
    finally:
        loop.close()
