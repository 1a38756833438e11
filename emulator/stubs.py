"""Stubbed steps (opt-in): the step types the emulator does not run, marked Succeeded after a delay.

With stubs on (``callback-worker emulate --stub-steps``, or ``EmulatorServer(stubs=StubConfig(...))``), a
definition may hold every step type of :data:`STUB_TYPES` (Processing, Training, ..., Endpoint, Lineage, Job,
Cleanup: every type the SageMaker Python SDK v2 and v3 writes). Each starts when its dependencies succeeded, is
``Executing`` for ``delay`` seconds, then ``Succeeded`` (``Stopped`` if its execution is stopped meanwhile), with
the ``Metadata`` member the service reports for its type (an ARN made from the execution id and step name, or
from the name the step's arguments give, e.g. an Endpoint step's ``EndpointName``).

The properties the service always fills are invented, consistently with that metadata: ``TrainingJobName``,
``TrainingJobArn``, ``TrainingJobStatus`` (``Completed``) of a Training step, ``EndpointName``/``Arn``/``Status``
(``InService``) of an Endpoint step, and so on (:func:`invented_properties`).

Any other property (``{"Get": "Steps.Train.ModelArtifacts.S3ModelArtifacts"}``, a Lambda step's
``OutputParameters['x']``, a property file read by ``Std:JsonGet``) is read from the stub values file (which
may also override an invented one): a JSON object keyed by step name (a ForEach child's by its body step's),
then by the property path as written after ``Steps.<name>.``::

    {"Train": {"ModelArtifacts.S3ModelArtifacts": "s3://bucket/model.tar.gz"},
     "Evaluate": {"PropertyFiles.EvaluationReport": {"metrics": {"mse": {"value": 4.2}}}}}

A property with no value there fails the step that reads it, with a reason naming the step and the path.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from callback_worker.emulator.values import JSONValue, load_json


@dataclass(frozen=True)
class StubKind:
    """How the service reports one stubbed step type.

    ``member`` is its ``Metadata`` member; ``resource`` the resource type in its ARN (empty: no ``Arn``);
    ``prefix`` names the properties the service always fills (``<prefix>Name``, ``<prefix>Arn`` and, with a
    ``status``, ``<prefix>Status``), whose name is the step's ``Arguments.<prefix>Name`` when given;
    ``cached``: the service caches the type (``CacheConfig``; see :mod:`emulator.cache`).
    """

    member: str
    resource: str = ""
    prefix: str = ""
    status: str = ""
    cached: bool = False


#: Every step type the SageMaker Python SDK (v2 and v3) writes that the emulator runs as a stub. Caching: the
#: types of the developer guide's "Default cache key attributes by pipeline step type" page.
STUB_TYPES: Mapping[str, StubKind] = {
    "Processing": StubKind("ProcessingJob", "processing-job", "ProcessingJob", "Completed", cached=True),
    "Training": StubKind("TrainingJob", "training-job", "TrainingJob", "Completed", cached=True),
    "Transform": StubKind("TransformJob", "transform-job", "TransformJob", "Completed", cached=True),
    "Tuning": StubKind("TuningJob", "hyper-parameter-tuning-job", "HyperParameterTuningJob", "Completed", True),
    "AutoML": StubKind("AutoMLJob", "automl-job", "AutoMLJob", "Completed", cached=True),
    "Model": StubKind("Model", "model", "Model"),
    "CreateModel": StubKind("Model", "model", "Model"),
    "RegisterModel": StubKind("RegisterModel", "model-package", "ModelPackage", "Completed"),
    "Lambda": StubKind("Lambda", "function"),
    "EMR": StubKind("EMR", cached=True),
    "EMRServerless": StubKind("EMRServerless"),
    "QualityCheck": StubKind("QualityCheck", cached=True),
    "ClarifyCheck": StubKind("ClarifyCheck", cached=True),
    "Endpoint": StubKind("Endpoint", "endpoint", "Endpoint", "InService"),
    "EndpointConfig": StubKind("EndpointConfig", "endpoint-config", "EndpointConfig"),
    "InferenceComponent": StubKind("InferenceComponent", "inference-component", "InferenceComponent", "InService"),
    "Lineage": StubKind("Lineage"),
    "Cleanup": StubKind("Cleanup"),
    "Job": StubKind("Job", "job", "Job", "Completed"),
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


def resource_name(step_type: str, execution_id: str, step: str, arguments: JSONValue) -> str:
    """The name of the resource a stubbed step made: ``Arguments.<prefix>Name`` if given, else one made up."""
    prefix = STUB_TYPES[step_type].prefix
    given = arguments.get("Arguments") if isinstance(arguments, dict) else None
    if prefix and isinstance(given, dict) and isinstance(given.get(f"{prefix}Name"), str):
        return str(given[f"{prefix}Name"])
    return f"pipelines-{execution_id}-{step}"[:63].lower()


def stub_metadata(step_type: str, partition_arn: str, name: str, execution_id: str, step: str) -> dict[str, JSONValue]:
    """The ``Metadata`` of a stubbed step, as the service reports its type (``partition_arn``: ``arn:...:acct``)."""
    kind = STUB_TYPES[step_type]
    special: dict[str, JSONValue] = {
        "EMR": {"ClusterId": "j-emulator", "StepId": f"s-{execution_id}", "StepName": step},
        "EMRServerless": {"ApplicationId": "00emulator", "JobRunId": f"00{execution_id}", "JobRunName": step},
        "QualityCheck": {"CheckType": step_type, "SkipCheck": True},
        "ClarifyCheck": {"CheckType": step_type, "SkipCheck": True},
        "Lineage": {"ActionArns": {}, "ArtifactArns": {}, "ContextArns": {}, "Associations": []},
        "Cleanup": {"CleanedSteps": [], "FailedSteps": [], "SkippedSteps": []},
    }
    if step_type in special:
        return {kind.member: special[step_type]}
    return {kind.member: {"Arn": f"{partition_arn}:{kind.resource}/{name}"}}


def invented_properties(step_type: str, partition_arn: str, name: str) -> dict[str, JSONValue]:
    """The properties the service always fills for a stubbed step: its resource's name, ARN and status."""
    kind = STUB_TYPES[step_type]
    if not kind.prefix:
        return {}
    invented: dict[str, JSONValue] = {
        f"{kind.prefix}Name": name,
        f"{kind.prefix}Arn": f"{partition_arn}:{kind.resource}/{name}",
    }
    if kind.status:
        invented[f"{kind.prefix}Status"] = kind.status
    return invented
