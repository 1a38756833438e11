"""deploy/iam/queue-policy.json and dlq-policy.json, evaluated: statement by statement, which principal each one
speaks of for which SQS action, and what follows for every principal and every action SQS has.

The queue: the worker's role receives, deletes, renews, reads attributes and sends (continuations); the pipeline
execution role only sends; KEDA's role only reads the queue depth; the operators' role reads attributes and sends
(``dlq redrive``, ``send-test-message``) and is the one principal the policy does not fence, so that it can still
administer the queue (this policy included) with its own identity policy; every other principal of the account, and
every request without TLS, is denied everything — whatever its identity policy grants. The dead-letter queue: only the
operators' role, and nobody sends to it (SQS moves the dead letters itself, from the one queue its redrive allow
policy names).
"""

from __future__ import annotations

import json
import re

import pytest

from tests.deploy.manifests import (
    DEPLOY,
    ECS,
    IAM,
    JsonObject,
    kubernetes_env,
    kubernetes_objects,
    load_json,
    queue_arn,
)
from tests.deploy.policies import (
    MAX_ACTIONS_PER_STATEMENT,
    MAX_BYTES,
    MAX_CONDITIONS,
    MAX_PRINCIPALS,
    MAX_STATEMENTS,
    SQS_ACTIONS,
    Decision,
    Request,
    applies,
    as_list,
    granted,
    table,
)

ACCOUNT = "arn:aws:iam::123456789012"
PIPELINE_ROLE = f"{ACCOUNT}:role/sagemaker-pipeline-execution"
OPERATORS_ROLE = f"{ACCOUNT}:role/callback-worker-operators"
STRANGER = f"{ACCOUNT}:role/another-team"
OTHER_ACCOUNT = "arn:aws:iam::210987654321:role/callback-worker"
WORKER_ACTIONS = {
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibility",
    "sqs:GetQueueAttributes",
    "sqs:SendMessage",
}
OPERATOR_QUEUE_ACTIONS = {"sqs:GetQueueAttributes", "sqs:GetQueueUrl", "sqs:SendMessage"}
OPERATOR_DLQ_ACTIONS = {
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibility",
    "sqs:GetQueueAttributes",
    "sqs:GetQueueUrl",
    "sqs:ListMessageMoveTasks",
    "sqs:StartMessageMoveTask",
}
ALL = set(SQS_ACTIONS)


def principals() -> dict[str, str]:
    """The deployment's principals by name, the roles read from the manifests that use them."""
    objects = kubernetes_objects()
    worker = {
        objects["ServiceAccount"]["metadata"]["annotations"]["eks.amazonaws.com/role-arn"],
        load_json(ECS / "task-definition.json")["taskRoleArn"],
    }
    assert len(worker) == 1, "the Kubernetes and ECS examples use the same worker role"
    return {
        "worker": worker.pop(),
        "pipeline": PIPELINE_ROLE,
        "keda": objects["TriggerAuthentication"]["spec"]["podIdentity"]["roleArn"],
        "operators": OPERATORS_ROLE,
        "stranger": STRANGER,
        "other account": OTHER_ACCOUNT,
    }


def pairs(names: set[str], actions: set[str]) -> set[tuple[str, str]]:
    return {(name, action) for name in names for action in actions}


def coverage(statement: JsonObject, *, secure: bool = True) -> set[tuple[str, str]]:
    """The (principal, action) requests the statement speaks of."""
    return {
        (name, action)
        for name, arn in principals().items()
        for action in SQS_ACTIONS
        if applies(statement, Request(arn, action, secure))
    }


EVERYONE = {"worker", "pipeline", "keda", "operators", "stranger", "other account"}
STRANGERS = {"stranger", "other account"}
QUEUE_STATEMENTS = {
    "PipelineExecutionRolesSendCallbackMessages": pairs({"pipeline"}, {"sqs:SendMessage"}),
    "WorkerConsumesAndRequeues": pairs({"worker"}, WORKER_ACTIONS),
    "OperatorsInspectAndRedrive": pairs({"operators"}, OPERATOR_QUEUE_ACTIONS),
    "KedaReadsQueueDepth": pairs({"keda"}, {"sqs:GetQueueAttributes"}),
    "NoOtherPrincipals": pairs(STRANGERS, ALL),
    "PipelineExecutionRolesOnlySend": pairs({"pipeline"}, ALL - {"sqs:SendMessage"}),
    "WorkerOnlyConsumesAndRequeues": pairs({"worker"}, ALL - WORKER_ACTIONS),
    "KedaOnlyReadsQueueDepth": pairs({"keda"}, ALL - {"sqs:GetQueueAttributes"}),
    "TlsOnly": set(),
}
DLQ_STATEMENTS = {
    "OperatorsReadAnswerAndRedrive": pairs({"operators"}, OPERATOR_DLQ_ACTIONS),
    "NoOtherPrincipals": pairs(EVERYONE - {"operators"}, ALL),
    "NobodySendsToTheDeadLetterQueue": pairs(EVERYONE, {"sqs:SendMessage"}),
    "TlsOnly": set(),
}


def policy(name: str) -> JsonObject:
    document: JsonObject = load_json(IAM / name)
    assert document["Version"] == "2012-10-17"
    return document


def dead_letter_queue() -> str:
    """The DLQ the README's set-up commands create and name in the queue's redrive policy."""
    text = (DEPLOY / "README.md").read_text()
    source = queue_arn(kubernetes_env()["CALLBACK_WORKER_QUEUE_URL"])
    target = f"{source}-dlq"
    assert f'deadLetterTargetArn\\":\\"{target}\\"' in text, "the README's redrive policy names the DLQ"
    return target


@pytest.mark.parametrize(
    ("name", "expected"), [("queue-policy.json", QUEUE_STATEMENTS), ("dlq-policy.json", DLQ_STATEMENTS)]
)
def test_each_statement_speaks_of_exactly_these_principals_and_actions(
    name: str, expected: dict[str, set[tuple[str, str]]]
) -> None:
    statements = policy(name)["Statement"]
    assert [item["Sid"] for item in statements] == list(expected)
    for statement in statements:
        assert coverage(statement) == expected[statement["Sid"]], statement["Sid"]
    (tls,) = [item for item in statements if item["Sid"] == "TlsOnly"]
    assert coverage(tls, secure=False) == pairs(EVERYONE, ALL), "every request without TLS is refused"


def test_the_queue_lets_each_principal_do_only_its_part() -> None:
    decided = table(policy("queue-policy.json"), principals())
    assert granted(decided["worker"], Decision.ALLOW) == WORKER_ACTIONS
    assert granted(decided["worker"], Decision.DENY) == ALL - WORKER_ACTIONS
    assert granted(decided["pipeline"], Decision.ALLOW) == {"sqs:SendMessage"}
    assert granted(decided["pipeline"], Decision.DENY) == ALL - {"sqs:SendMessage"}
    assert granted(decided["keda"], Decision.ALLOW) == {"sqs:GetQueueAttributes"}
    assert granted(decided["keda"], Decision.DENY) == ALL - {"sqs:GetQueueAttributes"}
    assert granted(decided["operators"], Decision.ALLOW) == OPERATOR_QUEUE_ACTIONS
    assert granted(decided["operators"], Decision.IDENTITY) == ALL - OPERATOR_QUEUE_ACTIONS, "administers the queue"
    for stranger in STRANGERS:
        assert granted(decided[stranger], Decision.DENY) == ALL, "read tokens, delete callbacks, purge: all refused"
    insecure = table(policy("queue-policy.json"), principals(), secure=False)
    assert all(granted(rows, Decision.DENY) == ALL for rows in insecure.values())


def test_the_dead_letter_queue_is_the_operators_alone_and_nobody_sends_to_it() -> None:
    decided = table(policy("dlq-policy.json"), principals())
    assert granted(decided["operators"], Decision.ALLOW) == OPERATOR_DLQ_ACTIONS
    assert granted(decided["operators"], Decision.DENY) == {"sqs:SendMessage"}
    for name in EVERYONE - {"operators"}:
        assert granted(decided[name], Decision.DENY) == ALL, name
    insecure = table(policy("dlq-policy.json"), principals(), secure=False)
    assert all(granted(rows, Decision.DENY) == ALL for rows in insecure.values())


def test_the_policies_agree_with_the_roles_own_policies_and_name_their_queues() -> None:
    decided = table(policy("queue-policy.json"), principals())

    def sqs_actions(name: str) -> set[str]:
        found: set[str] = set()
        for statement in policy(name)["Statement"]:
            found |= {action for action in as_list(statement["Action"]) if action.startswith("sqs:")}
        return found

    assert granted(decided["worker"], Decision.ALLOW) == sqs_actions("worker-policy.json")
    assert granted(decided["keda"], Decision.ALLOW) == sqs_actions("keda-policy.json")
    assert granted(decided["pipeline"], Decision.ALLOW) == sqs_actions("pipeline-execution-policy.json")
    source = queue_arn(kubernetes_env()["CALLBACK_WORKER_QUEUE_URL"])
    assert {item["Resource"] for item in policy("queue-policy.json")["Statement"]} == {source}
    assert {item["Resource"] for item in policy("dlq-policy.json")["Statement"]} == {dead_letter_queue()}


@pytest.mark.parametrize("name", ["queue-policy.json", "dlq-policy.json"])
def test_the_policies_fit_sqs_limits(name: str) -> None:
    document = policy(name)
    statements = document["Statement"]
    assert len(json.dumps(document, separators=(",", ":"))) <= MAX_BYTES
    assert len(statements) <= MAX_STATEMENTS
    for statement in statements:
        assert len(as_list(statement.get("Action") or statement.get("NotAction"))) <= MAX_ACTIONS_PER_STATEMENT
        principal = statement["Principal"]
        assert principal == "*" or len(as_list(principal["AWS"])) <= MAX_PRINCIPALS
        assert sum(len(tests) for tests in statement.get("Condition", {}).values()) <= MAX_CONDITIONS


def test_the_evaluator_sees_a_policy_that_fences_only_sending() -> None:
    """The check bites: a policy that denies only ``SendMessage`` to strangers leaves receiving, deleting and purging
    to their identity policies; a condition the evaluator cannot read fails rather than being guessed."""
    queue = "arn:aws:sqs:us-east-1:123456789012:q"
    only_send: JsonObject = {
        "Statement": [
            {
                "Sid": "NoOtherSenders",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "sqs:SendMessage",
                "Resource": queue,
                "Condition": {"ArnNotEquals": {"aws:PrincipalArn": PIPELINE_ROLE}},
            }
        ]
    }
    rows = table(only_send, {"stranger": STRANGER})["stranger"]
    assert granted(rows, Decision.DENY) == {"sqs:SendMessage"}
    assert {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:PurgeQueue"} <= granted(rows, Decision.IDENTITY)
    unreadable = {**only_send["Statement"][0], "Condition": {"StringLike": {"aws:SourceVpce": "vpce-*"}}}
    with pytest.raises(AssertionError, match="does not read StringLike"):
        applies(unreadable, Request(STRANGER, "sqs:SendMessage"))


def test_the_readme_lets_only_the_queue_name_the_dead_letter_queue() -> None:
    """SQS moves a source queue's dead letters into whichever queue its redrive policy names, as no principal, so the
    DLQ policy cannot stop it; the DLQ's redrive allow policy is what keeps every other queue of the account from
    naming it (and moving bodies of its choosing in). The README creates the DLQ with it, after the queue it names."""
    text = (DEPLOY / "README.md").read_text()
    source = queue_arn(kubernetes_env()["CALLBACK_WORKER_QUEUE_URL"])
    dlq_name = dead_letter_queue().rsplit(":", 1)[1]
    (written,) = re.findall(r'"RedriveAllowPolicy": "((?:[^"\\]|\\.)*)"', text)
    assert json.loads(written.replace('\\"', '"')) == {"redrivePermission": "byQueue", "sourceQueueArns": [source]}
    command = text[text.rindex("aws sqs ", 0, text.index('"RedriveAllowPolicy"')) :]
    assert command.startswith(f"aws sqs create-queue --queue-name {dlq_name} "), "set when the DLQ is created"
    assert text.index(f"create-queue --queue-name {source.rsplit(':', 1)[1]} ") < text.index(command)
