"""Stubbed steps (opt-in): the step types the emulator does not run, marked Succeeded after a delay.

With stubs on (``callback-worker emulate --stub-steps``, or ``EmulatorServer(stubs=StubConfig(...))``), a
definition may hold Processing, Training, Transform, Model, RegisterModel, CreateModel, Lambda, EMR, Tuning,
AutoML, QualityCheck and ClarifyCheck steps. Each starts when its dependencies succeeded, is ``Executing``
for ``delay`` seconds, then ``Succeeded`` (``Stopped`` if its execution is stopped meanwhile), with the
``Metadata`` member the service reports for its type (an ARN made from the execution id and step name).

A reference to a stubbed step's property (``{"Get": "Steps.Train.ModelArtifacts.S3ModelArtifacts"}``, a
Lambda step's ``OutputParameters['x']``, a property file read by ``Std:JsonGet``) reads the stub values
file: a JSON object keyed by step name, then by the property path as written after ``Steps.<name>.``::

    {"Train": {"ModelArtifacts.S3ModelArtifacts": "s3://bucket/model.tar.gz"},
     "Evaluate": {"PropertyFiles.EvaluationReport": {"metrics": {"mse": {"value": 4.2}}}}}

A property with no value there fails the step that reads it, with a reason naming the step and the path.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from callback_worker.emulator.values import JSONValue, load_json

#: Stubbed step type -> (Metadata member, resource type in the ARN; empty when the member has no Arn).
STUB_TYPES: Mapping[str, tuple[str, str]] = {
    "Processing": ("ProcessingJob", "processing-job"),
    "Training": ("TrainingJob", "training-job"),
    "Transform": ("TransformJob", "transform-job"),
    "Model": ("Model", "model"),
    "CreateModel": ("Model", "model"),
    "RegisterModel": ("RegisterModel", "model-package"),
    "Lambda": ("Lambda", "function"),
    "EMR": ("EMR", ""),
    "Tuning": ("TuningJob", "hyper-parameter-tuning-job"),
    "AutoML": ("AutoMLJob", "automl-job"),
    "QualityCheck": ("QualityCheck", ""),
    "ClarifyCheck": ("ClarifyCheck", ""),
}

#: Seconds a stubbed step runs by default.
DEFAULT_STUB_DELAY = 0.5


@dataclass(frozen=True)
class StubConfig:
    """Whether other step types are accepted as stubs, how long they run, and the values of their properties."""

    enabled: bool = False
    delay: float = DEFAULT_STUB_DELAY
    values: Mapping[str, Mapping[str, JSONValue]] = field(default_factory=dict)

    def value(self, step: str, prop: str) -> JSONValue:
        """The stub value of ``Steps.<step>.<prop>``; :class:`KeyError` (with a message) when there is none."""
        values = self.values.get(step, {})
        if prop not in values:
            raise KeyError(f"the stub values have no {prop!r} for step {step!r}")
        return values[prop]


def load_stub_values(path: str | Path) -> dict[str, dict[str, JSONValue]]:
    """Read a stub values file; :class:`ValueError` saying what is wrong with it."""
    try:
        document = load_json(Path(path).read_bytes())
    except OSError as error:
        raise ValueError(f"cannot read the stub values file {path}: {error.strerror}") from None
    except ValueError as error:
        raise ValueError(f"the stub values file {path} is {error}") from None
    if not isinstance(document, dict) or not all(isinstance(item, dict) for item in document.values()):
        raise ValueError(f"the stub values file {path} must be a JSON object of objects (step -> path -> value)")
    return {step: dict(values) for step, values in document.items() if isinstance(values, dict)}


def stub_metadata(step_type: str, partition_arn: str, execution_id: str, step: str) -> dict[str, JSONValue]:
    """The ``Metadata`` of a stubbed step, as the service reports its type (``partition_arn``: ``arn:...:acct``)."""
    member, resource = STUB_TYPES[step_type]
    job = f"pipelines-{execution_id}-{step}"[:63].lower()
    if step_type == "EMR":
        return {member: {"ClusterId": "j-emulator", "StepId": f"s-{execution_id}", "StepName": step}}
    if not resource:
        return {member: {"CheckType": step_type, "SkipCheck": True}}
    return {member: {"Arn": f"{partition_arn}:{resource}/{job}"}}
