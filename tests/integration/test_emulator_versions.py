"""Versions, execution updates, tags and definitions in S3, through plain boto3 (calls the SDK has no method for)."""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.emulator_fixtures import ROLE_ARN, one_step_definition, start_execution

if TYPE_CHECKING:
    from types_boto3_sagemaker import SageMakerClient


@pytest.fixture
def s3_bucket(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A bucket on the moto server, which ``AWS_ENDPOINT_URL_S3`` points the emulator at."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_server)
    name = f"definitions-{uuid.uuid4().hex[:8]}"
    boto3.client("s3").create_bucket(Bucket=name)
    return name


def create(client: SageMakerClient, **extra: object) -> str:
    name = f"versions-{uuid.uuid4().hex[:8]}"
    client.create_pipeline(PipelineName=name, RoleArn=ROLE_ARN, ClientRequestToken=str(uuid.uuid4()), **extra)  # type: ignore[arg-type]
    return name


def test_versions_can_be_named_and_described_and_unknown_ones_are_not_found(
    sagemaker_client: SageMakerClient, queue_url: str
) -> None:
    name = create(sagemaker_client, PipelineDefinition=one_step_definition(queue_url))
    arn = sagemaker_client.describe_pipeline(PipelineName=name)["PipelineArn"]
    updated = sagemaker_client.update_pipeline(
        PipelineName=name, PipelineDefinition=one_step_definition(queue_url, arguments={"v": 2})
    )
    assert updated["PipelineVersionId"] == 2
    sagemaker_client.update_pipeline_version(
        PipelineArn=arn, PipelineVersionId=1, PipelineVersionDisplayName="first", PipelineVersionDescription="v1"
    )
    described = sagemaker_client.describe_pipeline(PipelineName=name, PipelineVersionId=1)
    assert (described["PipelineVersionDisplayName"], described["PipelineVersionDescription"]) == ("first", "v1")
    assert described["CreatedBy"]["IamIdentity"]["Arn"] == "arn:aws:iam::123456789012:root"
    assert "v" not in json.loads(described["PipelineDefinition"])["Steps"][0]["Arguments"]
    ascending = sagemaker_client.list_pipeline_versions(PipelineName=name, SortOrder="Ascending")
    assert [item["PipelineVersionId"] for item in ascending["PipelineVersionSummaries"]] == [1, 2]
    for call in (
        lambda: sagemaker_client.describe_pipeline(PipelineName=name, PipelineVersionId=3),
        lambda: sagemaker_client.update_pipeline_version(PipelineArn=arn, PipelineVersionId=3),
    ):
        with pytest.raises(sagemaker_client.exceptions.ResourceNotFound):
            call()


def test_an_execution_can_be_renamed_and_its_parallelism_changed(
    sagemaker_client: SageMakerClient, queue_url: str
) -> None:
    name = create(sagemaker_client, PipelineDefinition=one_step_definition(queue_url))
    arn = start_execution(sagemaker_client, name)
    sagemaker_client.update_pipeline_execution(
        PipelineExecutionArn=arn,
        PipelineExecutionDisplayName="renamed",
        PipelineExecutionDescription="about it",
        ParallelismConfiguration={"MaxParallelExecutionSteps": 2},
    )
    described = sagemaker_client.describe_pipeline_execution(PipelineExecutionArn=arn)
    assert described["PipelineExecutionDisplayName"] == "renamed"
    assert described["PipelineExecutionDescription"] == "about it"
    assert described["ParallelismConfiguration"] == {"MaxParallelExecutionSteps": 2}
    assert described["PipelineVersionId"] == 1


def test_tags_are_added_listed_and_deleted_on_pipeline_arns_only(
    sagemaker_client: SageMakerClient, queue_url: str
) -> None:
    name = create(
        sagemaker_client, PipelineDefinition=one_step_definition(queue_url), Tags=[{"Key": "team", "Value": "ml"}]
    )
    arn = sagemaker_client.describe_pipeline(PipelineName=name)["PipelineArn"]
    sagemaker_client.add_tags(ResourceArn=arn, Tags=[{"Key": "stage", "Value": "dev"}, {"Key": "team", "Value": "ops"}])
    tags = sagemaker_client.list_tags(ResourceArn=arn)["Tags"]
    assert [(tag["Key"], tag["Value"]) for tag in tags] == [("stage", "dev"), ("team", "ops")]
    sagemaker_client.delete_tags(ResourceArn=arn, TagKeys=["stage", "absent"])
    assert [tag["Key"] for tag in sagemaker_client.list_tags(ResourceArn=arn)["Tags"]] == ["team"]
    with pytest.raises(ClientError, match="ValidationException"):
        sagemaker_client.add_tags(ResourceArn=f"{arn}/execution/abc", Tags=[{"Key": "k", "Value": "v"}])
    with pytest.raises(ClientError, match="at most 50 tags"):
        sagemaker_client.add_tags(ResourceArn=arn, Tags=[{"Key": f"k{index}", "Value": "v"} for index in range(50)])


def test_a_definition_is_read_from_s3_and_a_missing_one_is_a_validation_error(
    sagemaker_client: SageMakerClient, queue_url: str, s3_bucket: str
) -> None:
    boto3.client("s3").put_object(
        Bucket=s3_bucket, Key="p/definition.json", Body=one_step_definition(queue_url).encode()
    )
    name = create(
        sagemaker_client, PipelineDefinitionS3Location={"Bucket": s3_bucket, "ObjectKey": "p/definition.json"}
    )
    definition = json.loads(sagemaker_client.describe_pipeline(PipelineName=name)["PipelineDefinition"])
    assert definition["Steps"][0]["SqsQueueUrl"] == queue_url
    with pytest.raises(ClientError, match="NoSuchKey"):
        create(sagemaker_client, PipelineDefinitionS3Location={"Bucket": s3_bucket, "ObjectKey": "absent.json"})
    with pytest.raises(ClientError, match="not both"):
        create(
            sagemaker_client,
            PipelineDefinition=one_step_definition(queue_url),
            PipelineDefinitionS3Location={"Bucket": s3_bucket, "ObjectKey": "p/definition.json"},
        )
