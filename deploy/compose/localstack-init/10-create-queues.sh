#!/bin/bash
# Runs inside the LocalStack container once it is ready (/etc/localstack/init/ready.d/).
# Creates the callback queue and its dead-letter queue; a body no worker can read moves to the DLQ after
# five receives instead of being received forever. Re-running is harmless: create-queue is idempotent.
set -euo pipefail

QUEUE=${CALLBACK_QUEUE_NAME:-callbacks}
DLQ="${QUEUE}-dlq"

awslocal sqs create-queue --queue-name "$DLQ" \
  --attributes MessageRetentionPeriod=1209600 >/dev/null
dlq_url=$(awslocal sqs get-queue-url --queue-name "$DLQ" --query QueueUrl --output text)
dlq_arn=$(awslocal sqs get-queue-attributes --queue-url "$dlq_url" \
  --attribute-names QueueArn --query Attributes.QueueArn --output text)

cat >/tmp/callback-queue-attributes.json <<JSON
{
  "VisibilityTimeout": "60",
  "MessageRetentionPeriod": "1209600",
  "RedrivePolicy": "{\"deadLetterTargetArn\":\"${dlq_arn}\",\"maxReceiveCount\":\"5\"}"
}
JSON
awslocal sqs create-queue --queue-name "$QUEUE" --attributes file:///tmp/callback-queue-attributes.json >/dev/null
echo "callback queues ready: $QUEUE (dead-letter queue $DLQ)"
