"""The fault catalogue comes from botocore's models and retry rules, and its exceptions are the real client's."""

from __future__ import annotations

from typing import Any

import aiohttp
import botocore.session
import pytest
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotocoreConnectionError
from botocore.model import StructureShape

from tests.faultmatrix import botocore_data, catalogue, transport, wire
from tests.faultmatrix.catalogue import COMMON_ERRORS, DURATIONS, Cell, Fault

OPERATIONS = catalogue.operations()
ALL_CELLS = catalogue.cells()


def error_fields(exc: ClientError) -> dict[str, Any]:
    """``response["Error"]`` as a plain dict: the stubs' TypedDict lacks the query-compatibility fields."""
    return dict(exc.response["Error"])


def model_codes(service: str, operation: str) -> set[str]:
    return {f.code for f in catalogue.faults_for(service, operation) if f.source == "model"}


def test_operations_are_the_delivery_path_and_exist_in_the_models() -> None:
    assert len(OPERATIONS) == 10
    assert OPERATIONS[0] == ("sqs", "ReceiveMessage")
    assert ("sagemaker", "SendPipelineExecutionStepFailure") in OPERATIONS
    fresh = botocore.session.get_session()
    for service, operation in OPERATIONS:
        assert operation in fresh.get_service_model(service).operation_names


@pytest.mark.parametrize(("service", "operation"), OPERATIONS, ids=[op for _, op in OPERATIONS])
def test_model_faults_are_exactly_the_models_error_shapes(service: str, operation: str) -> None:
    # Read independently, from a session of our own: the catalogue must neither miss nor invent a modelled error.
    shapes = botocore.session.get_session().get_service_model(service).operation_model(operation).error_shapes
    expected = {shape.name for shape in shapes} | {
        shape.metadata["error"]["code"] for shape in shapes if shape.metadata.get("error", {}).get("code")
    }
    assert expected
    assert model_codes(service, operation) == expected


def test_sagemaker_step_answers_list_conflict_not_found_and_limit() -> None:
    step_answer_faults = {"ConflictException", "ResourceNotFound", "ResourceLimitExceeded"}
    assert model_codes("sagemaker", "SendPipelineExecutionStepSuccess") == step_answer_faults
    assert model_codes("sagemaker", "SendPipelineExecutionStepFailure") == step_answer_faults
    assert model_codes("sagemaker", "ListPipelineExecutionSteps") == {"ResourceNotFound"}
    assert model_codes("sagemaker", "DescribePipelineExecution") == {"ResourceNotFound"}


def test_sqs_models_receipt_handle_errors_only_on_the_single_message_call() -> None:
    # The batch calls report a bad receipt handle per entry (in the answer's Failed list), not as an error.
    assert {"ReceiptHandleIsInvalid", "MessageNotInflight"} <= model_codes("sqs", "ChangeMessageVisibility")
    batch_errors = {"TooManyEntriesInBatchRequest", "EmptyBatchRequest", "BatchEntryIdsNotDistinct"}
    batch_errors.add("InvalidBatchEntryId")
    for operation in ("ChangeMessageVisibilityBatch", "DeleteMessageBatch"):
        assert "ReceiptHandleIsInvalid" not in model_codes("sqs", operation)
        assert batch_errors <= model_codes("sqs", operation)
    for _, operation in (op for op in OPERATIONS if op[0] == "sqs"):
        assert {"QueueDoesNotExist", "RequestThrottled", "UnsupportedOperation", "InvalidSecurity"} <= model_codes(
            "sqs", operation
        )
    assert {"OverLimit", "KmsThrottled", "KmsAccessDenied"} <= model_codes("sqs", "ReceiveMessage")


def test_sqs_model_records_no_legacy_query_codes() -> None:
    """A fact of this botocore, pinned so that a change is noticed: SQS's model is query-compatible but none of its
    error shapes has an ``error`` trait (botocore/handlers.py: "SQS is missing the "error" key from its modeled
    exceptions"). So the catalogue holds the shape names only, not the ``AWS.SimpleQueueService.*`` codes real SQS
    sends in ``x-amzn-query-error`` (which botocore then reports as the code)."""
    model = botocore.session.get_session().get_service_model("sqs")
    assert botocore_data.is_query_compatible("sqs")
    assert not botocore_data.is_query_compatible("sagemaker")
    assert [shape.name for shape in model.error_shapes if "error" in shape.metadata] == []
    assert not [cell.id for cell in ALL_CELLS if cell.fault.code.startswith("AWS.SimpleQueueService.")]


def test_a_modelled_legacy_code_is_recorded_beside_the_shape_name() -> None:
    # The trait as botocore's query-protocol SQS model had it.
    trait = {"code": "AWS.SimpleQueueService.NonExistentQueue", "httpStatusCode": 400, "senderFault": True}
    shape = StructureShape("QueueDoesNotExist", {"type": "structure", "exception": True, "error": trait})
    error = botocore_data.shape_error(shape)
    assert error.codes == ("QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue")
    assert (error.status, error.sender_fault) == (400, True)
    bare = botocore_data.shape_error(StructureShape("OverLimit", {"type": "structure", "exception": True}))
    assert (bare.codes, bare.status, bare.sender_fault) == (("OverLimit",), None, None)


def test_a_legacy_code_reaches_the_caller_as_real_sqs_sends_it(monkeypatch: pytest.MonkeyPatch) -> None:
    legacy = "AWS.SimpleQueueService.NonExistentQueue"
    modelled = botocore_data.ModelledError("QueueDoesNotExist", ("QueueDoesNotExist", legacy), 400, True)
    monkeypatch.setattr(wire, "modelled_errors", lambda service, operation: [modelled])
    exc = Fault(legacy, 400, "client_error", True, "model").exception("ReceiveMessage")
    assert isinstance(exc, ClientError)
    # botocore reports the header's code, keeps the JSON type as QueryErrorCode and picks the class by the latter.
    assert exc.response["Error"]["Code"] == legacy
    assert error_fields(exc) == {
        "Code": legacy,
        "QueryErrorCode": "QueueDoesNotExist",
        "Type": "Sender",
        "Message": "fault matrix: AWS.SimpleQueueService.NonExistentQueue on ReceiveMessage",
    }
    assert type(exc).__name__ == "QueueDoesNotExist"


@pytest.mark.parametrize(("service", "operation"), OPERATIONS, ids=[op for _, op in OPERATIONS])
def test_common_and_retry_faults_are_in_every_operation(service: str, operation: str) -> None:
    faults = {fault.code: fault for fault in catalogue.faults_for(service, operation)}
    for common in COMMON_ERRORS:
        if common.services is None or service in common.services:
            assert faults[common.code].status == common.status, common
    # Read from botocore/retries/standard.py and botocore/data/_retry.json: retried as throttling or transient.
    retried = {"ThrottledException", "RequestLimitExceeded", "SlowDown", "PriorRequestNotComplete"}
    retried |= {"EC2ThrottledException", "TransactionInProgressException", "BandwidthLimitExceeded"}
    retried |= {"ProvisionedThroughputExceededException", "LimitExceededException", "RequestThrottledException"}
    assert retried | {"429", "500", "502", "503", "504", "509"} <= faults.keys()
    assert faults["RequestThrottled"].status == 403  # _retry.json's pairing for SQS; the model records no status
    assert ("ValidationException" in faults) == (service == "sagemaker")
    assert set(transport.FAILURES) <= faults.keys()


def test_faults_are_deduplicated_sorted_and_deterministic() -> None:
    for service, operation in OPERATIONS:
        faults = catalogue.faults_for(service, operation)
        codes = [fault.code for fault in faults]
        assert codes == sorted(set(codes))
        assert faults == catalogue.faults_for(service, operation)
        # A code both modelled and common keeps the model's record.
        if service == "sqs":
            assert next(f for f in faults if f.code == "RequestThrottled").source == "model"
    assert catalogue.cells() == ALL_CELLS
    assert len(set(ALL_CELLS)) == len(ALL_CELLS)
    assert len(ALL_CELLS) == sum(len(catalogue.faults_for(s, o)) for s, o in OPERATIONS) * len(DURATIONS)
    assert len({cell.id for cell in ALL_CELLS}) == len(ALL_CELLS)


def check_client_error(cell: Cell, exc: Exception) -> None:
    fault = cell.fault
    assert isinstance(exc, ClientError), cell.id
    assert exc.response["Error"]["Code"] == fault.code, cell.id
    assert exc.response["ResponseMetadata"]["HTTPStatusCode"] == fault.status, cell.id
    assert exc.operation_name == cell.operation
    assert f"({fault.code}) when calling the {cell.operation} operation" in str(exc)
    if fault.source == "model":
        # The modelled class from the client's exception factory, named after the shape.
        assert type(exc).__name__ == fault.code, cell.id
    else:
        assert type(exc) is ClientError, cell.id
    query_compatible = cell.service == "sqs" and not fault.code.isdigit()
    assert (exc.response["Error"].get("QueryErrorCode") == fault.code) == query_compatible, cell.id


#: The botocore class and the underlying failure (its ``__context__``) each client-side fault raises.
CLIENT_SIDE = {
    "EndpointConnectionError": ("EndpointConnectionError", aiohttp.ClientConnectorDNSError),
    "ClientConnectorError": ("EndpointConnectionError", aiohttp.ClientConnectorError),
    "ConnectionResetError": ("EndpointConnectionError", aiohttp.ClientOSError),
    "ConnectionClosedError": ("ConnectionClosedError", aiohttp.ClientPayloadError),
    "ServerDisconnectedError": ("ConnectionClosedError", aiohttp.ServerDisconnectedError),
    "ReadTimeoutError": ("ReadTimeoutError", aiohttp.SocketTimeoutError),
    "TimeoutError": ("ReadTimeoutError", TimeoutError),
    "ConnectTimeoutError": ("ConnectTimeoutError", aiohttp.ConnectionTimeoutError),
    "ProxyConnectionError": ("ProxyConnectionError", aiohttp.ClientProxyConnectionError),
    "SSLError": ("SSLError", aiohttp.ClientSSLError),
    "CredentialRetrievalError": ("CredentialRetrievalError", type(None)),
    "NoCredentialsError": ("NoCredentialsError", type(None)),
}


def check_client_side(cell: Cell, exc: Exception) -> None:
    raised, cause = CLIENT_SIDE[cell.fault.code]
    assert isinstance(exc, BotoCoreError), cell.id
    assert type(exc).__name__ == raised, cell.id
    assert isinstance(exc.__context__, cause), cell.id
    if cause is not type(None):
        # What botocore's standard retry mode retries as a transient failure; aiobotocore keeps the cause here too.
        assert isinstance(exc, BotocoreConnectionError | HTTPClientError), cell.id
        assert exc.kwargs["error"] is exc.__context__
    if "endpoint_url" in exc.kwargs:
        assert exc.kwargs["endpoint_url"] == botocore_data.endpoint_url(cell.service)


@pytest.mark.parametrize(("service", "operation"), OPERATIONS, ids=[op for _, op in OPERATIONS])
def test_every_cell_builds_its_exception(service: str, operation: str) -> None:
    cells = [cell for cell in ALL_CELLS if (cell.service, cell.operation) == (service, operation)]
    assert {cell.duration for cell in cells} == set(DURATIONS)
    for cell in cells:
        exc = cell.exception()
        assert exc is not cell.exception(), "each call builds a fresh exception"
        assert exc.__traceback__ is None
        if cell.fault.kind == "client_error":
            check_client_error(cell, exc)
        else:
            check_client_side(cell, exc)


def test_error_answers_carry_what_botocore_parses_from_the_wire() -> None:
    gateway = Fault("502", 502, "client_error", None, "common").exception("DescribePipelineExecution")
    assert isinstance(gateway, ClientError)
    assert gateway.response["Error"] == {"Code": "502", "Message": "Bad Gateway"}
    throttled = Fault("RequestThrottled", 403, "client_error", None, "model").exception("DeleteMessageBatch")
    assert isinstance(throttled, ClientError)
    assert type(throttled).__name__ == "RequestThrottled"
    assert error_fields(throttled)["Type"] == "Sender"
    metadata: dict[str, Any] = dict(throttled.response["ResponseMetadata"])
    assert metadata["RequestId"] == wire.request_id("DeleteMessageBatch", "RequestThrottled")
    assert (metadata["RetryAttempts"], metadata["MaxAttemptsReached"]) == (0, True)
    off_path = Fault("Throttling", 400, "client_error", True, "common")
    with pytest.raises(KeyError, match="not an operation of the delivery path"):
        off_path.exception("CreateQueue")


def test_sample_covers_every_operation_duration_and_code_when_k_allows() -> None:
    codes = {cell.fault.code for cell in ALL_CELLS}
    strata = {(cell.operation, cell.duration) for cell in ALL_CELLS}
    k = max(len(codes), len(strata))
    picked = catalogue.sample(ALL_CELLS, k, seed=7)
    assert len(picked) == k
    assert {cell.fault.code for cell in picked} == codes
    assert {(cell.operation, cell.duration) for cell in picked} == strata
    assert picked == [cell for cell in ALL_CELLS if cell in set(picked)], "kept in the matrix's order"


def test_sample_is_deterministic_and_stratified_first() -> None:
    assert catalogue.sample(ALL_CELLS, 40, seed=1) == catalogue.sample(ALL_CELLS, 40, seed=1)
    assert catalogue.sample(ALL_CELLS, 40, seed=1) != catalogue.sample(ALL_CELLS, 40, seed=2)
    # Too few to cover every stratum: every operation still comes before any operation twice.
    assert {cell.operation for cell in catalogue.sample(ALL_CELLS, len(OPERATIONS), seed=3)} == {
        operation for _, operation in OPERATIONS
    }
    assert catalogue.sample(ALL_CELLS, 0, seed=1) == []
    assert catalogue.sample(ALL_CELLS, len(ALL_CELLS) + 5, seed=1) == ALL_CELLS
    with pytest.raises(ValueError, match="negative"):
        catalogue.sample(ALL_CELLS, -1, seed=1)


def test_describe_prints_the_matrix_size(capsys: pytest.CaptureFixture[str]) -> None:
    report = catalogue.describe(ALL_CELLS)
    with capsys.disabled():
        print(f"\n{report}")  # noqa: T201 - the matrix's size is part of the test run's report
    assert len(ALL_CELLS) > 500
    headline, *lines = report.splitlines()
    assert headline.startswith(f"{len(OPERATIONS)} operations x ")
    distinct = {cell.fault.code for cell in ALL_CELLS}
    modelled = {cell.fault.code for cell in ALL_CELLS if cell.fault.source == "model"}
    client_side = {cell.fault.code for cell in ALL_CELLS if cell.fault.source == "client"}
    common = len(distinct) - len(modelled) - len(client_side)
    sources = f"{len(modelled)} from the service models, {common} common, {len(client_side)} client-side"
    assert headline.endswith(f"({len(distinct)} distinct fault codes: {sources})")
    assert f"x 2 durations = {len(ALL_CELLS)} cells" in headline
    assert len(lines) == len(OPERATIONS)
    for (service, operation), line in zip(OPERATIONS, lines, strict=True):
        faults = len(catalogue.faults_for(service, operation))
        assert f"{service}.{operation} " in line
        assert f"{faults} faults x 2 durations = {faults * 2} cells" in line
        assert f"{len(model_codes(service, operation))} from the service models" in line
    sampled = catalogue.describe(catalogue.sample(ALL_CELLS, 30, seed=1))
    assert sampled.startswith("30 cells: 10 operations, ")
