#!/bin/bash
# Runs inside the LocalStack container once it is ready (/etc/localstack/init/ready.d/).
# Creates the callback queue and its dead-letter queue; a body no worker can read moves to the DLQ after
# five receives instead of being received forever. The DLQ's redrive allow policy lets only the callback queue
# name it as its dead-letter queue. Re-running is harmless: create-queue is idempotent.
set -euo pipefail

QUEUE=${CALLBACK_QUEUE_NAME:-callbacks}
DLQ="${QUEUE}-dlq"

awslocal sqs create-queue --queue-name "$QUEUE" \
  --attributes VisibilityTimeout=60,MessageRetentionPeriod=1209600 >/dev/null
queue_url=$(awslocal sqs get-queue-url --queue-name "$QUEUE" --query QueueUrl --output text)
queue_arn=$(awslocal sqs get-queue-attributes --queue-url "$queue_url" \
  --attribute-names QueueArn --query Attributes.QueueArn --output text)

cat >/tmp/callback-dlq-attributes.json <<JSON
{
  "MessageRetentionPeriod": "1209600",
  "RedriveAllowPolicy": "{\"redrivePermission\":\"byQueue\",\"sourceQueueArns\":[\"${queue_arn}\"]}"
}
JSON
awslocal sqs create-queue --queue-name "$DLQ" --attributes file:///tmp/callback-dlq-attributes.json >/dev/null
dlq_url=$(awslocal sqs get-queue-url --queue-name "$DLQ" --query QueueUrl --output text)
dlq_arn=$(awslocal sqs get-queue-attributes --queue-url "$dlq_url" \
  --attribute-names QueueArn --query Attributes.QueueArn --output text)

cat >/tmp/callback-queue-attributes.json <<JSON
{
  "RedrivePolicy": "{\"deadLetterTargetArn\":\"${dlq_arn}\",\"maxReceiveCount\":\"5\"}"
}
JSON
awslocal sqs set-queue-attributes --queue-url "$queue_url" --attributes file:///tmp/callback-queue-attributes.json
echo "callback queues ready: $QUEUE (dead-letter queue $DLQ)"
