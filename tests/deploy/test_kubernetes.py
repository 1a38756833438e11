"""deploy/kubernetes: kubernetes-validate --strict on the core objects, a schema check of the KEDA objects, and the
consistency between the Deployment, its ConfigMap, the ServiceAccount, the Service and the kustomization.
The PodDisruptionBudget, the spread over zones and the Prometheus Operator's objects: test_monitoring.py and
test_availability.py."""

from __future__ import annotations

import re

import pytest

from tests.deploy.manifests import (
    KUBERNETES,
    JsonObject,
    kubernetes_env,
    kubernetes_objects,
    load_image,
    load_yaml_documents,
    run_tool,
    worker_container,
)

CORE_KINDS = {
    "Namespace",
    "ServiceAccount",
    "ConfigMap",
    "Deployment",
    "Service",
    "NetworkPolicy",
    "PodDisruptionBudget",
}
KEDA_KINDS = {"ScaledObject", "TriggerAuthentication"}
PROMETHEUS_OPERATOR_KINDS = {"ServiceMonitor", "PrometheusRule"}
#: Kubernetes releases the core objects are validated against: kubernetes-validate's newest and an older one still
#: run by managed clusters.
KUBERNETES_VERSIONS = ("1.37.0", "1.30.0")

SCALED_OBJECT_SPEC = {
    "scaleTargetRef",
    "pollingInterval",
    "cooldownPeriod",
    "initialCooldownPeriod",
    "idleReplicaCount",
    "minReplicaCount",
    "maxReplicaCount",
    "fallback",
    "advanced",
    "triggers",
}
SQS_TRIGGER_METADATA = {
    "queueURL",
    "queueURLFromEnv",
    "queueLength",
    "activationQueueLength",
    "awsRegion",
    "awsEndpoint",
    "scaleOnInFlight",
    "scaleOnDelayed",
}


def core_files() -> list[str]:
    files = []
    for path in sorted(KUBERNETES.glob("*.yaml")):
        kinds = {document.get("kind") for document in load_yaml_documents(path)}
        if kinds <= CORE_KINDS:
            files.append(str(path.relative_to(KUBERNETES.parents[1])))
    return files


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_core_objects_pass_kubernetes_validate_strict(version: str) -> None:
    files = core_files()
    assert len(files) == len(CORE_KINDS), files
    result = run_tool("kubernetes-validate", "--strict", "--kubernetes-version", version, *files)
    assert result.returncode == 0, result.stdout + result.stderr
    passed = re.findall(r"^INFO (\S+) passed for resource", result.stdout, re.M)
    assert sorted(passed) == sorted(files), f"not every file was validated:\n{result.stdout}{result.stderr}"


def test_every_object_is_core_keda_or_prometheus_operator() -> None:
    assert set(kubernetes_objects()) == CORE_KINDS | KEDA_KINDS | PROMETHEUS_OPERATOR_KINDS


def test_kustomization_lists_every_manifest() -> None:
    (kustomization,) = load_yaml_documents(KUBERNETES / "kustomization.yaml")
    assert kustomization["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
    assert kustomization["kind"] == "Kustomization"
    manifests = {path.name for path in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}
    assert sorted(kustomization["resources"]) == sorted(manifests)
    namespace = kustomization["namespace"]
    for kind, document in kubernetes_objects().items():
        if kind != "Namespace":
            assert document["metadata"]["namespace"] == namespace, kind
    assert kubernetes_objects()["Namespace"]["metadata"]["name"] == namespace
    image_names = {image["name"] for image in kustomization["images"]}
    image = worker_container(kubernetes_objects()["Deployment"])["image"]
    assert image.split(":")[0] in image_names, "the kustomization must set the Deployment's image"


# ---- the Deployment ------------------------------------------------------------------------------------------


def deployment() -> JsonObject:
    return kubernetes_objects()["Deployment"]


def test_deployment_runs_non_root_read_only_and_unprivileged() -> None:
    pod = deployment()["spec"]["template"]["spec"]
    user = int(load_image().last("USER").arguments.split(":")[0])
    pod_context = pod["securityContext"]
    assert pod_context["runAsNonRoot"] is True
    assert pod_context["runAsUser"] == user, "the image's USER"
    assert pod_context["seccompProfile"] == {"type": "RuntimeDefault"}
    context = worker_container(deployment())["securityContext"]
    assert context["runAsNonRoot"] is True
    assert context["runAsUser"] == user
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}


def test_deployment_probes_resources_and_ports() -> None:
    container = worker_container(deployment())
    env = kubernetes_env()
    (port,) = container["ports"]
    assert port["containerPort"] == int(env["CALLBACK_WORKER_HEALTH_PORT"]), "probes must reach the health port"
    expected = {"startupProbe": "/healthz", "livenessProbe": "/healthz", "readinessProbe": "/readyz"}
    for probe, path in expected.items():
        get = container[probe]["httpGet"]
        assert get["path"] == path, probe
        assert get["port"] in (port["name"], port["containerPort"]), probe
    resources = container["resources"]
    assert {"cpu", "memory"} <= resources["requests"].keys()
    assert "memory" in resources["limits"]
    service = kubernetes_objects()["Service"]
    assert service["spec"]["ports"][0]["targetPort"] in (port["name"], port["containerPort"])


def test_deployment_selector_service_and_service_account_agree() -> None:
    spec = deployment()["spec"]
    labels = spec["template"]["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= labels.items()
    assert "replicas" not in spec, "KEDA owns the replica count; a fixed one would fight it on every apply"
    assert kubernetes_objects()["Service"]["spec"]["selector"].items() <= labels.items()
    account = kubernetes_objects()["ServiceAccount"]
    assert spec["template"]["spec"]["serviceAccountName"] == account["metadata"]["name"]
    role = account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
    assert re.fullmatch(r"arn:aws:iam::\d{12}:role/[\w+=,.@/-]+", role), role


def test_config_map_values_are_strings() -> None:
    data = kubernetes_objects()["ConfigMap"]["data"]
    assert all(isinstance(value, str) for value in data.values()), "ConfigMap data values must be strings"


# ---- KEDA ----------------------------------------------------------------------------------------------------


def scaled_object() -> JsonObject:
    return kubernetes_objects()["ScaledObject"]


def sqs_trigger() -> JsonObject:
    (trigger,) = scaled_object()["spec"]["triggers"]
    assert trigger["type"] == "aws-sqs-queue"
    return dict(trigger)


def test_keda_objects_have_the_keda_api_and_known_fields() -> None:
    for kind in KEDA_KINDS:
        document = kubernetes_objects()[kind]
        assert document["apiVersion"] == "keda.sh/v1alpha1", kind
        assert set(document) == {"apiVersion", "kind", "metadata", "spec"}, kind
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", document["metadata"]["name"]), kind
    spec = scaled_object()["spec"]
    assert set(spec) <= SCALED_OBJECT_SPEC, f"unknown ScaledObject fields: {set(spec) - SCALED_OBJECT_SPEC}"
    for field in ("pollingInterval", "cooldownPeriod", "minReplicaCount", "maxReplicaCount"):
        assert isinstance(spec[field], int), field
    assert 0 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]


def test_scaled_object_targets_the_deployment() -> None:
    target = scaled_object()["spec"]["scaleTargetRef"]
    assert target.get("kind", "Deployment") == "Deployment"
    assert target.get("apiVersion", "apps/v1") == "apps/v1"
    assert target["name"] == deployment()["metadata"]["name"]


def test_sqs_trigger_metadata() -> None:
    trigger = sqs_trigger()
    metadata = trigger["metadata"]
    assert set(metadata) <= SQS_TRIGGER_METADATA, f"unknown trigger metadata: {set(metadata) - SQS_TRIGGER_METADATA}"
    assert all(isinstance(value, str) for value in metadata.values()), "KEDA trigger metadata is a string map"
    assert ("queueURL" in metadata) != ("queueURLFromEnv" in metadata), "exactly one of queueURL, queueURLFromEnv"
    env = kubernetes_env()
    if "queueURLFromEnv" in metadata:
        assert metadata["queueURLFromEnv"] in env, "queueURLFromEnv must name a variable the worker container has"
    assert metadata["awsRegion"] == env["AWS_REGION"] == env["AWS_DEFAULT_REGION"]
    assert metadata["queueLength"].isdigit()
    assert int(metadata["queueLength"]) == int(env["CALLBACK_WORKER_CONCURRENCY"]), (
        "queueLength is messages per replica: keep it equal to CALLBACK_WORKER_CONCURRENCY"
    )
    assert metadata.get("scaleOnInFlight", "true") == "true", "handlers at work must keep their replicas"
    for flag in ("scaleOnInFlight", "scaleOnDelayed"):
        assert metadata.get(flag, "false") in ("true", "false"), flag


def test_trigger_authentication_uses_aws_pod_identity() -> None:
    authentication = kubernetes_objects()["TriggerAuthentication"]
    assert sqs_trigger()["authenticationRef"]["name"] == authentication["metadata"]["name"]
    identity = authentication["spec"]["podIdentity"]
    assert identity["provider"] == "aws"
    assert identity.get("identityOwner", "keda") in ("keda", "workload")
    assert not ("roleArn" in identity and "identityOwner" in identity), "KEDA rejects roleArn with identityOwner"


def test_keda_reads_the_queue_with_a_role_of_its_own() -> None:
    identity = kubernetes_objects()["TriggerAuthentication"]["spec"]["podIdentity"]
    worker_role = kubernetes_objects()["ServiceAccount"]["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
    role = identity["roleArn"]
    assert re.fullmatch(r"arn:aws:iam::\d{12}:role/[\w+=,.@/-]+", role), role
    assert role.split(":")[4] == worker_role.split(":")[4], "the example account throughout"
    assert role != worker_role, "not the worker's role, which can receive, delete and send"


# ---- the NetworkPolicy ---------------------------------------------------------------------------------------


def network_policy() -> JsonObject:
    return kubernetes_objects()["NetworkPolicy"]


def test_network_policy_selects_the_worker_pods() -> None:
    spec = network_policy()["spec"]
    labels = deployment()["spec"]["template"]["metadata"]["labels"]
    assert spec["podSelector"]["matchLabels"].items() <= labels.items()
    assert set(spec["policyTypes"]) == {"Ingress", "Egress"}, "both directions are restricted"


def test_network_policy_admits_the_probes_and_the_metrics_service() -> None:
    (rule,) = network_policy()["spec"]["ingress"]
    (port,) = worker_container(deployment())["ports"]
    assert rule["ports"] == [{"protocol": "TCP", "port": port["containerPort"]}]
    service_port = kubernetes_objects()["Service"]["spec"]["ports"][0]["targetPort"]
    assert service_port in (port["name"], port["containerPort"]), "the metrics Service reaches an admitted port"


def test_network_policy_egress_is_dns_and_https() -> None:
    rules = network_policy()["spec"]["egress"]
    ports = {(port["protocol"], port["port"]) for rule in rules for port in rule["ports"]}
    assert ports == {("UDP", 53), ("TCP", 53), ("TCP", 443)}
