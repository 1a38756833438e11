"""Finding 10 (deploy): who may send to the queue, and what KEDA holds.

Before: deploy/ shipped no queue policy, so any principal of the account with ``sqs:SendMessage`` on ``*`` could send
callback messages (and so choose handlers); deploy/README.md never said that the *pipeline execution role* needs
``sqs:SendMessage`` (and the KMS permissions), the usual reason a step waits for a message that never arrives; and
KEDA assumed the worker's own role (receive, delete, send) just to read the queue depth.
"""

from __future__ import annotations

from tests.deploy.manifests import DEPLOY, IAM, JsonObject, kubernetes_env, kubernetes_objects, load_json, queue_arn
from tests.deploy.policies import Decision, Request, decide

PIPELINE_ROLE = "arn:aws:iam::123456789012:role/sagemaker-pipeline-execution"
OPERATORS_ROLE = "arn:aws:iam::123456789012:role/callback-worker-operators"


def worker_role() -> str:
    return str(kubernetes_objects()["ServiceAccount"]["metadata"]["annotations"]["eks.amazonaws.com/role-arn"])


def queue() -> str:
    return queue_arn(kubernetes_env()["CALLBACK_WORKER_QUEUE_URL"])


def statements(name: str) -> list[JsonObject]:
    items: list[JsonObject] = load_json(IAM / name)["Statement"]
    return items


def as_set(value: str | list[str]) -> set[str]:
    return {value} if isinstance(value, str) else set(value)


def test_the_queue_policy_lets_only_the_pipeline_the_worker_and_the_operators_send() -> None:
    senders = {PIPELINE_ROLE, worker_role(), OPERATORS_ROLE}
    policy = load_json(IAM / "queue-policy.json")
    for principal in (*senders, "arn:aws:iam::123456789012:role/another-team"):
        decided = decide(policy, Request(principal, "sqs:SendMessage"))
        assert decided is (Decision.ALLOW if principal in senders else Decision.DENY), principal


def test_the_queue_policy_denies_requests_without_tls() -> None:
    (statement,) = [item for item in statements("queue-policy.json") if item.get("Sid") == "TlsOnly"]
    assert statement["Effect"] == "Deny"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_the_pipeline_execution_role_may_send_and_encrypt() -> None:
    policy = statements("pipeline-execution-policy.json")
    granted = {action: item for item in policy for action in as_set(item["Action"])}
    assert set(granted) == {"sqs:SendMessage", "kms:GenerateDataKey", "kms:Decrypt"}
    assert granted["sqs:SendMessage"]["Resource"] == queue()
    assert granted["kms:GenerateDataKey"]["Condition"]["StringEquals"]["kms:ViaService"].startswith("sqs.")


def test_the_readme_says_what_the_pipeline_execution_role_needs() -> None:
    text = " ".join((DEPLOY / "README.md").read_text().split())
    assert "*execution role*" in text
    assert "needs `sqs:SendMessage` on the queue, plus `kms:GenerateDataKey`" in text
    assert "the step waits and no message ever arrives" in text
    assert "iam/queue-policy.json" in text


def test_keda_has_a_read_only_role_of_its_own() -> None:
    identity = kubernetes_objects()["TriggerAuthentication"]["spec"]["podIdentity"]
    assert identity["provider"] == "aws"
    assert identity.get("identityOwner", "keda") == "keda", "KEDA no longer takes the workload's role"
    assert identity["roleArn"] != worker_role()
    (statement,) = statements("keda-policy.json")
    assert (statement["Effect"], statement["Action"], statement["Resource"]) == (
        "Allow",
        "sqs:GetQueueAttributes",
        queue(),
    )


def test_only_the_worker_may_assume_the_worker_role_and_keda_assumes_its_own() -> None:
    def subjects(name: str) -> set[str]:
        found = set()
        for statement in statements(name):
            condition = statement["Condition"]["StringEquals"]
            found |= {value for key, value in condition.items() if key.endswith(":sub")}
        return found

    account = kubernetes_objects()["ServiceAccount"]["metadata"]
    assert subjects("irsa-trust-policy.json") == {f"system:serviceaccount:{account['namespace']}:{account['name']}"}
    assert subjects("keda-trust-policy.json") == {"system:serviceaccount:keda:keda-operator"}
