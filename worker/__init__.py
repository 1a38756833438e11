"""The SageMaker Pipelines callback worker."""
