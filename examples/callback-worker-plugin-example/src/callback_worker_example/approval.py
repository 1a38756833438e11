"""``approval``: a callback step that waits until a person approves or rejects, holding no worker slot meanwhile.

Step arguments (``CallbackStep(inputs={...})`` in the SageMaker Python SDK):

- ``decisionFile`` (required): path of the JSON file the decision is written to, for example on a shared volume:
  ``{"decision": "approve", "by": "alice", "comment": "metrics look fine"}`` (``"reject"`` to reject);
- ``pollSeconds`` (default 60): seconds between two looks at the file;
- ``maxChecks`` (default 1440, a day at one look a minute): after this many looks without a decision, the step fails.

Outputs: ``approvedBy`` (String) and ``checks`` (Integer). To wait on a ticket system or a chat bot instead, replace
:func:`read_decision`; the rest stays as it is.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from callback_worker import CallbackContext, Fail, JSONValue, Retry

DEFAULT_POLL_SECONDS = 60.0
DEFAULT_MAX_CHECKS = 1440


class ApprovalGate:
    """Answers the step with a Success once approved, a Failure once rejected, and looks again later otherwise.

    The worker builds one instance with no arguments (the entry point names the class) and calls it from a thread,
    since it is synchronous. Waiting is a :class:`~worker.Retry`: the worker re-queues the message with ``state`` and
    calls again after ``delay`` seconds — across restarts, without holding a slot or an SQS lease.
    """

    def __call__(self, context: CallbackContext) -> dict[str, str | int] | Retry:
        path = Path(_required_text(context.arguments, "decisionFile"))
        poll_seconds = _positive_number(context.arguments, "pollSeconds", DEFAULT_POLL_SECONDS)
        max_checks = int(_positive_number(context.arguments, "maxChecks", DEFAULT_MAX_CHECKS))
        checks = _checks_so_far(context.state) + 1
        decision = read_decision(path)
        if decision is None:
            if checks >= max_checks:
                raise Fail(f"no decision in {path} after {checks} checks")
            return Retry(delay=poll_seconds, state={"checks": checks})
        by = str(decision.get("by") or "someone")
        verdict = decision.get("decision")
        if verdict == "approve":
            return {"approvedBy": by, "checks": checks}
        if verdict == "reject":
            raise Fail(f"rejected by {by}: {decision.get('comment') or 'no comment'}")
        raise Fail(f"{path}: 'decision' must be 'approve' or 'reject', not {verdict!r}")


def read_decision(path: Path) -> Mapping[str, JSONValue] | None:
    """The decision written to ``path``, or None while there is none.

    A file being written may not parse yet: that is "no decision yet" too. Any other trouble (a permission error,
    say) is raised: the worker counts it as a crash and calls again with backoff, then fails the step.
    """
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except ValueError:
        return None
    if not isinstance(document, dict):
        raise Fail(f"{path} holds JSON {type(document).__name__}, not an object")
    return document


def _required_text(arguments: Mapping[str, JSONValue], name: str) -> str:
    value = arguments.get(name)
    if not isinstance(value, str) or not value:
        # Fail, not an exception of our own: retrying cannot fix the pipeline's arguments.
        raise Fail(f"argument {name!r} is required and must be a non-empty string")
    return value


def _positive_number(arguments: Mapping[str, JSONValue], name: str, default: float) -> float:
    value = arguments.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise Fail(f"argument {name!r} must be a positive number, not {value!r}")
    return float(value)


def _checks_so_far(state: JSONValue) -> int:
    checks = state.get("checks") if isinstance(state, dict) else None
    return checks if isinstance(checks, int) else 0
