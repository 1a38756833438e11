"""deploy/iam: parliament finds nothing in the permission policies; the policies name exactly the actions the worker
needs on the queue and the executions the deployments use; the trust policies trust the right principals."""

from __future__ import annotations

import re

import pytest

from tests.deploy.manifests import (
    ECS,
    IAM,
    JsonObject,
    kubernetes_env,
    kubernetes_objects,
    load_json,
    queue_arn,
    run_tool,
)

PERMISSION_POLICIES = (
    "worker-policy.json",
    "kms-policy.json",
    "keda-policy.json",
    "pipeline-execution-policy.json",
    "queue-policy.json",
    "dlq-policy.json",
)
#: The example pipeline execution role (the pipeline's RoleArn), which SageMaker sends callback messages with.
PIPELINE_ROLE = "arn:aws:iam::123456789012:role/sagemaker-pipeline-execution"
SQS_ACTIONS = {
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibility",
    "sqs:GetQueueAttributes",
    "sqs:SendMessage",
}
SAGEMAKER_ACTIONS = {
    "sagemaker:SendPipelineExecutionStepSuccess",
    "sagemaker:SendPipelineExecutionStepFailure",
    "sagemaker:DescribePipelineExecution",
    "sagemaker:ListPipelineExecutionSteps",
}


@pytest.mark.parametrize("name", PERMISSION_POLICIES)
def test_parliament_finds_nothing(name: str) -> None:
    result = run_tool("parliament", "--files", str(IAM / name), "--json", "--include-community-auditors")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "", result.stdout


def test_parliament_reports_a_resource_mismatch() -> None:
    """The check bites: a SageMaker action on the queue's ARN is a finding."""
    policy = '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": '
    policy += '"sagemaker:SendPipelineExecutionStepSuccess", "Resource": "arn:aws:sqs:us-east-1:123456789012:q"}]}'
    result = run_tool("parliament", "--string", policy, "--json")
    assert result.returncode != 0
    assert "RESOURCE_MISMATCH" in result.stdout


def statements(name: str) -> list[JsonObject]:
    policy = load_json(IAM / name)
    assert policy["Version"] == "2012-10-17"
    items: list[JsonObject] = policy["Statement"]
    return items


def actions(statement: JsonObject) -> set[str]:
    value = statement["Action"]
    return {value} if isinstance(value, str) else set(value)


def test_worker_policy_grants_exactly_the_needed_actions() -> None:
    granted: dict[str, set[str]] = {}
    for statement in statements("worker-policy.json"):
        assert statement["Effect"] == "Allow"
        resources = statement["Resource"]
        for action in actions(statement):
            granted.setdefault(action, set()).update([resources] if isinstance(resources, str) else resources)
    assert set(granted) == SQS_ACTIONS | SAGEMAKER_ACTIONS
    queues = {queue_arn(kubernetes_env()["CALLBACK_WORKER_QUEUE_URL"])}
    ecs_environment = load_json(ECS / "task-definition.json")["containerDefinitions"][0]["environment"]
    queues |= {queue_arn(item["value"]) for item in ecs_environment if item["name"] == "CALLBACK_WORKER_QUEUE_URL"}
    assert len(queues) == 1, "the Kubernetes and ECS examples use the same queue"
    (queue,) = queues
    _, _, _, region, account, _ = queue.split(":")
    for action in SQS_ACTIONS:
        assert granted[action] == {queue}, action
    for action in SAGEMAKER_ACTIONS:
        assert granted[action] == {f"arn:aws:sagemaker:{region}:{account}:pipeline/*/execution/*"}, action


def test_kms_policy_is_limited_to_sqs() -> None:
    (statement,) = statements("kms-policy.json")
    assert actions(statement) == {"kms:Decrypt", "kms:GenerateDataKey"}
    assert ":key/" in statement["Resource"]
    service = statement["Condition"]["StringEquals"]["kms:ViaService"]
    assert re.fullmatch(r"sqs\.[a-z0-9-]+\.amazonaws\.com", service), service


def test_irsa_trust_policy_trusts_the_worker_and_keda_service_accounts() -> None:
    objects = kubernetes_objects()
    account = objects["ServiceAccount"]["metadata"]
    expected = {f"system:serviceaccount:{account['namespace']}:{account['name']}"}
    if objects["TriggerAuthentication"]["spec"]["podIdentity"].get("identityOwner") == "workload":
        expected.add("system:serviceaccount:keda:keda-operator")
    subjects = set()
    role_account = account["annotations"]["eks.amazonaws.com/role-arn"].split(":")[4]
    for statement in statements("irsa-trust-policy.json"):
        assert statement["Effect"] == "Allow"
        assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
        provider = statement["Principal"]["Federated"]
        assert provider.startswith(f"arn:aws:iam::{role_account}:oidc-provider/")
        issuer = provider.split("oidc-provider/", 1)[1]
        condition = statement["Condition"]["StringEquals"]
        assert condition[f"{issuer}:aud"] == "sts.amazonaws.com"
        subjects.add(condition[f"{issuer}:sub"])
    assert subjects == expected


def the_queue() -> str:
    return queue_arn(kubernetes_env()["CALLBACK_WORKER_QUEUE_URL"])


def as_set(value: str | list[str]) -> set[str]:
    return {value} if isinstance(value, str) else set(value)


def test_every_policy_names_the_same_queue() -> None:
    for name in ("worker-policy.json", "keda-policy.json", "pipeline-execution-policy.json", "queue-policy.json"):
        queues = {item["Resource"] for item in statements(name) if str(item["Resource"]).startswith("arn:aws:sqs:")}
        assert queues == {the_queue()}, name


def test_pipeline_execution_policy_sends_and_uses_the_queue_key_through_sqs() -> None:
    send, key = statements("pipeline-execution-policy.json")
    assert actions(send) == {"sqs:SendMessage"}
    assert actions(key) == {"kms:GenerateDataKey", "kms:Decrypt"}
    (kms_statement,) = statements("kms-policy.json")
    assert key["Resource"] == kms_statement["Resource"], "the queue's key, as in kms-policy.json"
    assert key["Condition"] == kms_statement["Condition"]


def test_keda_policy_only_reads_queue_attributes() -> None:
    (statement,) = statements("keda-policy.json")
    assert statement["Effect"] == "Allow"
    assert actions(statement) == {"sqs:GetQueueAttributes"}
    assert statement["Resource"] == the_queue()


def test_keda_trust_policy_trusts_the_keda_operator_through_the_cluster_provider() -> None:
    (worker,) = statements("irsa-trust-policy.json")
    (keda,) = statements("keda-trust-policy.json")
    assert keda["Action"] == "sts:AssumeRoleWithWebIdentity"
    provider = keda["Principal"]["Federated"]
    assert provider == worker["Principal"]["Federated"], "the same cluster"
    issuer = provider.split("oidc-provider/", 1)[1]
    condition = keda["Condition"]["StringEquals"]
    assert condition == {
        f"{issuer}:sub": "system:serviceaccount:keda:keda-operator",
        f"{issuer}:aud": "sts.amazonaws.com",
    }


def test_ecs_task_role_trust_policy() -> None:
    (statement,) = statements("ecs-task-trust-policy.json")
    assert statement["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}
    assert statement["Action"] == "sts:AssumeRole"
    task_role = load_json(ECS / "task-definition.json")["taskRoleArn"]
    assert statement["Condition"]["StringEquals"]["aws:SourceAccount"] == task_role.split(":")[4]


def test_pod_identity_trust_policy_trusts_the_eks_pod_identity_service_of_one_cluster() -> None:
    (statement,) = statements("pod-identity-trust-policy.json")
    assert statement["Principal"] == {"Service": "pods.eks.amazonaws.com"}
    assert sorted(statement["Action"]) == ["sts:AssumeRole", "sts:TagSession"], "EKS Pod Identity tags its sessions"
    account = kubernetes_objects()["ServiceAccount"]["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
    assert statement["Condition"]["StringEquals"]["aws:SourceAccount"] == account.split(":")[4]
    cluster = statement["Condition"]["ArnEquals"]["aws:SourceArn"]
    region = kubernetes_env()["AWS_REGION"]
    assert re.fullmatch(rf"arn:aws:eks:{region}:\d{{12}}:cluster/[\w-]+", cluster), cluster
