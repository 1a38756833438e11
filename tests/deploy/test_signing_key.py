"""The signing key in the shipped deployments (SECURITY.md, "Authenticated continuations"): Kubernetes mounts a
Secret as the file ``CALLBACK_WORKER_SIGNING_KEY_FILE`` names, readable by the worker's group only and never shipped
in the base; ECS injects a Secrets Manager secret as ``CALLBACK_WORKER_SIGNING_KEY``; neither carries a key in
plain text. The local kind overlay generates the Secret (a fixed key, for that cluster only)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import PurePosixPath

import pytest
import yaml

from tests.deploy.manifests import (
    DEPLOY,
    ECS,
    KUBERNETES,
    ecs_container,
    kubernetes_objects,
    load_json,
    worker_container,
)

SECRET = "callback-worker-signing-key"


def test_kubernetes_mounts_the_secret_as_the_key_file() -> None:
    deployment = kubernetes_objects()["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    container = worker_container(deployment)
    env = {item["name"]: item for item in container.get("env", [])}
    path = PurePosixPath(env["CALLBACK_WORKER_SIGNING_KEY_FILE"]["value"])
    (volume,) = [volume for volume in pod["volumes"] if "secret" in volume]
    assert volume["secret"]["secretName"] == SECRET
    (mount,) = [mount for mount in container["volumeMounts"] if mount["name"] == volume["name"]]
    assert mount["readOnly"] is True
    (item,) = volume["secret"]["items"]
    assert PurePosixPath(mount["mountPath"]) / item["path"] == path
    assert volume["secret"]["defaultMode"] == 0o440
    assert pod["securityContext"]["fsGroup"] == container["securityContext"]["runAsGroup"]
    assert "CALLBACK_WORKER_SIGNING_KEY" not in env, "the key itself never sits in the manifest"


def test_the_base_ships_no_secret() -> None:
    kinds = {
        document["kind"]
        for path in KUBERNETES.glob("*.yaml")
        for document in yaml.safe_load_all(path.read_text())
        if document
    }
    assert "Secret" not in kinds


def test_the_local_overlay_generates_the_secret_the_base_mounts() -> None:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed (its `kustomize` renders the overlay)")
    result = subprocess.run(
        ["kubectl", "kustomize", str(DEPLOY / "kubernetes-local")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    documents = [document for document in yaml.safe_load_all(result.stdout) if document]
    (secret,) = [document for document in documents if document["kind"] == "Secret"]
    assert secret["metadata"]["name"].startswith(SECRET)
    (deployment,) = [d for d in documents if d["kind"] == "Deployment" and d["metadata"]["name"] == "callback-worker"]
    volumes = deployment["spec"]["template"]["spec"]["volumes"]
    assert [volume["secret"]["secretName"] for volume in volumes if "secret" in volume] == [secret["metadata"]["name"]]


def test_ecs_injects_the_key_from_secrets_manager() -> None:
    container = ecs_container(load_json(ECS / "task-definition.json"))
    (secret,) = [item for item in container["secrets"] if item["name"].startswith("CALLBACK_WORKER_SIGNING_KEY")]
    assert secret["name"] == "CALLBACK_WORKER_SIGNING_KEY"
    assert secret["valueFrom"].startswith("arn:aws:secretsmanager:")
    assert "CALLBACK_WORKER_SIGNING_KEY" not in {item["name"] for item in container["environment"]}
