"""deploy/kubernetes: the PodDisruptionBudget and the spread of replicas over zones and nodes."""

from __future__ import annotations

from tests.deploy.manifests import JsonObject, kubernetes_objects

ZONE = "topology.kubernetes.io/zone"
NODE = "kubernetes.io/hostname"


def pod_labels() -> dict[str, str]:
    labels: dict[str, str] = kubernetes_objects()["Deployment"]["spec"]["template"]["metadata"]["labels"]
    return labels


def test_disruption_budget_covers_the_worker_pods() -> None:
    budget = kubernetes_objects()["PodDisruptionBudget"]
    assert budget["apiVersion"] == "policy/v1"
    assert budget["spec"]["selector"]["matchLabels"].items() <= pod_labels().items()
    assert budget["metadata"]["namespace"] == kubernetes_objects()["Deployment"]["metadata"]["namespace"]


def test_disruption_budget_never_blocks_a_node_drain() -> None:
    """One pod at a time, and never a budget that a single replica (KEDA's minimum) cannot satisfy during a drain."""
    spec = kubernetes_objects()["PodDisruptionBudget"]["spec"]
    minimum = kubernetes_objects()["ScaledObject"]["spec"]["minReplicaCount"]
    assert spec.get("maxUnavailable") == 1
    assert "minAvailable" not in spec or int(spec["minAvailable"]) < minimum
    assert spec["unhealthyPodEvictionPolicy"] == "AlwaysAllow", "an unready pod must not hold a drain up"


def spread(key: str) -> JsonObject:
    constraints = kubernetes_objects()["Deployment"]["spec"]["template"]["spec"]["topologySpreadConstraints"]
    (constraint,) = [item for item in constraints if item["topologyKey"] == key]
    return dict(constraint)


def test_replicas_spread_over_zones_then_nodes_without_blocking_scale_up() -> None:
    for key in (ZONE, NODE):
        constraint = spread(key)
        assert constraint["maxSkew"] == 1, key
        assert constraint["labelSelector"]["matchLabels"].items() <= pod_labels().items(), key
        assert constraint["whenUnsatisfiable"] == "ScheduleAnyway", f"{key}: a full zone must not stop a scale-up"
        assert constraint["matchLabelKeys"] == ["pod-template-hash"], f"{key}: count each rollout's pods apart"
