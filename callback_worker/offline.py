"""An AWS environment that cannot reach AWS: for the demo, the tests and the benchmarks.

Dummy credentials, one region, every endpoint not set explicitly pointed at a closed loopback port (a forgotten
endpoint fails at once, locally), no instance metadata and no profile files. Callers add the endpoints of their own
local servers (``AWS_ENDPOINT_URL_SQS``, ``AWS_ENDPOINT_URL_SAGEMAKER``).
"""

from __future__ import annotations

import os

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
