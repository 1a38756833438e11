"""A small evaluator of SQS queue policies: which principal the policy lets do which action.

It reads the elements the shipped queue policies use — ``Effect``, ``Principal`` (``*`` or ``{"AWS": ARNs}``),
``Action`` / ``NotAction`` with ``*`` wildcards, and the conditions ``ArnEquals`` / ``ArnNotEquals`` on
``aws:PrincipalArn`` and ``Bool`` on ``aws:SecureTransport`` — and raises on anything else, so a policy it cannot
read is a failing test rather than a guess. For one request (principal, action, TLS or not) the answer is IAM's for a
principal of the queue's own account: an explicit ``Deny`` wins; else an ``Allow`` of the queue policy is enough;
else the principal's own identity policy decides (``IDENTITY``).
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from enum import StrEnum
from fnmatch import fnmatchcase
from pathlib import Path

from tests.deploy.manifests import JsonObject


def _sqs_actions() -> tuple[str, ...]:
    """Every action the SQS authorization reference lists, from parliament's copy of it (read here: importing
    parliament leaves the file open)."""
    spec = importlib.util.find_spec("parliament")
    assert spec is not None, "parliament is installed with the dev dependencies"
    assert spec.submodule_search_locations
    path = Path(next(iter(spec.submodule_search_locations))) / "iam_definition.json"
    services = json.loads(path.read_text(encoding="utf-8"))
    return tuple(
        sorted(
            f"sqs:{privilege['privilege']}"
            for service in services
            if service["prefix"] == "sqs"
            for privilege in service["privileges"]
        )
    )


SQS_ACTIONS = _sqs_actions()
#: SQS's limits on a queue policy (the developer guide's policy quotas).
MAX_STATEMENTS = 20
MAX_ACTIONS_PER_STATEMENT = 7
MAX_PRINCIPALS = 50
MAX_CONDITIONS = 10
MAX_BYTES = 8192


class Decision(StrEnum):
    DENY = "deny"
    ALLOW = "allow"
    IDENTITY = "identity policy decides"


@dataclass(frozen=True)
class Request:
    principal: str
    """The caller's role ARN (``aws:PrincipalArn`` of its sessions)."""
    action: str
    secure: bool = True


def as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _principal_matches(statement: JsonObject, principal: str) -> bool:
    named = statement["Principal"]
    if named == "*":
        return True
    assert set(named) == {"AWS"}, named
    return principal in as_list(named["AWS"])


def _action_matches(statement: JsonObject, action: str) -> bool:
    if "Action" in statement:
        return any(fnmatchcase(action.lower(), pattern.lower()) for pattern in as_list(statement["Action"]))
    return not any(fnmatchcase(action.lower(), pattern.lower()) for pattern in as_list(statement["NotAction"]))


def _conditions_hold(statement: JsonObject, request: Request) -> bool:
    for operator, tests in statement.get("Condition", {}).items():
        for key, values in tests.items():
            wanted = as_list(values)
            if (operator, key) == ("ArnEquals", "aws:PrincipalArn"):
                holds = request.principal in wanted
            elif (operator, key) == ("ArnNotEquals", "aws:PrincipalArn"):
                holds = request.principal not in wanted
            elif (operator, key) == ("Bool", "aws:SecureTransport"):
                holds = str(request.secure).lower() in wanted
            else:
                raise AssertionError(f"the evaluator does not read {operator} on {key}")
            if not holds:
                return False
    return True


def applies(statement: JsonObject, request: Request) -> bool:
    """The statement speaks of this request."""
    return (
        _principal_matches(statement, request.principal)
        and _action_matches(statement, request.action)
        and _conditions_hold(statement, request)
    )


def decide(policy: JsonObject, request: Request) -> Decision:
    """What the queue policy makes of ``request``."""
    effects = {statement["Effect"] for statement in policy["Statement"] if applies(statement, request)}
    if "Deny" in effects:
        return Decision.DENY
    return Decision.ALLOW if "Allow" in effects else Decision.IDENTITY


def table(policy: JsonObject, principals: dict[str, str], *, secure: bool = True) -> dict[str, dict[str, Decision]]:
    """Principal name → action → decision, for every SQS action."""
    return {
        name: {action: decide(policy, Request(arn, action, secure)) for action in SQS_ACTIONS}
        for name, arn in principals.items()
    }


def granted(rows: dict[str, Decision], decision: Decision) -> set[str]:
    return {action for action, found in rows.items() if found is decision}
