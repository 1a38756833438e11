"""``AddTags``, ``ListTags`` and ``DeleteTags`` on pipeline ARNs (the SDK's ``upsert(tags=...)`` path).

A pipeline holds at most 50 tags; adding a key again replaces its value. An ARN that names no pipeline
here is a ``ValidationException`` (these operations model no ``ResourceNotFound``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from callback_worker.emulator.arns import Partition
from callback_worker.emulator.errors import ValidationError
from callback_worker.emulator.pagination import paginate
from callback_worker.emulator.state import Pipeline, Store

#: Tags one resource may hold.
MAX_TAGS = 50

Params = Mapping[str, Any]


def merge_tags(pipeline: Pipeline, tags: Sequence[Mapping[str, str]]) -> None:
    """Add ``tags`` (``[{Key, Value}]``) to ``pipeline``; :class:`ValidationError` beyond :data:`MAX_TAGS`."""
    merged = dict(pipeline.tags)
    merged.update({tag["Key"]: tag.get("Value", "") for tag in tags})
    if len(merged) > MAX_TAGS:
        raise ValidationError(f"A resource can have at most {MAX_TAGS} tags; this request would give it {len(merged)}")
    pipeline.tags = merged


class TagOperations:
    """The tag handlers, bound to one emulator's state."""

    def __init__(self, store: Store, partition: Partition) -> None:
        self.store = store
        self.partition = partition

    def _pipeline(self, arn: str) -> Pipeline:
        name = self.partition.pipeline_name(arn)
        pipeline = self.store.pipeline(name) if name is not None and name != arn else None
        if pipeline is None or pipeline.arn != arn:
            raise ValidationError(f"Resource {arn} does not exist or is not a pipeline of this emulator")
        return pipeline

    def add_tags(self, params: Params) -> dict[str, Any]:
        """``AddTags``: the tags added."""
        merge_tags(self._pipeline(params["ResourceArn"]), params["Tags"])
        return {"Tags": list(params["Tags"])}

    def list_tags(self, params: Params) -> dict[str, Any]:
        """``ListTags``, by key."""
        pipeline = self._pipeline(params["ResourceArn"])
        items = [{"Key": key, "Value": value} for key, value in pipeline.tags.items()]
        page, token = paginate(
            items,
            lambda tag: (tag["Key"],),
            scope=f"ListTags/{pipeline.arn}",
            descending=False,
            max_results=params.get("MaxResults"),
            next_token=params.get("NextToken"),
        )
        return {"Tags": page, **({"NextToken": token} if token else {})}

    def delete_tags(self, params: Params) -> dict[str, Any]:
        """``DeleteTags``: keys not present are ignored."""
        pipeline = self._pipeline(params["ResourceArn"])
        for key in params["TagKeys"]:
            pipeline.tags.pop(key, None)
        return {}
