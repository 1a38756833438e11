"""A local SageMaker Pipelines endpoint speaking the real wire protocol (not imported by the daemon).

It serves the pipeline and callback operations of SageMaker's JSON 1.1 API to unmodified boto3 and
aiobotocore clients (``endpoint_url`` or ``AWS_ENDPOINT_URL_SAGEMAKER``), runs Callback-step pipelines as
the service does — Condition and Fail steps included, other step types as opt-in stubs — and sends their
messages to SQS through the standard AWS environment. See :mod:`emulator.server` for the runners,
:mod:`emulator.engine` for execution semantics, :mod:`emulator.stubs` for stubbed steps and
:mod:`emulator.faults` for fault injection.
"""

from callback_worker.emulator.faults import FaultConfig, OperationFaults
from callback_worker.emulator.protocol import OPERATION_NAMES
from callback_worker.emulator.server import EmulatorServer, ThreadedEmulatorServer
from callback_worker.emulator.sqs import MessageSender, StepMessage
from callback_worker.emulator.stubs import StubConfig

__all__ = [
    "OPERATION_NAMES",
    "EmulatorServer",
    "FaultConfig",
    "MessageSender",
    "OperationFaults",
    "StepMessage",
    "StubConfig",
    "ThreadedEmulatorServer",
]
