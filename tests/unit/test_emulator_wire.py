"""Request targets, bodies, model-driven validation and paging, without a server."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callback_worker.emulator.errors import SerializationError, UnknownOperationError, ValidationError
from callback_worker.emulator.pagination import paginate
from callback_worker.emulator.protocol import OPERATION_NAMES, operation_from_target, parse_body
from callback_worker.emulator.validation import sagemaker_model, validate_request


def test_every_served_operation_is_in_the_botocore_model() -> None:
    assert set(OPERATION_NAMES) <= set(sagemaker_model().operation_names)
    assert operation_from_target("SageMaker.ListPipelines") == "ListPipelines"
    with pytest.raises(UnknownOperationError):
        operation_from_target("SageMaker.ListModels")


def test_bodies_must_be_json_objects() -> None:
    assert parse_body(b"") == {}
    assert parse_body(b' {"a": [1, 2.5, true, null]} ') == {"a": [1, 2.5, True, None]}
    for raw in (b"1", b'"text"', b"{", b'{"a": Infinity}'):
        with pytest.raises(SerializationError):
            parse_body(raw)


def test_every_violation_is_listed_in_the_services_words() -> None:
    with pytest.raises(ValidationError) as raised:
        validate_request(
            "SendPipelineExecutionStepSuccess",
            {
                "CallbackToken": "abc!EFGH12",
                "OutputParameters": [{"Name": "n", "Value": "v" * 1025}, {"Value": "v"}],
                "ClientRequestToken": "c" * 129,
            },
        )
    assert raised.value.message == (
        "4 validation errors detected: "
        "Value 'abc!EFGH12' at 'callbackToken' failed to satisfy constraint: "
        "Member must satisfy regular expression pattern: [a-zA-Z0-9]+; "
        f"Value '{'v' * 100}...' at 'outputParameters.1.member.value' failed to satisfy constraint: "
        "Member must have length less than or equal to 1024; "
        "Value null at 'outputParameters.2.member.name' failed to satisfy constraint: Member must not be null; "
        f"Value '{'c' * 100}...' at 'clientRequestToken' failed to satisfy constraint: "
        "Member must have length less than or equal to 128"
    )


@pytest.mark.parametrize(
    ("operation", "params", "fragment"),
    [
        ("ListPipelineExecutionSteps", {"SortOrder": "Sideways"}, "enum value set: [Ascending, Descending]"),
        ("ListPipelineExecutionSteps", {"MaxResults": 0}, "value greater than or equal to 1"),
        ("ListPipelineExecutionSteps", {"MaxResults": 101}, "value less than or equal to 100"),
        (
            "CreatePipeline",
            {"PipelineName": "bad name", "ClientRequestToken": "c" * 32, "RoleArn": "r" * 20},
            "pattern",
        ),
        ("StartPipelineExecution", {"PipelineName": "p"}, "Value null at 'clientRequestToken'"),
    ],
)
def test_constraints_of_the_model_are_enforced(operation: str, params: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValidationError) as raised:
        validate_request(operation, params)
    assert fragment in raised.value.message


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"MaxResults": "5"}, "Expected an integer at 'maxResults' but found string"),
        ({"MaxResults": 2.5}, "Expected an integer at 'maxResults' but found number"),
        ({"CreatedAfter": "yesterday"}, "Expected a number at 'createdAfter' but found string"),
        ({"PipelineNamePrefix": ["a"]}, "Expected a string at 'pipelineNamePrefix' but found array"),
    ],
)
def test_members_of_the_wrong_json_type_cannot_be_deserialized(params: dict[str, Any], message: str) -> None:
    with pytest.raises(SerializationError) as raised:
        validate_request("ListPipelines", params)
    assert raised.value.message == message


def test_valid_requests_pass_and_unknown_members_are_ignored() -> None:
    validate_request(
        "SendPipelineExecutionStepSuccess",
        {
            "CallbackToken": "abcDEF1234",
            "OutputParameters": [{"Name": "n" * 256, "Value": "v" * 1024}] * 50,
            "ClientRequestToken": "c" * 128,
            "SomethingNew": {"x": 1},
        },
    )
    validate_request("ListPipelines", {"CreatedAfter": 1700000000.5, "SortBy": "Name", "MaxResults": 100})


@given(
    st.lists(st.integers(min_value=0, max_value=50), unique=True, max_size=40),
    st.integers(min_value=1, max_value=12),
    st.booleans(),
)
def test_pages_cover_every_item_once_in_order(items: list[int], size: int, descending: bool) -> None:
    seen: list[int] = []
    token: str | None = None
    while True:
        page, token = paginate(
            items, lambda item: (item,), scope="s", descending=descending, max_results=size, next_token=token
        )
        assert len(page) <= size
        seen.extend(page)
        if token is None:
            break
    assert seen == sorted(items, reverse=descending)


def test_items_added_between_pages_neither_repeat_nor_shift_the_listed_ones() -> None:
    items = [(1.0, 1), (2.0, 2), (3.0, 3)]
    page, token = paginate(items, lambda i: i, scope="s", descending=False, max_results=2, next_token=None)
    assert page == [(1.0, 1), (2.0, 2)]
    items.append((4.0, 4))
    page, token = paginate(items, lambda i: i, scope="s", descending=False, max_results=2, next_token=token)
    assert page == [(3.0, 3), (4.0, 4)]
    assert token is None


@pytest.mark.parametrize("token", ["garbage", "eyJzY29wZSI6Im90aGVyIiwiYWZ0ZXIiOlsxXX0=", "e30="])
def test_tokens_of_other_listings_or_garbage_are_refused(token: str) -> None:
    with pytest.raises(ValidationError, match="NextToken"):
        paginate([1, 2], lambda i: (i,), scope="s", descending=False, max_results=1, next_token=token)
