"""The limits of SQS and SageMaker that the worker obeys, in one place.

They are facts of the services, not settings: the settings refuse values beyond them, the daemon checks what it sends
against them. Each is named as the service documents it.
"""

from __future__ import annotations

# -- SQS -----------------------------------------------------------------------------------------------------------

#: A received message stays hidden at most 12 hours after the receive (``ChangeMessageVisibility`` counts from it).
MAX_VISIBILITY_SECONDS = 12 * 60 * 60
#: A long poll waits at most 20 seconds.
MAX_WAIT_SECONDS = 20
#: ``ReceiveMessage`` returns at most ten messages.
MAX_RECEIVE = 10
#: ``DeleteMessageBatch`` and ``ChangeMessageVisibilityBatch`` take at most ten entries.
MAX_BATCH = 10
#: ``SendMessage``'s ``DelaySeconds`` is at most fifteen minutes.
MAX_DELAY_SECONDS = 900
#: A queue's ``MaximumMessageSize`` when it does not say (the default before 2025; today's default is 1 MiB).
DEFAULT_MAX_MESSAGE_BYTES = 262_144

# -- SageMaker -----------------------------------------------------------------------------------------------------

#: ``SendPipelineExecutionStepSuccess`` takes at most 50 output parameters ...
MAX_OUTPUTS = 50
#: ... each named with at most 256 characters ...
MAX_OUTPUT_NAME = 256
#: ... and valued with at most 1,024.
MAX_OUTPUT_VALUE = 1024
#: ``SendPipelineExecutionStepFailure``'s ``FailureReason`` has at most 256 characters.
MAX_FAILURE_REASON = 256
