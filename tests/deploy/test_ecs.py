"""deploy/ecs: the JSON files are valid input for the AWS CLI calls in deploy/README.md (checked against botocore's
service models, offline), and agree with the image and with each other."""

from __future__ import annotations

import re

import botocore.session
import pytest
from botocore.validate import ParamValidator

from tests.deploy.manifests import (
    ECS,
    FARGATE_MAX_STOP_TIMEOUT,
    JsonObject,
    ecs_container,
    ecs_env,
    load_image,
    load_json,
)

#: File -> (service, operation) it is the ``--cli-input-json`` of.
CLI_INPUTS = {
    "task-definition.json": ("ecs", "RegisterTaskDefinition"),
    "scalable-target.json": ("application-autoscaling", "RegisterScalableTarget"),
    "scaling-policy.json": ("application-autoscaling", "PutScalingPolicy"),
}


def validation_errors(params: JsonObject, service: str, operation: str) -> str:
    model = botocore.session.get_session().get_service_model(service)
    shape = model.operation_model(operation).input_shape
    assert shape is not None, f"{service}.{operation} takes no input"
    report = ParamValidator().validate(params, shape)
    return str(report.generate_report()) if report.has_errors() else ""


@pytest.mark.parametrize(("name", "call"), CLI_INPUTS.items())
def test_cli_input_matches_the_service_model(name: str, call: tuple[str, str]) -> None:
    assert validation_errors(load_json(ECS / name), *call) == ""


def test_the_model_check_rejects_unknown_fields() -> None:
    params = {**load_json(ECS / "task-definition.json"), "stopTimeOut": 60}
    assert "Unknown parameter" in validation_errors(params, "ecs", "RegisterTaskDefinition")


def task() -> JsonObject:
    return load_json(ECS / "task-definition.json")


def test_container_matches_the_image_contract() -> None:
    container = ecs_container(task())
    image = load_image()
    assert container["user"] == image.last("USER").arguments
    assert container["readonlyRootFilesystem"] is True
    assert container["essential"] is True
    assert container.get("privileged", False) is False
    assert container["linuxParameters"]["capabilities"]["drop"] == ["ALL"]
    assert container.get("command", image.exec_form("CMD")) == image.exec_form("CMD")
    assert "entryPoint" not in container, "keep the image's init (dumb-init) entrypoint"


def test_health_check_is_the_images_healthcheck() -> None:
    check = ecs_container(task())["healthCheck"]
    options, command = load_image().healthcheck()
    assert check["command"] == ["CMD", *command]
    assert f"{check['interval']}s" == options["interval"]
    assert f"{check['timeout']}s" == options["timeout"]
    assert f"{check['startPeriod']}s" == options["start-period"]
    assert str(check["retries"]) == options["retries"]


def test_port_logs_and_region() -> None:
    container = ecs_container(task())
    env = ecs_env()
    (mapping,) = container["portMappings"]
    assert mapping["containerPort"] == int(env["CALLBACK_WORKER_HEALTH_PORT"])
    logs = container["logConfiguration"]
    assert logs["logDriver"] == "awslogs"
    assert {"awslogs-group", "awslogs-region", "awslogs-stream-prefix"} <= logs["options"].keys()
    assert logs["options"]["awslogs-region"] == env["AWS_REGION"] == env["AWS_DEFAULT_REGION"]


def test_logs_never_block_the_worker_and_are_json_lines() -> None:
    """The worker writes one JSON object per line to stdout, unbuffered: with awslogs in blocking mode a slow
    CloudWatch Logs would stall those writes and with them the event loop."""
    options = ecs_container(task())["logConfiguration"]["options"]
    assert options["mode"] == "non-blocking"
    assert options["max-buffer-size"].endswith("m")
    assert ecs_env()["CALLBACK_WORKER_LOG_FORMAT"] == "json"
    assert load_image().env()["PYTHONUNBUFFERED"] == "1"


def test_health_check_start_period_covers_start_up_and_the_first_poll() -> None:
    check = ecs_container(task())["healthCheck"]
    assert check["startPeriod"] >= int(ecs_env()["CALLBACK_WORKER_WAIT_TIME"])


def test_stop_timeout_fits_fargate() -> None:
    assert ecs_container(task())["stopTimeout"] <= FARGATE_MAX_STOP_TIMEOUT


def test_scaling_policy_tracks_backlog_per_task() -> None:
    target = load_json(ECS / "scalable-target.json")
    policy = load_json(ECS / "scaling-policy.json")
    for key in ("ServiceNamespace", "ResourceId", "ScalableDimension"):
        assert policy[key] == target[key], key
    assert target["MinCapacity"] >= 1, "with no task the backlog per task is undefined: keep one running"
    configuration = policy["TargetTrackingScalingPolicyConfiguration"]
    assert configuration["TargetValue"] == int(ecs_env()["CALLBACK_WORKER_CONCURRENCY"]), (
        "the target is messages per task: keep it equal to CALLBACK_WORKER_CONCURRENCY"
    )
    metrics = {metric["Id"]: metric for metric in configuration["CustomizedMetricSpecification"]["Metrics"]}
    (result,) = [metric for metric in metrics.values() if metric.get("ReturnData", True)]
    referenced = set(re.findall(r"[a-z][A-Za-z0-9_]*", result["Expression"]))
    assert referenced == set(metrics) - {result["Id"]}, "the expression uses every other metric"
    names = {metric["MetricStat"]["Metric"]["MetricName"] for metric in metrics.values() if "MetricStat" in metric}
    assert {"ApproximateNumberOfMessagesVisible", "RunningTaskCount"} <= names
    queue = ecs_env()["CALLBACK_WORKER_QUEUE_URL"].rsplit("/", 1)[1]
    cluster, service = target["ResourceId"].split("/")[1:]
    for metric in metrics.values():
        if "MetricStat" not in metric:
            continue
        dimensions = {item["Name"]: item["Value"] for item in metric["MetricStat"]["Metric"]["Dimensions"]}
        if metric["MetricStat"]["Metric"]["Namespace"] == "AWS/SQS":
            assert dimensions == {"QueueName": queue}
        else:
            assert dimensions == {"ClusterName": cluster, "ServiceName": service}
