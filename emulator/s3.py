"""Reading objects from S3: pipeline definitions (``PipelineDefinitionS3Location``) and ``Std:JsonGet`` documents.

The client is an aiobotocore S3 client built from the standard AWS environment (``AWS_ENDPOINT_URL_S3`` /
``AWS_ENDPOINT_URL``, region, credentials), opened on first use, so an emulator that never reads S3 never
makes one.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from typing import Any, Protocol

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

# The project's type stubs cover the SQS and SageMaker clients only; the S3 client stays untyped here.
S3Client = Any

_TIMEOUTS = AioConfig(connect_timeout=5.0, read_timeout=15.0, retries={"max_attempts": 2})
#: Largest object read (a definition holds at most 1 MiB; leave room).
MAX_OBJECT_BYTES = 4 * 1024 * 1024


class ObjectReader(Protocol):
    """Reads one S3 object; raises :class:`LookupError` with a message when it cannot."""

    async def read(self, bucket: str, key: str, version_id: str | None = None) -> bytes:
        """The object's bytes."""
        ...


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``(bucket, key)`` of ``s3://bucket/key``; :class:`LookupError` for anything else."""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not uri.startswith("s3://") or not bucket or not key:
        raise LookupError(f"{uri!r} is not an S3 URI (s3://bucket/key)")
    return bucket, key


class S3Reader:
    """An :class:`ObjectReader` over an aiobotocore S3 client; call :meth:`aclose` when done."""

    def __init__(self, default_region: str) -> None:
        self._default_region = default_region
        self._stack = AsyncExitStack()
        self._client: S3Client | None = None
        self._lock = asyncio.Lock()

    async def _open(self) -> S3Client:
        async with self._lock:
            if self._client is None:
                session = get_session()
                region = session.get_config_variable("region") or self._default_region
                client = session.create_client("s3", region_name=region, config=_TIMEOUTS)
                self._client = await self._stack.enter_async_context(client)
            return self._client

    async def read(self, bucket: str, key: str, version_id: str | None = None) -> bytes:
        """The object's bytes; :class:`LookupError` naming the object and the S3 error."""
        client = await self._open()
        extra: dict[str, Any] = {"VersionId": version_id} if version_id else {}
        try:
            response = await client.get_object(Bucket=bucket, Key=key, **extra)
            data = bytearray()
            async with response["Body"] as body:
                async for chunk in body.iter_chunks():
                    data += chunk
                    if len(data) > MAX_OBJECT_BYTES:
                        break
        except Exception as error:  # noqa: BLE001 - any S3 or transport error is the client's answer
            raise LookupError(f"cannot read s3://{bucket}/{key}: {type(error).__name__}: {error}") from None
        if len(data) > MAX_OBJECT_BYTES:
            raise LookupError(f"s3://{bucket}/{key} is larger than {MAX_OBJECT_BYTES} bytes")
        return bytes(data)

    async def aclose(self) -> None:
        """Close the client if it was opened."""
        self._client = None
        await self._stack.aclose()
