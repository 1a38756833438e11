"""The start-up checks' own logic (``worker/preflight.py``, ``queue_advice.py``, ``probes.py``): queue URLs and
regions, which start-up errors are tried again and for how long, the queue's attributes against the settings, what a
SageMaker probe's error says."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import (
    ClientError,
    ConfigParseError,
    EndpointConnectionError,
    NoCredentialsError,
    ProfileNotFound,
)

from callback_worker.config.settings import Settings, env_name
from callback_worker.worker.preflight import (
    Endpoint,
    Finding,
    Level,
    keeps_trying,
    patiently,
    queue_problem,
    queue_region,
    region_finding,
)
from callback_worker.worker.probes import Probe, probe_arn, probe_finding, run_probe
from callback_worker.worker.queue_advice import queue_findings
from callback_worker.worker.taxonomy import StartupFault, startup_fault

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


def test_a_queue_url_of_another_region_is_one_line_naming_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    finding = region_finding("https://sqs.eu-west-1.amazonaws.com/123456789012/q", SQS)
    assert finding == Finding(
        Level.FAIL,
        "region",
        f"{env_name('queue_url')} is a queue in eu-west-1, but the AWS clients use us-east-1 (from AWS_REGION); "
        "set AWS_REGION=eu-west-1",
    )
    assert region_finding(QUEUE, SQS) is None
    assert region_finding("http://127.0.0.1:9/123456789012/q", SQS) is None
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    from_default = region_finding("https://sqs.eu-west-1.amazonaws.com/123456789012/q", SQS)
    assert from_default is not None
    assert "(from AWS_DEFAULT_REGION)" in from_default.text
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    from_profile = region_finding("https://sqs.eu-west-1.amazonaws.com/123456789012/q", SQS)
    assert from_profile is not None
    assert "(from the AWS profile)" in from_profile.text


def test_each_queue_error_start_up_stops_on_is_one_line_naming_the_fix() -> None:
    def text(exc: Exception) -> str:
        found = queue_problem(exc, QUEUE, SQS)
        assert found.level is Level.FAIL
        return f"{found.subject}: {found.text}"

    assert text(NoCredentialsError()).startswith("credentials: none found")
    assert text(client_error("InvalidClientTokenId")).startswith("credentials: refused (InvalidClientTokenId")
    assert text(EndpointConnectionError(endpoint_url="https://x")).startswith("SQS: no answer at https://sqs.us")
    assert "does not exist in us-east-1" in text(client_error("AWS.SimpleQueueService.NonExistentQueue"))
    assert "grant the worker's role sqs:ReceiveMessage" in text(client_error("AccessDenied"))
    assert text(client_error("ServiceUnavailable", 503)).startswith("SQS: ServiceUnavailable at https://sqs.us")
    assert text(client_error("ThrottlingException")).endswith("throughout start-up: m; start again later")
    assert text(client_error("InvalidAttributeName")).startswith("queue: CALLBACK_WORKER_QUEUE_URL=")


LOCAL = Endpoint("SQS", "http://127.0.0.1:4566", "AWS_ENDPOINT_URL_SQS", "us-east-1")


@pytest.mark.parametrize("fault", list(StartupFault))
def test_on_aws_endpoints_start_up_tries_again_unless_the_fault_is_certain_to_be_a_mistake(
    fault: StartupFault,
) -> None:
    """One rule for SQS and SageMaker: a connection reset, access denied (IAM still propagating), an unknown answer
    are tried again within the window on AWS's own endpoints; with an endpoint override only an outage is."""
    assert keeps_trying(fault, SQS) is (fault not in (StartupFault.NO_CREDENTIALS, StartupFault.NO_QUEUE))
    assert keeps_trying(fault, LOCAL) is (fault is StartupFault.OUTAGE)


def test_an_endpoint_is_overridden_when_a_variable_set_it() -> None:
    assert LOCAL.overridden
    assert Endpoint("SQS", "http://x", "AWS_ENDPOINT_URL", "us-east-1").overridden
    assert not SQS.overridden


class Flaky:
    """Raises each of ``errors`` on successive calls, then answers."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "answered"


async def test_one_connection_reset_on_aws_s_endpoint_is_waited_out_and_stops_at_once_with_an_override() -> None:
    reset = Flaky(ConnectionResetError("reset by peer"))
    assert await patiently(reset, SQS, "SQS GetQueueAttributes") == "answered"
    assert reset.calls == 2
    local = Flaky(ConnectionResetError("reset by peer"))
    with pytest.raises(ConnectionResetError):
        await patiently(local, LOCAL, "SQS GetQueueAttributes")
    assert local.calls == 1


async def test_start_up_stops_once_the_window_is_over() -> None:
    denied = Flaky(*[client_error("AccessDenied") for _ in range(100)])
    with pytest.raises(ClientError):
        await patiently(denied, SQS, "SQS GetQueueAttributes", window=0.0)
    assert denied.calls == 1
    missing = Flaky(client_error("AWS.SimpleQueueService.NonExistentQueue"))
    with pytest.raises(ClientError):
        await patiently(missing, SQS, "SQS GetQueueAttributes")
    assert missing.calls == 1


async def test_one_access_denied_from_a_required_probe_on_aws_s_endpoint_is_waited_out() -> None:
    """A pipeline-scoped policy being rolled out (or any IAM change) denies for a while: no crash-loop."""
    answers = Flaky(client_error("AccessDeniedException"), client_error("ResourceNotFound"))
    probe = Probe("ListPipelineExecutionSteps", answers, "X=true", required=True, resource="arn:r")
    aws = Endpoint("SageMaker", "https://api.sagemaker.us-east-1.amazonaws.com", "the default", "us-east-1")
    assert (await run_probe(probe, aws, window=60.0)).level is Level.OK
    assert answers.calls == 2
    once = Flaky(client_error("AccessDeniedException"), client_error("ResourceNotFound"))
    optional = Probe("ListPipelineExecutionSteps", once, "X=true", required=False, resource="arn:r")
    assert (await run_probe(optional, aws, window=60.0)).level is Level.WARN  # nothing needs it: asked once
    assert once.calls == 1


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
        "sagemaker:ListPipelineExecutionSteps on arn:r (a role limited to named pipelines must also allow "
        "pipeline/callback-worker-preflight, the made-up one the check asks about)",
    )
    assert "verif" not in text.lower()
    assert verdict(client_error("AccessDeniedException"), required=False)[0] is Level.WARN
    level, text = verdict(EndpointConnectionError(endpoint_url="http://127.0.0.1:9"))
    assert level is Level.FAIL
    assert text.startswith("no answer at http://127.0.0.1:9 (AWS_ENDPOINT_URL_SAGEMAKER), which X=true needs")
    assert verdict(client_error("InternalFailure", 500)) == (
        Level.FAIL,
        "ListPipelineExecutionSteps: InternalFailure at http://127.0.0.1:9 (AWS_ENDPOINT_URL_SAGEMAKER), which X=true "
        "needs: m; an outage; start again later",
    )
    assert verdict(client_error("InternalFailure", 500), required=False)[0] is Level.WARN
    level, text = verdict(client_error("ValidationException"))
    assert level is Level.FAIL  # one rule with SQS: an answer nobody foresaw stops start-up when a setting needs it
    assert "cannot tell whether it is allowed" in text
    assert verdict(client_error("ValidationException"), required=False)[0] is Level.WARN


def test_the_probe_arn_is_in_the_queue_s_partition_and_account() -> None:
    assert probe_arn("arn:aws-cn:sqs:cn-north-1:111122223333:q", "cn-north-1") == (
        "arn:aws-cn:sagemaker:cn-north-1:111122223333:pipeline/callback-worker-preflight/execution/000000000000"
    )
    assert probe_arn(None, "us-east-1", "444455556666").startswith("arn:aws:sagemaker:us-east-1:444455556666:")


async def _never() -> None:
    raise AssertionError("not called")


def http_error(status: int, code: str, headers: dict[str, str]) -> ClientError:
    response: Any = {"Error": {"Code": code, "Message": "..."}, "ResponseMetadata": {"HTTPStatusCode": status}}
    response["ResponseMetadata"]["HTTPHeaders"] = headers
    return ClientError(response, "ListPipelineExecutionSteps")


@pytest.mark.parametrize(
    ("error", "fault"),
    [
        (http_error(404, "404", {"content-type": "text/html"}), StartupFault.NOT_AWS),
        (http_error(405, "405", {"server": "Werkzeug"}), StartupFault.NOT_AWS),
        (http_error(500, "500", {"server": "Werkzeug"}), StartupFault.OUTAGE),
        (http_error(502, "502", {"content-type": "text/html"}), StartupFault.OUTAGE),
        (http_error(500, "InternalFailure", {"x-amzn-requestid": "r-1"}), StartupFault.OUTAGE),
        (http_error(503, "503", {"x-amzn-RequestId": "r-1"}), StartupFault.OUTAGE),
    ],
)
def test_an_answer_with_no_aws_error_in_it_is_not_the_service(error: ClientError, fault: StartupFault) -> None:
    assert startup_fault(error) is fault


@pytest.mark.parametrize(
    ("url", "local"),
    [
        ("http://127.0.0.1:4566", True),
        ("http://localstack:4566", True),
        ("https://vpce-0a1b2c3d.sqs.us-east-1.vpce.amazonaws.com", False),
        ("https://sqs-fips.us-east-1.amazonaws.com", False),
        ("https://sqs.cn-north-1.amazonaws.com.cn", False),
    ],
)
def test_an_endpoint_variable_naming_aws_s_own_host_is_waited_for_as_aws_is(url: str, local: bool) -> None:
    """A VPC interface or FIPS endpoint set through AWS_ENDPOINT_URL_SQS is production: start-up keeps its window."""
    assert Endpoint("SQS", url, "AWS_ENDPOINT_URL_SQS", "us-east-1").overridden is local


def test_botocore_s_own_configuration_errors_stop_start_up_at_once() -> None:
    for error in (ProfileNotFound(profile="nosuch"), ConfigParseError(path="~/.aws/config")):
        assert startup_fault(error) is StartupFault.NO_CREDENTIALS
