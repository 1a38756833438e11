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

PERMISSION_POLICIES = ("worker-policy.json", "kms-policy.json")
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


def test_ecs_task_role_trust_policy() -> None:
    (statement,) = statements("ecs-task-trust-policy.json")
    assert statement["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}
    assert statement["Action"] == "sts:AssumeRole"
    task_role = load_json(ECS / "task-definition.json")["taskRoleArn"]
    assert statement["Condition"]["StringEquals"]["aws:SourceAccount"] == task_role.split(":")[4]
