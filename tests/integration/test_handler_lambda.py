"""handlers/lambda_.py against moto server's docker-free Lambda (successful invocations) and an HTTP-level stub of
the Lambda Invoke API (what moto cannot do without Docker: function errors, slow functions, throttling)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping

import boto3
import pytest
from aiohttp import web
from botocore.exceptions import ClientError

from callback_worker.handlers.lambda_ import LambdaHandler
from callback_worker.worker.errors import ConfigurationError
from callback_worker.worker.handler import CallbackContext, Fail, JSONValue
from tests.handler_support import (
    HANDLER_ARGUMENT,
    TOKEN,
    callback_context,
    clear_settings,
    handler_factory_fixture,
    moto_api,
    stub_endpoint,
)

PREFIX = "CALLBACK_WORKER_LAMBDA_"
HandlerFactory = Callable[..., LambdaHandler]


def context(arguments: Mapping[str, JSONValue] | None = None) -> CallbackContext:
    return callback_context("lambda", TOKEN, arguments)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_settings(monkeypatch, PREFIX, HANDLER_ARGUMENT)


make_handler = handler_factory_fixture(LambdaHandler, PREFIX)


# --- moto server -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def moto_function(moto_server: str) -> Iterator[str]:
    """A function on moto's docker-free Lambda, which answers queued results or else echoes the payload."""
    moto_api(moto_server, "config", {"lambda": {"use_docker": False}})
    role = boto3.client("iam", endpoint_url=moto_server).create_role(
        RoleName=f"lambda-{uuid.uuid4().hex[:8]}", AssumeRolePolicyDocument="{}"
    )["Role"]["Arn"]
    name = f"fn-{uuid.uuid4().hex[:8]}"
    boto3.client("lambda", endpoint_url=moto_server).create_function(
        FunctionName=name, Runtime="python3.12", Role=role, Handler="app.handler", Code={"ZipFile": b"PK"}
    )
    yield name
    moto_api(moto_server, "config", {"lambda": {"use_docker": True}})


@pytest.fixture
def on_moto(moto_function: str, moto_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", moto_server)
    return moto_function


async def test_the_payload_is_the_context_document(on_moto: str, make_handler: HandlerFactory) -> None:
    outputs = await make_handler(function_name=on_moto)(context({"handler": "lambda", "n": 5, "s": "x"}))
    # moto's docker-free Lambda answers with the payload it got
    assert outputs == {
        "arguments": '{"n":5,"s":"x"}',
        "attempt": 1,
        "executionId": "e1",
        "pipelineExecutionArn": "arn:aws:sagemaker:us-east-1:012345678901:pipeline/p/execution/e1",
        "pipelineName": "p",
    }


async def test_the_functions_json_object_becomes_the_outputs(
    on_moto: str, moto_server: str, make_handler: HandlerFactory
) -> None:
    result = json.dumps({"model": "s3://m", "epochs": 3, "ok": True, "meta": {"a": None}})
    moto_api(moto_server, "static/lambda-simple/response", {"results": [result], "region": "us-east-1"})
    outputs = await make_handler(function_name=on_moto)(context())
    assert outputs == {"model": "s3://m", "epochs": 3, "ok": True, "meta": '{"a":null}'}


async def test_the_token_is_sent_only_when_opted_in(on_moto: str, make_handler: HandlerFactory) -> None:
    assert "token" not in await make_handler(function_name=on_moto)(context())
    assert (await make_handler(function_name=on_moto, send_token="true")(context()))["token"] == TOKEN


async def test_the_function_argument_is_used_only_when_allowed(on_moto: str, make_handler: HandlerFactory) -> None:
    arguments: dict[str, JSONValue] = {"lambda_function_name": on_moto, "x": 1}
    with pytest.raises(Fail, match="set CALLBACK_WORKER_LAMBDA_FUNCTION_NAME"):
        await make_handler()(context(arguments))
    outputs = await make_handler(allow_function_argument="true")(context(arguments))
    assert outputs["arguments"] == '{"x":1}'


# --- HTTP-level stub of the Lambda Invoke API ----------------------------------------------------------------------


class LambdaStub:
    """``POST /2015-03-31/functions/{name}/invocations``, answering what the test queued."""

    def __init__(self) -> None:
        self.answers: list[tuple[int, dict[str, str], bytes]] = []
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.delay = 0.0

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((request.match_info["name"], dict(request.query), await request.read()))
        await asyncio.sleep(self.delay)
        status, headers, body = self.answers.pop(0) if self.answers else (200, {}, b"{}")
        return web.Response(status=status, headers=headers, body=body, content_type="application/json")


@pytest.fixture
async def stub(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[LambdaStub]:
    lambda_stub = LambdaStub()
    route = "/2015-03-31/functions/{name}/invocations"
    async with stub_endpoint(monkeypatch, "AWS_ENDPOINT_URL_LAMBDA", route, lambda_stub.handle):
        yield lambda_stub


def error_body(kind: str, message: str) -> bytes:
    return json.dumps({"errorType": kind, "errorMessage": message, "stackTrace": ["..."]}).encode()


async def test_a_function_error_fails_with_its_type_and_message(stub: LambdaStub, make_handler: HandlerFactory) -> None:
    stub.answers = [(200, {"X-Amz-Function-Error": "Unhandled"}, error_body("KeyError", "'inputData'"))]
    with pytest.raises(Fail) as caught:
        await make_handler(function_name="train")(context())
    assert caught.value.reason == "Lambda function train failed (KeyError): 'inputData'"


async def test_a_function_error_without_json_still_fails(stub: LambdaStub, make_handler: HandlerFactory) -> None:
    stub.answers = [(200, {"X-Amz-Function-Error": "Unhandled"}, b"Task timed out after 3.00 seconds")]
    with pytest.raises(Fail, match=r"Lambda function train failed: 'Task timed out after 3\.00 seconds'"):
        await make_handler(function_name="train")(context())


@pytest.mark.parametrize(
    ("body", "expected"), [(b"null", {}), (b"", {}), (b'{"a": [1]}', {"a": "[1]"})], ids=["null", "empty", "object"]
)
async def test_empty_and_object_results(
    stub: LambdaStub, make_handler: HandlerFactory, body: bytes, expected: dict[str, str]
) -> None:
    stub.answers = [(200, {}, body)]
    assert await make_handler(function_name="train")(context()) == expected


async def test_a_result_that_is_not_an_object_fails(stub: LambdaStub, make_handler: HandlerFactory) -> None:
    stub.answers = [(200, {}, b'"done"')]
    with pytest.raises(Fail, match="the result of Lambda function train is a JSON string, not an object"):
        await make_handler(function_name="train")(context())


async def test_a_slow_function_fails_naming_the_timeout_setting(stub: LambdaStub, make_handler: HandlerFactory) -> None:
    stub.delay = 3
    with pytest.raises(Fail, match=r"did not answer within 1 s \(CALLBACK_WORKER_LAMBDA_TIMEOUT\); it may still be"):
        await make_handler(function_name="train", timeout="1")(context())
    assert len(stub.requests) == 1  # never invoked twice


async def test_throttling_is_raised_for_the_worker_to_retry_without_a_second_invoke(
    stub: LambdaStub, make_handler: HandlerFactory
) -> None:
    throttled = json.dumps({"message": "Rate exceeded", "Type": "User"}).encode()
    stub.answers = [(429, {"x-amzn-ErrorType": "TooManyRequestsException"}, throttled)]
    with pytest.raises(ClientError, match="TooManyRequestsException"):
        await make_handler(function_name="train")(context())
    assert len(stub.requests) == 1


async def test_an_unknown_function_fails_the_step(stub: LambdaStub, make_handler: HandlerFactory) -> None:
    # moto's docker-free Lambda invokes any name, so the service's 404 comes from the stub
    missing = json.dumps({"message": "Function not found: arn:aws:lambda:us-east-1:1:function:nope"}).encode()
    stub.answers = [(404, {"x-amzn-ErrorType": "ResourceNotFoundException"}, missing)]
    with pytest.raises(Fail, match=r"^Lambda function nope: ResourceNotFoundException: Function not found"):
        await make_handler(function_name="nope")(context())


async def test_the_qualifier_is_sent(stub: LambdaStub, make_handler: HandlerFactory) -> None:
    await make_handler(function_name="train", qualifier="prod")(context())
    assert stub.requests[0][:2] == ("train", {"Qualifier": "prod"})


@pytest.mark.parametrize(
    ("name", "value"),
    [("FUNCTION_NAME", ""), ("QUALIFIER", "bad qualifier"), ("TIMEOUT", "0.5"), ("SEND_TOKEN", "perhaps")],
)
def test_bad_settings_fail_construction_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(f"{PREFIX}{name}", value)
    with pytest.raises(ConfigurationError, match=f"invalid setting {PREFIX}{name}="):
        LambdaHandler()
