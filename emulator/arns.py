"""ARNs and generated identifiers, in the forms the service uses.

- pipeline: ``arn:aws:sagemaker:{region}:{account}:pipeline/{name in lower case}``
- execution: ``{pipeline arn}/execution/{12 lower-case letters and digits}``
- callback token: 10 letters and digits (upper and lower case)
"""

from __future__ import annotations

import re
import secrets
import string
from dataclasses import dataclass

EXECUTION_ID_LENGTH = 12
CALLBACK_TOKEN_LENGTH = 10
_LOWER_ALNUM = string.ascii_lowercase + string.digits
_ALNUM = string.ascii_letters + string.digits
_PIPELINE_ARN = re.compile(r"arn:aws[a-z\-]*:sagemaker:([a-z0-9\-]*):([0-9]{12}):pipeline/([^/]+)")


@dataclass(frozen=True)
class Partition:
    """The region and account the emulator pretends to serve."""

    region: str
    account: str

    def pipeline_arn(self, name: str) -> str:
        """The ARN of the pipeline called ``name``."""
        return f"arn:aws:sagemaker:{self.region}:{self.account}:pipeline/{name.lower()}"

    def execution_arn(self, pipeline_name: str, execution_id: str) -> str:
        """The ARN of execution ``execution_id`` of pipeline ``pipeline_name``."""
        return f"{self.pipeline_arn(pipeline_name)}/execution/{execution_id}"

    def pipeline_name(self, name_or_arn: str) -> str | None:
        """The pipeline name in a ``PipelineNameOrArn`` value; ``None`` for an ARN of another region/account."""
        match = _PIPELINE_ARN.fullmatch(name_or_arn)
        if match is None:
            return name_or_arn
        if (match[1], match[2]) != (self.region, self.account):
            return None
        return match[3]


def new_execution_id() -> str:
    """A fresh execution id: 12 lower-case letters and digits."""
    return "".join(secrets.choice(_LOWER_ALNUM) for _ in range(EXECUTION_ID_LENGTH))


def new_callback_token() -> str:
    """A fresh callback token: 10 letters and digits."""
    return "".join(secrets.choice(_ALNUM) for _ in range(CALLBACK_TOKEN_LENGTH))
