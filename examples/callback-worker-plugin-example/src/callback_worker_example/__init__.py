"""An example handler plugin for sagemaker-callback-worker: ``approval``, a gate that waits for a person's decision."""

from callback_worker_example.approval import ApprovalGate

__all__ = ["ApprovalGate"]
