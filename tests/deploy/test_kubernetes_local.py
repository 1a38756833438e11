"""deploy/kubernetes-local: the overlay for a kind cluster with LocalStack and the emulator, rendered by
``kubectl kustomize`` (offline) and checked like the base: kubernetes-validate --strict, the worker's settings, and
that the worker, the emulator and LocalStack reach each other. Skipped where kubectl is not installed."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from callback_worker.config.settings import load_settings
from tests.deploy.manifests import DEPLOY, KUBERNETES, JsonObject, load_image, run_tool, worker_container

LOCAL = DEPLOY / "kubernetes-local"
INIT_SCRIPT = DEPLOY / "compose" / "localstack-init" / "10-create-queues.sh"
VERSIONS = ("1.37.0", "1.30.0")


def render(directory: Path) -> list[JsonObject]:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed (its `kustomize` renders the overlay)")
    result = subprocess.run(
        ["kubectl", "kustomize", str(directory)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    return [document for document in yaml.safe_load_all(result.stdout) if document]


@pytest.fixture(scope="module")
def rendered() -> dict[tuple[str, str, str], JsonObject]:
    """The overlay's objects by (kind, namespace, name)."""
    objects = {}
    for document in render(LOCAL):
        metadata = document["metadata"]
        objects[(document["kind"], metadata.get("namespace", ""), metadata["name"])] = document
    return objects


def one(rendered: dict[tuple[str, str, str], JsonObject], kind: str, namespace: str, name: str) -> JsonObject:
    return rendered[(kind, namespace, name)]


def test_the_base_renders_with_every_manifest() -> None:
    kinds = {document["kind"] for document in render(KUBERNETES)}
    assert {"Deployment", "PodDisruptionBudget", "ScaledObject", "ServiceMonitor", "PrometheusRule"} <= kinds


def test_the_overlay_leaves_out_what_kind_lacks(rendered: dict[tuple[str, str, str], JsonObject]) -> None:
    kinds = {kind for kind, _, _ in rendered}
    assert not kinds & {"ScaledObject", "TriggerAuthentication", "ServiceMonitor", "PrometheusRule"}
    assert ("Deployment", "local-aws", "localstack") in rendered
    assert ("Deployment", "local-aws", "emulator") in rendered
    account = one(rendered, "ServiceAccount", "callback-worker", "callback-worker")
    assert not account["metadata"].get("annotations"), "no IRSA role outside EKS"


@pytest.mark.parametrize("version", VERSIONS)
def test_every_rendered_object_passes_kubernetes_validate_strict(
    rendered: dict[tuple[str, str, str], JsonObject], version: str, tmp_path: Path
) -> None:
    files = []
    for index, document in enumerate(rendered.values()):
        path = tmp_path / f"{index:02d}-{document['kind'].lower()}.yaml"
        path.write_text(yaml.safe_dump(document))
        files.append(str(path))
    result = run_tool("kubernetes-validate", "--strict", "--kubernetes-version", version, *files)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("passed for resource") == len(files), result.stdout


def worker_env(rendered: dict[tuple[str, str, str], JsonObject]) -> dict[str, str]:
    container = worker_container(one(rendered, "Deployment", "callback-worker", "callback-worker"))
    env = {
        str(key): str(value)
        for key, value in one(rendered, "ConfigMap", "callback-worker", "callback-worker")["data"].items()
    }
    env.update({item["name"]: item["value"] for item in container["env"]})
    return env


def service_address(rendered: dict[tuple[str, str, str], JsonObject], url: str) -> JsonObject:
    """The Service an in-cluster URL (``http://NAME.NAMESPACE.svc.cluster.local:PORT``) names; its port must exist."""
    parts = urlsplit(url)
    assert parts.hostname is not None
    name, namespace, *_ = parts.hostname.split(".")
    service = one(rendered, "Service", namespace, name)
    assert parts.port in {port["port"] for port in service["spec"]["ports"]}, url
    return service


def test_the_worker_settings_validate(
    rendered: dict[tuple[str, str, str], JsonObject], monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in list(os.environ):
        if key.startswith("CALLBACK_WORKER_"):
            monkeypatch.delenv(key)
    for key, value in {**load_image().env(), **worker_env(rendered)}.items():
        if key.startswith("CALLBACK_WORKER_"):
            monkeypatch.setenv(key, value)
    settings = load_settings()
    assert settings.queue_url.endswith("/000000000000/callbacks"), "the queue the init script creates"


def test_worker_and_emulator_reach_localstack_and_each_other(rendered: dict[tuple[str, str, str], JsonObject]) -> None:
    env = worker_env(rendered)
    localstack = service_address(rendered, env["AWS_ENDPOINT_URL_SQS"])
    emulator = service_address(rendered, env["AWS_ENDPOINT_URL_SAGEMAKER"])
    assert localstack["metadata"]["name"] == "localstack"
    assert emulator["metadata"]["name"] == "emulator"
    emulator_container = one(rendered, "Deployment", "local-aws", "emulator")["spec"]["template"]["spec"]["containers"][
        0
    ]
    emulator_env = {item["name"]: item["value"] for item in emulator_container["env"]}
    assert emulator_env["AWS_ENDPOINT_URL_SQS"] == env["AWS_ENDPOINT_URL_SQS"]
    assert emulator_container["args"][:1] == ["emulate"]
    assert (
        str(emulator["spec"]["ports"][0]["port"])
        == emulator_container["args"][emulator_container["args"].index("--port") + 1]
    )


def test_network_policy_admits_localstack_and_the_emulator_and_keeps_dns_and_https(
    rendered: dict[tuple[str, str, str], JsonObject],
) -> None:
    rules = one(rendered, "NetworkPolicy", "callback-worker", "callback-worker")["spec"]["egress"]
    ports = {(port["protocol"], port["port"]) for rule in rules for port in rule["ports"]}
    assert ports == {("UDP", 53), ("TCP", 53), ("TCP", 443), ("TCP", 4566), ("TCP", 4599)}
    (local,) = [rule for rule in rules if "to" in rule]
    assert local["to"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "local-aws"}}}]


def test_images_are_the_locally_built_targets(rendered: dict[tuple[str, str, str], JsonObject]) -> None:
    worker = worker_container(one(rendered, "Deployment", "callback-worker", "callback-worker"))
    emulator = one(rendered, "Deployment", "local-aws", "emulator")["spec"]["template"]["spec"]["containers"][0]
    assert (worker["image"], worker["imagePullPolicy"]) == ("localhost/sagemaker-callback-worker:0.1.0", "Never")
    assert (emulator["image"], emulator["imagePullPolicy"]) == ("localhost/sagemaker-pipelines-emulator:0.1.0", "Never")


def test_localstack_runs_the_compose_init_script_word_for_word(
    rendered: dict[tuple[str, str, str], JsonObject],
) -> None:
    data = one(rendered, "ConfigMap", "local-aws", "localstack-init")["data"]
    assert data == {INIT_SCRIPT.name: INIT_SCRIPT.read_text()}
    volume = one(rendered, "Deployment", "local-aws", "localstack")["spec"]["template"]["spec"]["volumes"][0]
    assert volume["configMap"] == {"name": "localstack-init", "defaultMode": 0o755}


def test_the_workers_namespace_stays_restricted(rendered: dict[tuple[str, str, str], JsonObject]) -> None:
    labels = one(rendered, "Namespace", "", "callback-worker")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    replicas = one(rendered, "Deployment", "callback-worker", "callback-worker")["spec"].get("replicas", 1)
    assert replicas == 1, "without KEDA the Deployment runs one replica"
