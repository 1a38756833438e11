"""Start-up checks: where the clients go, and what an error before the first receive means — one line with its fix.

After start-up every AWS error the daemon meets is transient (:mod:`worker.taxonomy`): it holds someone's answers, so
it keeps them and tries again. Before the first receive it holds nothing, but a correctly configured worker must not
crash-loop on one blip either. So a start-up call (the queue's attributes here, SageMaker's probes in
:mod:`worker.probes`) is judged by :func:`keeps_trying`, on the classes of :func:`worker.taxonomy.startup_fault`:

* no credentials found or readable, a queue that does not exist — stop at once: waiting cannot fix them;
* on AWS's own endpoints, anything else — no answer (a connection reset, a timeout, a DNS blip), access denied or
  refused credentials (an IAM change may still be propagating), throttling, a 5xx, an answer nobody foresaw — is
  tried again with backoff, each wait logged in one line, within :data:`STARTUP_WINDOW`; then start-up stops;
* with the service's endpoint overridden (``AWS_ENDPOINT_URL`` or ``AWS_ENDPOINT_URL_<SERVICE>``: a local or test
  setup, where a refused connection is a wrong port), only throttling and a 5xx are waited out: the rest stops at once.

``callback-worker run`` stops (exit 2, one line) on the first :attr:`Level.FAIL` finding and logs the others;
``callback-worker doctor`` makes the same checks once each, without the window, and lists every finding. What the
queue's attributes mean is :mod:`worker.queue_advice`'s.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar
from urllib.parse import urlsplit

from botocore.exceptions import ClientError, NoCredentialsError, ProfileNotFound

from callback_worker.config.settings import env_name
from callback_worker.worker.logs import get_logger
from callback_worker.worker.retrying import STARTUP_BACKOFF
from callback_worker.worker.taxonomy import CONFIG_ERRORS, StartupFault, error_code, startup_fault

log = get_logger("worker.preflight")
T = TypeVar("T")

#: Seconds one start-up call may take, connection and botocore's own retries included.
CALL_TIMEOUT = 10.0
#: Seconds start-up keeps trying a call that may yet succeed (on AWS's own endpoints) before it stops with exit 2.
STARTUP_WINDOW = 60.0
#: The variable prefix that overrides an AWS endpoint: a local or test setup.
OVERRIDE = "AWS_ENDPOINT_URL"
#: The variables botocore takes the profile from, in its order.
PROFILE_VARIABLES = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE")
#: The domains of AWS's own endpoints (public, VPC interface and FIPS ones alike, China, the dual-stack api.aws).
AWS_DOMAINS = (".amazonaws.com", ".amazonaws.com.cn", ".api.aws")
_REGION = r"[a-z]{2}(?:-[a-z]+)+-\d+"
_QUEUE_HOST = re.compile(rf"(?:^|\.)sqs(?:-fips)?\.(?P<region>{_REGION})\.|^(?P<legacy>{_REGION})\.queue\.amazonaws\.")


class Level(StrEnum):
    """How much a finding matters: ``FAIL`` stops ``run``; ``WARN`` deserves a fix; ``NOTE`` is for information."""

    OK = "ok"
    NOTE = "note"
    WARN = "warn"
    FAIL = "FAIL"


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing a check found: what, about which part, and the fix where one is needed — one line."""

    level: Level
    subject: str
    text: str

    def line(self) -> str:
        return f"{self.level.value:<4}  {self.subject}: {self.text}"


NO_CREDENTIALS = Finding(
    Level.FAIL,
    "credentials",
    "none found (environment, AWS_PROFILE, web identity, container or instance role); set AWS_ACCESS_KEY_ID and "
    "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or run with a role",
)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where a client sends its calls: the service's name, the URL, the variable that set it, the region."""

    service: str
    url: str
    source: str
    region: str

    def __str__(self) -> str:
        return f"{self.url} ({self.source})"

    @property
    def overridden(self) -> bool:
        """Set by ``AWS_ENDPOINT_URL[_<SERVICE>]`` to a host outside AWS's domains: a local or test setup (LocalStack,
        moto, the emulator). A VPC or FIPS endpoint set that way is AWS's own, and waited for as AWS is."""
        return self.source.startswith(OVERRIDE) and not _is_aws_host(self.url)

    def fix(self) -> str:
        """Where to look when nobody answers at this endpoint."""
        if self.overridden:
            return f"check {self.source}"
        return "check the network: a VPC endpoint or a NAT route to the service, or HTTPS_PROXY"


def _is_aws_host(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    return host.endswith(AWS_DOMAINS)


def endpoint_of(client: Any, variable: str, environ: Mapping[str, str] = os.environ) -> Endpoint:
    """The endpoint of an aiobotocore client; ``variable`` is the service's part of ``AWS_ENDPOINT_URL_<VARIABLE>``."""
    own = f"{OVERRIDE}_{variable}"
    source = own if environ.get(own) else OVERRIDE if environ.get(OVERRIDE) else ""
    region = str(client.meta.region_name)
    service = str(client.meta.service_model.service_id)
    return Endpoint(service, str(client.meta.endpoint_url), source or f"the default for {region}", region)


def region_source(environ: Mapping[str, str] = os.environ) -> str:
    """The variable the clients' region came from, as botocore and :mod:`worker.clients` read them."""
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        if environ.get(name):
            return name
    return "the AWS profile"


def queue_region(url: str) -> str | None:
    """The region an AWS queue URL names (``sqs.REGION.amazonaws.com``, VPC endpoint and legacy forms); None else."""
    host = urlsplit(url).hostname or ""
    if host == "queue.amazonaws.com":
        return "us-east-1"
    found = _QUEUE_HOST.search(host)
    return (found.group("region") or found.group("legacy")) if found else None


def region_finding(queue_url: str, sqs: Endpoint, environ: Mapping[str, str] = os.environ) -> Finding | None:
    """FAIL when the queue URL names another region than the clients use: SQS would say the queue does not exist."""
    region = queue_region(queue_url)
    if region is None or region == sqs.region:
        return None
    return Finding(
        Level.FAIL,
        "region",
        f"{env_name('queue_url')} is a queue in {region}, but the AWS clients use {sqs.region} "
        f"(from {region_source(environ)}); set AWS_REGION={region}",
    )


def keeps_trying(fault: StartupFault, endpoint: Endpoint) -> bool:
    """Whether start-up tries a call again after ``fault`` (within the window): see the module's docstring."""
    if fault.final:
        return False
    if endpoint.overridden:
        return fault is StartupFault.OUTAGE
    return True


async def patiently(
    call: Callable[[], Awaitable[T]],
    endpoint: Endpoint,
    what: str,
    window: float = STARTUP_WINDOW,
) -> T:
    """``call``'s result, tried again with backoff while :func:`keeps_trying` says so and ``window`` seconds (of the
    event loop's monotonic clock) last; each wait is logged in one line. Raises the last error when start-up should
    stop."""
    clock = asyncio.get_running_loop().time
    backoff = STARTUP_BACKOFF.start()
    deadline = clock() + window
    while True:
        try:
            async with asyncio.timeout(CALL_TIMEOUT):
                return await call()
        except Exception as exc:
            delay = backoff.next_delay()
            if not keeps_trying(startup_fault(exc), endpoint) or clock() + delay > deadline:
                raise
            log.warning(
                f"{what}: {error_code(exc)} at {endpoint}; trying again in {delay:.1f} s "
                f"(start-up waits up to {window:.0f} s)"
            )
            await asyncio.sleep(delay)


def credentials_problem(exc: BaseException) -> Finding | None:
    """FAIL when no credentials could be found or read, or the service refused them; None for any other error."""
    fault = startup_fault(exc)
    if isinstance(exc, NoCredentialsError):
        return NO_CREDENTIALS
    if isinstance(exc, CONFIG_ERRORS):
        return config_finding(exc)
    if fault is StartupFault.NO_CREDENTIALS:
        return Finding(Level.FAIL, "credentials", f"cannot be read: {exc}; fix the credentials chain's settings")
    if fault is StartupFault.CREDENTIALS_REFUSED:
        return Finding(
            Level.FAIL,
            "credentials",
            f"refused ({error_code(exc)}: {message(exc)}); use valid credentials (a fresh session token, the right "
            "secret)",
        )
    return None


def config_finding(exc: BaseException) -> Finding:
    """:func:`config_problem` as a FAIL finding."""
    subject, _, text = config_problem(exc).partition(": ")
    return Finding(Level.FAIL, subject, text)


def config_problem(exc: BaseException) -> str:
    """The one line, with its fix, of an error botocore raised reading its own configuration (:data:`CONFIG_ERRORS`):
    an ``AWS_PROFILE`` no file has, a config file that cannot be read."""
    if isinstance(exc, ProfileNotFound):
        profile = exc.kwargs.get("profile", "")
        variable = next((name for name in PROFILE_VARIABLES if os.environ.get(name) == profile), PROFILE_VARIABLES[0])
        return (
            f"credentials: profile {profile!r} not found; set {variable} to a profile of ~/.aws/config (or "
            "~/.aws/credentials), or unset it"
        )
    return f"AWS configuration: {exc}; fix the file (AWS_CONFIG_FILE, else ~/.aws/config) or its variables"


def queue_problem(exc: BaseException, queue_url: str, sqs: Endpoint) -> Finding:
    """The FAIL, with its fix, of a ``GetQueueAttributes`` error start-up stopped on."""
    fault, code = startup_fault(exc), error_code(exc)
    if found := credentials_problem(exc):
        return found
    if fault in (StartupFault.NO_ANSWER, StartupFault.NOT_AWS):
        return Finding(Level.FAIL, "SQS", f"{unanswered(fault, exc, sqs, 'an SQS')}; {sqs.fix()}")
    if fault is StartupFault.NO_QUEUE:
        return Finding(
            Level.FAIL,
            "queue",
            f"{queue_url} does not exist in {sqs.region} at {sqs.url}; check {env_name('queue_url')}, and "
            "AWS_REGION (a queue lives in one region)",
        )
    if fault is StartupFault.DENIED:
        return Finding(
            Level.FAIL,
            "queue",
            f"SQS denied GetQueueAttributes on {queue_url} ({code}); grant the worker's role sqs:ReceiveMessage, "
            "DeleteMessage, ChangeMessageVisibility, GetQueueAttributes and SendMessage on it",
        )
    if fault is StartupFault.OUTAGE:
        return Finding(Level.FAIL, "SQS", f"{code} at {sqs} throughout start-up: {message(exc)}; start again later")
    return Finding(Level.FAIL, "queue", f"{env_name('queue_url')}={queue_url!r} cannot be used: {code}: {message(exc)}")


def unanswered(fault: StartupFault, exc: BaseException, endpoint: Endpoint, service: str, needed_by: str = "") -> str:
    """What a call that got no answer of the service's (``NO_ANSWER`` or ``NOT_AWS``) says about its endpoint, and
    what needs it."""
    needs = f", which {needed_by} needs" if needed_by else ""
    if fault is StartupFault.NOT_AWS:
        return f"{endpoint} is not {service} endpoint (HTTP {error_code(exc)}, no AWS error in the answer){needs}"
    return f"no answer at {endpoint}{needs}: {message(exc)}"


def message(exc: BaseException) -> str:
    """An error's own message (an AWS error's ``Message``), else its text or its class's name."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Message", "")) or str(exc)
    return str(exc) or type(exc).__name__
