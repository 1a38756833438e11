"""What authenticating a continuation costs per message: the HMAC seal against SQS's ``SenderId``.

HMAC (what the worker does, :mod:`worker.signing`): sealing a link re-serialises its body once more and computes one
HMAC-SHA256 over the canonical JSON of the body; checking one computes the same over what was parsed. Both are
measured here on the worker's own code (``CallbackMessage.to_body``, ``parse_message``) for states of several sizes,
beside the same calls without a key.

``SenderId`` (the alternative): the worker would ask ``ReceiveMessage`` for the ``SenderId`` system attribute and
compare it with its own role id (one ``sts:GetCallerIdentity`` at start-up). The compare is measured; the attribute's
bytes in each receive reply are counted from the JSON member SQS adds for an assumed role.

    .venv/bin/python -m benchmarks.continuation_auth
"""

from __future__ import annotations

import json
import statistics
import timeit
from collections.abc import Callable

from callback_worker.worker.handler import JSONValue
from callback_worker.worker.message import Continuation, parse_message
from callback_worker.worker.signing import Keyring

ARN = "arn:aws:sagemaker:us-east-1:123456789012:pipeline/p/execution/abcdef123456"
KEYRING = Keyring([b"benchmark-key-benchmark-key-benchmark-key"])
#: State sizes: none, a job handler's, a large one, near SQS's 256 KiB message limit.
STATE_SIZES = (0, 200, 16_384, 200_000)
ROLE_SENDER_ID = "AROAEXAMPLEROLEID1234:botocore-session-1767225600"
SENDER_MEMBER = json.dumps({"SenderId": ROLE_SENDER_ID}, separators=(",", ":"))


def per_call(action: Callable[[], object], number: int) -> float:
    """Microseconds per call: the median of five runs of ``number`` calls."""
    runs = timeit.repeat(action, number=number, repeat=5)
    return statistics.median(runs) / number * 1e6


def state_of(size: int) -> JSONValue:
    return None if size == 0 else {"id": "jr_0123456789", "started": 1767225600.0, "pad": "x" * size}


def measure(size: int) -> dict[str, float]:
    message = parse_message(json.dumps({"token": "AbCdE12345", "pipelineExecutionArn": ARN, "arguments": {"n": 1}}))
    continuation = Continuation(attempt=1, continuations=3, state=state_of(size), origin_message_id="m1", link=3)
    plain, sealed = message.to_body(continuation), message.to_body(continuation, KEYRING)
    number = max(20, 20_000 // (1 + size // 1000))
    return {
        "body_bytes": len(sealed),
        "seal_bytes": len(sealed) - len(plain),
        "send_plain_us": per_call(lambda: message.to_body(continuation), number),
        "send_sealed_us": per_call(lambda: message.to_body(continuation, KEYRING), number),
        "receive_plain_us": per_call(lambda: parse_message(plain), number),
        "receive_checked_us": per_call(lambda: parse_message(sealed, KEYRING), number),
    }


def sender_id_compare() -> float:
    attributes = {"SenderId": ROLE_SENDER_ID, "SentTimestamp": "1767225600000"}
    own_role = ROLE_SENDER_ID.partition(":")[0]
    return per_call(lambda: attributes.get("SenderId", "").partition(":")[0] == own_role, 200_000)


def main() -> None:
    print(f"{'state':>8} {'body':>8} {'seal':>5} {'send':>9} {'sealed':>9} {'receive':>9} {'checked':>9}  (us)")
    for size in STATE_SIZES:
        row = measure(size)
        print(
            f"{size:>8} {row['body_bytes']:>8.0f} {row['seal_bytes']:>5.0f} {row['send_plain_us']:>9.1f} "
            f"{row['send_sealed_us']:>9.1f} {row['receive_plain_us']:>9.1f} {row['receive_checked_us']:>9.1f}"
        )
    print(f"SenderId compare: {sender_id_compare():.3f} us per message")
    print(f"SenderId attribute in each receive reply: {len(SENDER_MEMBER)} bytes ({SENDER_MEMBER})")


if __name__ == "__main__":
    main()
