"""A local SageMaker Pipelines endpoint speaking the real wire protocol (not imported by the daemon)."""
