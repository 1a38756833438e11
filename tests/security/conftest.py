"""Security tier: each test is one finding of the security review, tried as whoever can write to the queue would."""

from __future__ import annotations

from tests.integration.conftest import loop_emulator, make_queue, sagemaker, sqs

__all__ = ["loop_emulator", "make_queue", "sagemaker", "sqs"]
