"""Finding 9 (network): the health port listens on loopback unless a deployment opens it, and in Kubernetes a
NetworkPolicy admits only the health port.

Before: ``CALLBACK_WORKER_HEALTH_HOST`` defaulted to ``0.0.0.0``, so a bare ``callback-worker run`` on a shared host
served ``/metrics`` to the whole network; deploy/kubernetes had no NetworkPolicy (every pod could reach the worker,
and the worker any address on any port).
"""

from __future__ import annotations

import pytest

from callback_worker.config.settings import Settings, env_name, load_settings
from tests.deploy.manifests import kubernetes_env, kubernetes_objects, load_image
from tests.deploy.test_settings import DEPLOYMENTS, settings_of

#: What the image and the deployments set: every interface of the container.
EVERY_INTERFACE = "0.0.0.0"  # noqa: S104 - the value under test, not a bind


def test_a_bare_run_listens_on_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(env_name(name), raising=False)
    monkeypatch.setenv("CALLBACK_WORKER_QUEUE_URL", "https://sqs.us-east-1.amazonaws.com/123456789012/callbacks")
    assert load_settings().health_host == "127.0.0.1"


def test_the_image_opens_the_health_port_explicitly() -> None:
    assert load_image().env()["CALLBACK_WORKER_HEALTH_HOST"] == EVERY_INTERFACE


@pytest.mark.parametrize("deployment", DEPLOYMENTS)
def test_each_deployment_sets_the_health_host_itself(deployment: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert DEPLOYMENTS[deployment]().get("CALLBACK_WORKER_HEALTH_HOST") == EVERY_INTERFACE, "not only through the image"
    assert settings_of(deployment, monkeypatch).health_host == EVERY_INTERFACE


def test_a_network_policy_admits_only_the_health_port() -> None:
    objects = kubernetes_objects()
    policy = objects["NetworkPolicy"]["spec"]
    labels = objects["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert policy["podSelector"]["matchLabels"].items() <= labels.items(), "the policy selects the worker's pods"
    assert sorted(policy["policyTypes"]) == ["Egress", "Ingress"]
    (rule,) = policy["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": int(kubernetes_env()["CALLBACK_WORKER_HEALTH_PORT"])}]


def test_egress_is_dns_and_https_only() -> None:
    policy = kubernetes_objects()["NetworkPolicy"]["spec"]
    ports = {(port["protocol"], port["port"]) for rule in policy["egress"] for port in rule["ports"]}
    assert ports == {("UDP", 53), ("TCP", 53), ("TCP", 443)}
    assert all("to" not in rule for rule in policy["egress"]), "AWS endpoints have no fixed addresses"
