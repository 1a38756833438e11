"""An AWS environment that cannot reach AWS: for the demo, the tests and the benchmarks.

Dummy credentials, one region, every endpoint not set explicitly pointed at a closed loopback port (a forgotten
endpoint fails at once, locally), no instance metadata and no profile files. Callers add the endpoints of their own
local servers (``AWS_ENDPOINT_URL_SQS``, ``AWS_ENDPOINT_URL_SAGEMAKER``); :func:`moto_sqs` is one.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager

#: Nothing listens here: a call to a service without a local endpoint fails fast instead of leaving the machine.
CLOSED_ENDPOINT = "http://127.0.0.1:9"


def offline_aws_env(region: str = "us-east-1", credential: str = "test") -> dict[str, str]:
    """Environment variables for an AWS SDK that must never reach AWS."""
    return {
        "AWS_ACCESS_KEY_ID": credential,
        "AWS_SECRET_ACCESS_KEY": credential,
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "AWS_ENDPOINT_URL": CLOSED_ENDPOINT,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }


@contextmanager
def moto_sqs(port: int = 0) -> Iterator[str]:
    """An in-process moto server on loopback ``port`` (0: a free one); yields its URL. :class:`OSError` if ``port``
    is taken (moto's server thread would wait for it for ever)."""
    from moto.server import ThreadedMotoServer  # noqa: PLC0415 - optional `demo` extra

    if port:
        with socket.socket() as probe:  # bound as the server binds (address reuse on), then let go at once
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(("127.0.0.1", port))

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one access-log line per SQS call otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        host, bound = server.get_host_and_port()
        yield f"http://{host}:{bound}"
    finally:
        server.stop()
