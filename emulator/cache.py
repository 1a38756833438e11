"""Step caching (``CacheConfig``), for the step types the service caches.

As the developer guide describes it ("Caching pipeline steps"; the types are those of "Default cache key
attributes by pipeline step type": Processing, Training, Tuning, AutoML, Transform, ClarifyCheck, QualityCheck
and EMR): a step with ``{"CacheConfig": {"Enabled": true, "ExpireAfter": "PT1H"}}`` reuses the most recent
successful run of the same step, in another execution of the same pipeline, whose arguments resolved the same
and that ended within ``ExpireAfter``; it is ``Succeeded`` at once, with that run's metadata and properties and
``CacheHitResult.SourcePipelineExecutionArn`` naming the execution that ran it. Failed runs, runs that were
themselves cache hits and steps taken over by a selective execution are never reused. Here the cache key is
every resolved argument (the service compares a documented subset per type, so a change it ignores misses
here); ``CacheConfig`` and ``RetryPolicies`` are not part of it. Without ``ExpireAfter`` a run never expires.

``ExpireAfter``: see :mod:`emulator.durations`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from callback_worker.emulator.durations import parse_duration
from callback_worker.emulator.state import Execution, StepRun, StepStatus
from callback_worker.emulator.values import JSONValue

_NOT_IN_KEY = frozenset({"CacheConfig", "RetryPolicies"})


def cache_key(resolved: JSONValue) -> str:
    """The cache key of a stubbed step: its resolved members, ``CacheConfig`` and ``RetryPolicies`` left out."""
    members = resolved if isinstance(resolved, dict) else {"": resolved}
    kept = {key: value for key, value in members.items() if key not in _NOT_IN_KEY}
    return json.dumps(kept, sort_keys=True, separators=(",", ":"))


def find_cached(
    executions: Iterable[Execution], execution: Execution, run: StepRun, now: float
) -> tuple[str, StepRun] | None:
    """The execution ARN and run that ``run`` (of ``execution``) reuses, if its step caches and one matches."""
    enabled, expire_after = run.spec.cache
    if not enabled or run.cache_key is None:
        return None
    oldest = now - parse_duration(expire_after, run.spec.name) if expire_after else float("-inf")
    found: list[tuple[str, StepRun]] = []
    for other in executions:
        earlier = other.steps.get(run.spec.name)
        if other is execution or earlier is None or earlier.status is not StepStatus.SUCCEEDED:
            continue
        if earlier.cache_source or earlier.selective_source or earlier.cache_key != run.cache_key:
            continue
        if (earlier.end_time or 0.0) >= oldest:
            found.append((other.arn, earlier))
    return max(found, key=lambda hit: (hit[1].end_time or 0.0, hit[1].seq), default=None)
