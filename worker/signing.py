"""Keys the replicas share: HMAC-SHA256 seals on the worker's own continuations, and the key of ``run_key``.

The keys come from ``CALLBACK_WORKER_SIGNING_KEY_FILE`` (a file, one key per line) or ``CALLBACK_WORKER_SIGNING_KEY``
(the same text, for a secret the platform injects into the environment); blank lines and lines starting with ``#`` are
skipped. The first key signs; every key verifies, so a rotation adds the new key beside the old one before it signs.
Each key is known by its *key id*, the first hex digits of an HMAC of a fixed text under it: seals and log lines name
the key without revealing it. A key shorter than ``MIN_KEY_BYTES`` stops start-up.

What is sealed, and what a link that fails the check becomes, is :mod:`worker.message`'s business; this module only
signs and checks bytes.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from callback_worker.config.settings import Settings, env_name
from callback_worker.worker.errors import ConfigurationError

#: The shortest key accepted, in bytes (``openssl rand -base64 32`` prints 44 characters).
MIN_KEY_BYTES = 32
KEY_ID_CHARS = 8
FILE_SETTING = env_name("signing_key_file")
VALUE_SETTING = env_name("signing_key")
_ID_TEXT = b"sagemaker-callback-worker key id"


@dataclass(frozen=True, slots=True)
class SigningKey:
    """One key and its public id."""

    id: str
    secret: bytes = field(repr=False)


def key_id(secret: bytes) -> str:
    """The key's id: a non-reversible name for it, the same on every replica."""
    return hmac.new(secret, _ID_TEXT, hashlib.sha256).hexdigest()[:KEY_ID_CHARS]


class Keyring:
    """The shared keys: the first signs, all verify."""

    def __init__(self, secrets: Sequence[bytes], *, shared: bool = True) -> None:
        if not secrets:
            raise ValueError("a keyring needs at least one key")
        self.keys = tuple(SigningKey(key_id(secret), secret) for secret in secrets)
        self.shared = shared
        """Whether other processes hold these keys (configured ones), or they are this process's alone."""
        self._by_id = {key.id: key for key in reversed(self.keys)}  # the first of two keys with one id wins

    @property
    def signer(self) -> SigningKey:
        return self.keys[0]

    def sign(self, payload: bytes) -> str:
        """The seal of ``payload``: ``<key id>.<MAC in unpadded base64url>``."""
        return f"{self.signer.id}.{_b64(_mac(self.signer.secret, payload))}"

    def check(self, payload: bytes, seal: object) -> str | None:
        """None if ``seal`` is a seal of ``payload`` under one of the keys, else why not (safe to log)."""
        if not isinstance(seal, str):
            return "it carries no seal"
        kid, _, text = seal.partition(".")
        key = self._by_id.get(kid)
        if key is None:
            return f"its seal names key id {kid[:KEY_ID_CHARS]!r}, which is not one of this worker's keys"
        try:
            given = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        except (binascii.Error, ValueError):
            return "its seal is not base64url"
        if not hmac.compare_digest(given, _mac(key.secret, payload)):
            return f"its seal under key {kid} does not match its content"
        return None

    def derive(self, purpose: str) -> bytes:
        """A key for another use than sealing, from the signing key (so it rotates with it)."""
        return _mac(self.signer.secret, b"sagemaker-callback-worker derive:" + purpose.encode())


def _mac(secret: bytes, payload: bytes) -> bytes:
    return hmac.new(secret, payload, hashlib.sha256).digest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def parse_keys(text: str, setting: str) -> Keyring:
    """The keys in ``text`` (one a line); ConfigurationError naming ``setting`` when there are none or one is short.
    The message never holds key material."""
    secrets = []
    for number, line in enumerate(text.splitlines(), start=1):
        key = line.strip()
        if not key or key.startswith("#"):
            continue
        if len(key.encode()) < MIN_KEY_BYTES:
            raise ConfigurationError(
                f"invalid setting {setting}: the key on line {number} is {len(key.encode())} bytes; at least "
                f"{MIN_KEY_BYTES} are needed (make one with: openssl rand -base64 32)"
            )
        secrets.append(key.encode())
    if not secrets:
        raise ConfigurationError(f"invalid setting {setting}: it holds no key (one key a line; the first signs)")
    return Keyring(secrets)


def load_keyring(path: str | None, value: str | None) -> Keyring | None:
    """The keyring the two settings give, None when neither is set; ConfigurationError when the file cannot be read,
    holds no key or a short one, or when both are set."""
    if path is not None and value is not None:
        raise ConfigurationError(f"invalid setting {VALUE_SETTING}: set it or {FILE_SETTING}, not both")
    if value is not None:
        return parse_keys(value, VALUE_SETTING)
    if path is None:
        return None
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise ConfigurationError(f"invalid setting {FILE_SETTING}={path!r}: cannot read it: {reason}") from None
    return parse_keys(text, f"{FILE_SETTING}={path!r}")


def process_keyring() -> Keyring:
    """A key of this process alone, for a worker configured with none: it authenticates the links this process
    wrote, and no other (another replica's, an earlier process's), which are then fresh deliveries of their tokens."""
    return Keyring([secrets.token_bytes(MIN_KEY_BYTES)], shared=False)


def keyring_for(settings: Settings) -> Keyring | None:
    """The keyring the worker's settings configure, read once per process: the seals and ``run_key`` use the keys
    read at start-up, whatever happens to the file afterwards (a Kubernetes Secret is updated in place), until the
    next start."""
    value = settings.signing_key.get_secret_value() if settings.signing_key is not None else None
    return _cached_keyring(settings.signing_key_file, value)


def environment_keyring() -> Keyring | None:
    """The keyring the process environment configures, the one :func:`keyring_for` read at the daemon's start-up
    (read once per distinct setting): for code that has no :class:`Settings` at hand, such as the built-in
    handlers' ``run_key``."""
    return _cached_keyring(os.environ.get(FILE_SETTING) or None, os.environ.get(VALUE_SETTING) or None)


@functools.lru_cache(maxsize=4)
def _cached_keyring(path: str | None, value: str | None) -> Keyring | None:
    return load_keyring(path, value)
