"""callback_worker/ops/tables.py and views.py: aligned tables, labelled fields, JSON, escaping, and masked tokens."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from callback_worker.ops import views
from callback_worker.ops.tables import MAX_CELL, cell, clean, fields, shorten, table, timestamp, to_json

TOKEN = "26vcYbeWsZ"
ARN = "arn:aws:sagemaker:us-east-1:123456789012:pipeline/train/execution/7pinimwddh3a"
QUEUE = "https://sqs.us-east-1.amazonaws.com/123456789012/callbacks"
START = datetime(2026, 5, 1, 12, 0, 3, 250_000, tzinfo=UTC)


def callback_step(name: str, status: str, **extra: Any) -> dict[str, Any]:
    callback: dict[str, Any] = {"CallbackToken": TOKEN, "SqsQueueUrl": QUEUE}
    callback.update(extra.pop("callback", {}))
    return {"StepName": name, "StepStatus": status, "StartTime": START, "Metadata": {"Callback": callback}, **extra}


def test_table_aligns_columns_two_spaces_apart_without_trailing_blanks() -> None:
    assert table(("Name", "Value"), [("a", "1"), ("longer", None)]).splitlines() == [
        "NAME    VALUE",
        "a       1",
        "longer  -",
    ]


def test_table_shortens_every_column_but_the_last() -> None:
    long = "x" * 100
    header, row = table(("A", "B"), [(long, long)]).splitlines()
    assert row == shorten(long) + "  " + long
    assert len(shorten(long)) == MAX_CELL
    assert shorten(long).endswith("...")
    assert header.startswith("A" + " " * (MAX_CELL + 1) + "B")


def test_control_characters_are_escaped_so_values_cannot_drive_the_terminal() -> None:
    assert clean("red\x1b[31m\nnext\ttab\x00") == "red\\x1b[31m\\nnext\\ttab\\x00"
    assert clean("ünï€ode ok") == "ünï€ode ok"
    assert cell("two\nlines") == "two\\nlines"


def test_cells_show_absence_as_a_dash_and_times_in_utc() -> None:
    assert cell(None) == "-"
    assert cell("") == "-"
    assert cell(3) == "3"
    local = START.astimezone(timezone(timedelta(hours=2)))
    assert cell(local) == timestamp(START) == "2026-05-01T12:00:03Z"


def test_fields_align_labels() -> None:
    assert fields([("Status", "Failed"), ("Failure reason", None)]) == "Status          Failed\nFailure reason  -"


def test_json_gives_times_in_iso_utc() -> None:
    assert json.loads(to_json({"t": START, "n": 1})) == {"t": "2026-05-01T12:00:03.250000+00:00", "n": 1}


def test_describe_shows_status_reason_experiment_and_times() -> None:
    execution = {
        "PipelineArn": "arn:aws:sagemaker:us-east-1:123456789012:pipeline/train",
        "PipelineExecutionArn": ARN,
        "PipelineExecutionDisplayName": "nightly",
        "PipelineExecutionStatus": "Failed",
        "FailureReason": "Step A failed:\nboom",
        "PipelineExperimentConfig": {"ExperimentName": "train", "TrialName": "7pinimwddh3a"},
        "CreationTime": START,
        "LastModifiedTime": START + timedelta(minutes=5),
        "ResponseMetadata": {"HTTPStatusCode": 200},
    }
    assert views.describe_text(execution).splitlines() == [
        "Pipeline        train",
        f"Execution       {ARN}",
        "Display name    nightly",
        "Status          Failed",
        "Failure reason  Step A failed:\\nboom",
        "Experiment      train",
        "Trial           7pinimwddh3a",
        "Created         2026-05-01T12:00:03Z",
        "Last modified   2026-05-01T12:05:03Z",
    ]
    document = json.loads(views.describe_json(execution))
    assert "ResponseMetadata" not in document
    assert document["PipelineExperimentConfig"] == {"ExperimentName": "train", "TrialName": "7pinimwddh3a"}
    assert document["CreationTime"] == "2026-05-01T12:00:03.250000+00:00"


def test_describe_without_experiment_or_reason_shows_dashes() -> None:
    lines = views.describe_text({"PipelineExecutionArn": ARN, "PipelineExecutionStatus": "Executing"}).splitlines()
    assert "Failure reason  -" in lines
    assert "Experiment      -" in lines
    assert not any(line.startswith("Display name") for line in lines)


def test_steps_table_masks_tokens_and_lists_outputs() -> None:
    outputs = {"OutputParameters": [{"Name": "count", "Value": "3"}, {"Name": "label", "Value": "a b"}]}
    steps = [
        callback_step("A", "Succeeded", callback=outputs),
        callback_step("B", "Failed", FailureReason="no GPU"),
        {"StepName": "Train", "StepStatus": "Executing", "StartTime": START, "Metadata": {"TrainingJob": {}}},
    ]
    text = views.steps_text(steps)
    assert TOKEN not in text
    assert text.splitlines() == [
        "STEP   STATUS     STARTED               QUEUE      TOKEN       OUTPUTS             FAILURE REASON",
        "A      Succeeded  2026-05-01T12:00:03Z  callbacks  26v*******  count=3, label=a b  -",
        "B      Failed     2026-05-01T12:00:03Z  callbacks  26v*******  -                   no GPU",
        "Train  Executing  2026-05-01T12:00:03Z  -          -           -                   -",
    ]


def test_steps_json_masks_tokens_and_leaves_the_input_alone() -> None:
    steps = [callback_step("A", "Executing")]
    text = views.steps_json(steps)
    assert TOKEN not in text
    assert json.loads(text)[0]["Metadata"]["Callback"] == {"CallbackToken": "26v*******", "SqsQueueUrl": QUEUE}
    assert steps[0]["Metadata"]["Callback"]["CallbackToken"] == TOKEN


def test_pending_rows_and_json() -> None:
    waiting = [views.WaitingStep("train", ARN, "Stopping", callback_step("Approve", "Stopping"))]
    text = views.pending_text(waiting)
    assert text.splitlines() == [
        "PIPELINE  EXECUTION     STEP     STATUS    STARTED               QUEUE      TOKEN",
        "train     7pinimwddh3a  Approve  Stopping  2026-05-01T12:00:03Z  callbacks  26v*******",
    ]
    assert json.loads(views.pending_json(waiting)) == [
        {
            "PipelineName": "train",
            "PipelineExecutionArn": ARN,
            "PipelineExecutionStatus": "Stopping",
            "StepName": "Approve",
            "StepStatus": "Stopping",
            "StartTime": "2026-05-01T12:00:03.250000+00:00",
            "SqsQueueUrl": QUEUE,
            "CallbackToken": "26v*******",
        }
    ]


def test_answers_and_sent_messages_never_show_the_token() -> None:
    assert views.answer_text("Success", TOKEN, ARN) == f"answered 26v******* with Success (execution {ARN})"
    assert json.loads(views.answer_json("Failure", TOKEN, None)) == {
        "Outcome": "Failure",
        "CallbackToken": "26v*******",
        "PipelineExecutionArn": None,
    }
    body = {"token": TOKEN, "pipelineExecutionArn": ARN, "arguments": {"n": 1}, "status": "Executing"}
    sent = views.sent_text("m-1", QUEUE, body)
    assert sent.splitlines()[0] == f"sent message m-1 to {QUEUE}"
    assert json.loads(sent.split("\n", 1)[1]) == {**body, "token": "26v*******"}
    assert TOKEN not in sent
    assert TOKEN not in views.sent_json("m-1", QUEUE, body)
    assert body["token"] == TOKEN


def test_queue_names_and_execution_ids() -> None:
    assert views.queue_name(QUEUE + "/") == "callbacks"
    assert views.queue_name(None) is None
    assert views.execution_id(ARN) == "7pinimwddh3a"
    assert views.execution_id("not-an-arn") == "not-an-arn"
    assert views.pipeline_name(ARN) == "train"
