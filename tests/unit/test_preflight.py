"""The start-up checks' own logic (``worker/preflight.py``): queue URLs and regions, the queue's attributes against the
settings, what a SageMaker probe's error says."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

from callback_worker.config.settings import Settings, env_name
from callback_worker.worker.preflight import (
    Endpoint,
    Finding,
    Level,
    Probe,
    probe_arn,
    probe_finding,
    queue_findings,
    queue_problem,
    queue_region,
    region_finding,
)

QUEUE = "https://sqs.us-east-1.amazonaws.com/123456789012/callbacks"
SQS = Endpoint("SQS", "https://sqs.us-east-1.amazonaws.com", "the default for us-east-1", "us-east-1")
SAGEMAKER = Endpoint("SageMaker", "http://127.0.0.1:9", "AWS_ENDPOINT_URL_SAGEMAKER", "us-east-1")


def settings(**values: object) -> Settings:
    return Settings(queue_url=QUEUE, **values)  # type: ignore[arg-type]


def client_error(code: str, status: int = 400) -> ClientError:
    response: Any = {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(response, "Op")


@pytest.mark.parametrize(
    ("url", "region"),
    [
        (QUEUE, "us-east-1"),
        ("https://sqs.eu-west-1.amazonaws.com/1/q", "eu-west-1"),
        ("https://sqs.cn-north-1.amazonaws.com.cn/1/q", "cn-north-1"),
        ("https://vpce-0a1b-2c3d.sqs.ap-southeast-2.vpce.amazonaws.com/1/q", "ap-southeast-2"),
        ("https://sqs-fips.us-gov-west-1.amazonaws.com/1/q", "us-gov-west-1"),
        ("https://us-west-2.queue.amazonaws.com/1/q", "us-west-2"),
        ("https://queue.amazonaws.com/1/q", "us-east-1"),
        ("http://sqs.us-east-1.localhost.localstack.cloud:4566/000000000000/q", "us-east-1"),
        ("http://127.0.0.1:4566/000000000000/q", None),
    ],
)
def test_the_region_a_queue_url_names(url: str, region: str | None) -> None:
    assert queue_region(url) == region


def test_a_queue_url_of_another_region_is_one_line_naming_the_fix() -> None:
    finding = region_finding("https://sqs.eu-west-1.amazonaws.com/123456789012/q", SQS)
    assert finding == Finding(
        Level.FAIL,
        "region",
        f"{env_name('queue_url')} is a queue in eu-west-1, but the AWS clients use us-east-1 (from AWS_REGION); "
        "set AWS_REGION=eu-west-1",
    )
    assert region_finding(QUEUE, SQS) is None
    assert region_finding("http://127.0.0.1:9/123456789012/q", SQS) is None


def test_queue_errors_that_waiting_cannot_fix_are_findings_and_outages_are_not() -> None:
    def text(exc: Exception) -> str:
        found = queue_problem(exc, QUEUE, SQS)
        assert found is not None
        assert found.level is Level.FAIL
        return f"{found.subject}: {found.text}"

    assert text(NoCredentialsError()).startswith("credentials: none found")
    assert text(client_error("InvalidClientTokenId")).startswith("credentials: refused (InvalidClientTokenId")
    assert text(EndpointConnectionError(endpoint_url="https://x")).startswith("SQS: no answer at https://sqs.us")
    assert "does not exist in us-east-1" in text(client_error("AWS.SimpleQueueService.NonExistentQueue"))
    assert "grant the worker's role sqs:ReceiveMessage" in text(client_error("AccessDenied"))
    assert queue_problem(client_error("ServiceUnavailable", 503), QUEUE, SQS) is None
    assert queue_problem(client_error("ThrottlingException"), QUEUE, SQS) is None


def test_queue_attributes_against_the_settings() -> None:
    plain = {"VisibilityTimeout": "60", "SqsManagedSseEnabled": "false"}
    assert [(f.level, f.text.split(":")[0]) for f in queue_findings(plain, settings())] == [
        (Level.WARN, "no redrive policy"),
        (Level.OK, "VisibilityTimeout 60 s, as CALLBACK_WORKER_VISIBILITY_TIMEOUT=60"),
    ]
    redrive = '{"deadLetterTargetArn": "arn:aws:sqs:us-east-1:1:dlq", "maxReceiveCount": 5}'
    full = {"VisibilityTimeout": "30", "RedrivePolicy": redrive, "KmsMasterKeyId": "alias/cb", "FifoQueue": "true"}
    findings = queue_findings(full, settings(visibility_timeout=90))
    assert [finding.level for finding in findings] == [Level.FAIL, Level.OK, Level.NOTE, Level.NOTE]
    assert "FIFO queue cannot take callback messages" in findings[0].text
    assert findings[1].text == "redrive policy: after 5 receives to arn:aws:sqs:us-east-1:1:dlq"
    assert findings[2].text.startswith("VisibilityTimeout is 30 s; the worker asks for ")
    assert "KMS key alias/cb" in findings[3].text


def test_a_probe_tells_allowed_denied_unreachable_and_outage_apart() -> None:
    def verdict(exc: Exception, *, required: bool = True) -> tuple[Level, str]:
        probe = Probe("ListPipelineExecutionSteps", _never, "X=true", required=required, resource="arn:r")
        found = probe_finding(probe, exc, SAGEMAKER)
        return found.level, found.text

    assert verdict(client_error("ResourceNotFound")) == (Level.OK, "ListPipelineExecutionSteps allowed (X=true)")
    level, text = verdict(client_error("AccessDeniedException"))
    assert (level, text) == (
        Level.FAIL,
        "denied ListPipelineExecutionSteps (AccessDeniedException), which X=true needs; grant "
        "sagemaker:ListPipelineExecutionSteps on arn:r",
    )
    assert verdict(client_error("AccessDeniedException"), required=False)[0] is Level.WARN
    level, text = verdict(EndpointConnectionError(endpoint_url="http://127.0.0.1:9"))
    assert level is Level.FAIL
    assert text.startswith("no answer at http://127.0.0.1:9 (AWS_ENDPOINT_URL_SAGEMAKER), which X=true needs")
    assert verdict(client_error("InternalFailure", 500))[0] is Level.WARN
    assert verdict(client_error("ValidationException"))[0] is Level.NOTE


def test_the_probe_arn_is_in_the_queue_s_partition_and_account() -> None:
    assert probe_arn("arn:aws-cn:sqs:cn-north-1:111122223333:q", "cn-north-1") == (
        "arn:aws-cn:sagemaker:cn-north-1:111122223333:pipeline/callback-worker-preflight/execution/000000000000"
    )
    assert probe_arn(None, "us-east-1", "444455556666").startswith("arn:aws:sagemaker:us-east-1:444455556666:")


async def _never() -> None:
    raise AssertionError("not called")
