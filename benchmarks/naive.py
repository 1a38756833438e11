"""The naive loop of AWS's samples: sync boto3, each message handled, answered and deleted one at a time.

Runs until killed. Environment: ``BENCH_QUEUE_URL`` and the standard AWS variables.
"""

from __future__ import annotations

import json
import os

import boto3


def main() -> None:
    queue_url = os.environ["BENCH_QUEUE_URL"]
    sqs = boto3.client("sqs")
    sagemaker = boto3.client("sagemaker")
    while True:
        response = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=20)
        for message in response.get("Messages", []):
            token = json.loads(message["Body"])["token"]
            sagemaker.send_pipeline_execution_step_success(CallbackToken=token, OutputParameters=[])
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


if __name__ == "__main__":
    main()
