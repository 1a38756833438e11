"""Hypothesis strategies for callback-message bodies: garbage, near misses, and mutations of real messages.

Every body an SQS queue can carry is a string of the characters SQS allows (``#x9 #xA #xD``, ``#x20`` to ``#xD7FF``,
``#xE000`` to ``#xFFFD``, ``#x10000`` to ``#x10FFFF``); :func:`sqs_safe` bodies stay within that set so that they can go
through a real queue. Lone surrogates reach a parser either as JSON escapes (``"\\ud800"``, which SQS carries as
plain ASCII) or, for the parse path alone, as bytes that are not UTF-8 decoded with ``surrogateescape``.
"""

from __future__ import annotations

import json
import math
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

T = TypeVar("T")

TOKEN_ALPHABET = string.ascii_letters + string.digits
ARN = "arn:aws:sagemaker:us-east-1:123456789012:pipeline/{pipeline}/execution/{execution}"
CONTINUATION_KEY = "callbackWorkerContinuation"
#: Keys the worker reads, in the spellings a careless producer might use.
KNOWN_KEYS = ("token", "pipelineExecutionArn", "arguments", "status")
#: Larger than this, SQS refuses a body (256 KiB); keep well below.
MAX_BODY = 200_000
#: Ten letters and digits, but full-width ones: not a token.
FULLWIDTH_TOKEN = "".join(chr(0xFF21 + index) for index in range(10))
#: "Unicode" in mathematical Fraktur letters (outside the Basic Multilingual Plane).
FRAKTUR = "\U0001d518\U0001d52b\U0001d526\U0001d520\U0001d52c\U0001d521\U0001d522"


def sqs_safe(text: str) -> str:
    """``text`` without the characters an SQS body may not contain."""
    return "".join(ch for ch in text if _sqs_allowed(ord(ch)))


def _sqs_allowed(code: int) -> bool:
    return code in (0x9, 0xA, 0xD) or 0x20 <= code <= 0xD7FF or 0xE000 <= code <= 0xFFFD or code >= 0x10000


valid_tokens = st.text(TOKEN_ALPHABET, min_size=10, max_size=10)
bad_tokens: st.SearchStrategy[Any] = st.one_of(
    st.text(TOKEN_ALPHABET, max_size=9),
    st.text(TOKEN_ALPHABET, min_size=11, max_size=300),
    st.text(min_size=10, max_size=10).filter(lambda text: not all(ch in TOKEN_ALPHABET for ch in text)),
    st.sampled_from(["", " Abcdefghi", "Abcdefghij ", "Abcdefghi\n", "ABCDEFGHIJ\x00", FULLWIDTH_TOKEN, "abc!EFGH12"]),
    st.integers(),
    st.floats(),
    st.booleans(),
    st.none(),
    st.lists(valid_tokens, max_size=2),
    st.dictionaries(st.just("token"), valid_tokens, max_size=1),
)
lone_surrogates = st.integers(0xD800, 0xDFFF).map(chr)
unicode_text = st.one_of(
    st.text(max_size=40),
    st.text(st.characters(codec="utf-8"), max_size=40),
    st.lists(st.one_of(st.characters(), lone_surrogates), max_size=20).map("".join),
    st.sampled_from(
        [
            "\u202e",
            "\ufeff",
            "\ufffe",
            "\uffff",
            FRAKTUR,
            "\u0000",
            "$(touch x)",
            "'; DROP TABLE x; --",
            "%s%n",
            "\\u0000",
        ]
    ),
)
#: Text an SQS body can carry raw once unescaped: no lone surrogates, no U+FFFE / U+FFFF.
sendable_text = st.text(
    st.characters(codec="utf-8").filter(lambda ch: ch not in "\ufffe\uffff"), max_size=40
) | st.sampled_from(["\u202e", "\ufeff", FRAKTUR, "\u0000", "$(touch x)", "%s%n"])


def scalars(text: st.SearchStrategy[str] = unicode_text) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.integers(min_value=10**300, max_value=10**400),
        st.floats(),
        text,
    )


json_scalars = scalars()


def json_values(max_leaves: int = 25, text: st.SearchStrategy[str] = unicode_text) -> st.SearchStrategy[Any]:
    """JSON-able values (NaN and infinities included, as Python's JSON writes and reads them)."""
    return st.recursive(
        scalars(text),
        lambda children: st.one_of(st.lists(children, max_size=6), st.dictionaries(text, children, max_size=6)),
        max_leaves=max_leaves,
    )


def nested(depth: int, leaf: Any = 1) -> Any:
    """A value nested ``depth`` levels deep (lists and objects alternating)."""
    value = leaf
    for level in range(depth):
        value = [value] if level % 2 else {"n": value}
    return value


huge_arguments: st.SearchStrategy[Any] = st.one_of(
    st.integers(1, 150_000).map(lambda size: {"blob": "x" * size}),
    st.integers(51, 2000).map(lambda count: {f"k{index}": index for index in range(count)}),
    st.integers(1, 200).map(nested),
    st.integers(1025, 5000).map(lambda size: {"long": "é" * size}),
)
arns: st.SearchStrategy[Any] = st.one_of(
    st.builds(
        ARN.format,
        pipeline=st.text(string.ascii_lowercase + string.digits + "-", min_size=1, max_size=30),
        execution=st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=20),
    ),
    unicode_text,
    json_scalars,
    st.sampled_from(
        ["arn:aws:sagemaker:us-east-1:1234:pipeline/p/execution/e", ARN.format(pipeline="p/x", execution="e")]
    ),
)
statuses: st.SearchStrategy[Any] = st.one_of(
    st.sampled_from(["Executing", "executing", "EXECUTING", "Stopping", "stopping", "Stopped", "Succeeded", ""]),
    unicode_text,
    json_scalars,
)
continuations: st.SearchStrategy[Any] = st.one_of(
    json_scalars,
    st.fixed_dictionaries(
        {},
        optional={
            "attempt": st.one_of(st.integers(-3, 5), st.floats(), st.booleans(), st.text(max_size=3)),
            "continuations": st.one_of(st.integers(-3, 5), st.text(max_size=3)),
            "notBefore": st.one_of(
                st.integers(-(10**20), 0), st.floats(max_value=0), st.just(math.inf), st.just(math.nan), st.text()
            ),
            "originMessageId": st.one_of(st.text(max_size=10), st.integers()),
            "state": json_values(5),
        },
    ),
)


def render_pairs(pairs: list[tuple[str, Any]], *, ascii_only: bool = True, indent: int | None = None) -> str:
    """A JSON object written from ``pairs`` (keys may repeat, which ``json.dumps`` of a dict cannot express)."""
    separator = ",\n" if indent else ","
    members = [
        json.dumps(key, ensure_ascii=ascii_only) + ":" + json.dumps(value, ensure_ascii=ascii_only)
        for key, value in pairs
    ]
    return "{" + separator.join(members) + "}"


def tokenless_pairs() -> st.SearchStrategy[list[tuple[str, Any]]]:
    """Objects shaped like callback messages whose token is absent or unusable."""
    member = st.one_of(
        st.tuples(st.sampled_from(["token", "Token", "TOKEN"]), bad_tokens),
        st.tuples(st.sampled_from(KNOWN_KEYS[1:]), json_values(8)),
        st.tuples(st.sampled_from(["pipelineExecutionArn"]), arns),
        st.tuples(unicode_text.filter(lambda key: key.lower() != "token"), json_values(5)),
    )
    return st.lists(member, max_size=8).filter(lambda pairs: not _has_valid_token(pairs))


def _has_valid_token(pairs: list[tuple[str, Any]]) -> bool:
    folded = {key.lower(): value for key, value in dict(pairs).items()}
    token = folded.get("token")
    return isinstance(token, str) and len(token) == 10 and all(ch in TOKEN_ALPHABET for ch in token)


def garbage_bodies() -> st.SearchStrategy[str]:
    """Bodies with no usable token: text, JSON that is not an object, objects without a valid token."""
    return st.one_of(
        unicode_text,
        st.text(min_size=1, max_size=300),
        json_values().map(json.dumps),
        tokenless_pairs().map(render_pairs),
        st.sampled_from(['{"token": "Abcdefghi"', "{", "[]", "null", "{}", '{"token":', "\ufeff{}"]),
    )


@dataclass(frozen=True)
class Mutation:
    """How to disfigure a real callback message while keeping its token where the worker finds it."""

    arguments: Any = None
    replace_arguments: bool = False
    arn: Any = None
    replace_arn: bool = False
    drop: tuple[str, ...] = ()
    status: Any = None
    replace_status: bool = False
    key_case: Callable[[str], str] = str
    decoys: list[tuple[str, Any]] = field(default_factory=list)
    """Members written *before* the real token (other spellings of ``token`` included): later keys win."""
    extras: list[tuple[str, Any]] = field(default_factory=list)
    continuation: Any = None
    with_continuation: bool = False
    ascii_only: bool = True
    indent: int | None = None

    def apply(self, real: dict[str, Any]) -> str:
        """The mutated body of ``real`` (a parsed callback message)."""
        message = dict(real)
        if self.replace_arguments:
            message["arguments"] = self.arguments
        if self.replace_arn:
            message["pipelineExecutionArn"] = self.arn
        if self.replace_status:
            message["status"] = self.status
        for key in self.drop:
            message.pop(key, None)
        spelling = self.key_case("token")
        # A decoy spelled like the real key keeps its early position in the parsed object, so a later decoy of
        # another spelling would win the case-insensitive lookup: drop it when other spellings are present.
        mixed = any(key != spelling for key, _ in self.decoys)
        pairs = [(key, value) for key, value in self.decoys if not (mixed and key == spelling)]
        token = message.pop("token")
        pairs += [(self.key_case(key), value) for key, value in message.items()] + list(self.extras)
        if self.with_continuation:
            pairs.append((CONTINUATION_KEY, self.continuation))
        pairs.append((spelling, token))
        body = render_pairs(pairs, ascii_only=self.ascii_only, indent=self.indent)
        if not self.ascii_only and (sqs_safe(body) != body or len(body.encode("utf-8", "surrogatepass")) > MAX_BODY):
            body = render_pairs(pairs, ascii_only=True, indent=self.indent)
        return body


def _not_token_key(key: str) -> bool:
    return key.lower() not in ("token", CONTINUATION_KEY.lower())


mutations: st.SearchStrategy[Mutation] = st.builds(
    Mutation,
    arguments=st.one_of(json_values(), huge_arguments, st.dictionaries(st.just("handler"), unicode_text, max_size=1)),
    replace_arguments=st.booleans(),
    arn=arns,
    replace_arn=st.booleans(),
    drop=st.lists(st.sampled_from(KNOWN_KEYS[1:]), max_size=3, unique=True).map(tuple),
    status=statuses,
    replace_status=st.booleans(),
    key_case=st.sampled_from([str, str.upper, str.lower, str.capitalize]),
    decoys=st.lists(st.tuples(st.sampled_from(["token", "Token", "TOKEN", "tOkEn"]), bad_tokens), max_size=2),
    extras=st.lists(st.tuples(unicode_text.filter(_not_token_key), json_values(6)), max_size=4),
    continuation=continuations,
    with_continuation=st.booleans(),
    ascii_only=st.booleans(),
    indent=st.sampled_from([None, 2]),
)


#: Mutations after which the message still parses: new arguments (objects), spellings, decoys, extra members.
gentle_mutations: st.SearchStrategy[Mutation] = st.builds(
    Mutation,
    arguments=st.one_of(st.dictionaries(sendable_text, json_values(text=sendable_text), max_size=8), huge_arguments),
    replace_arguments=st.booleans(),
    key_case=st.sampled_from([str, str.upper, str.lower, str.capitalize]),
    decoys=st.lists(st.tuples(st.sampled_from(["token", "Token", "TOKEN", "tOkEn"]), bad_tokens), max_size=2),
    extras=st.lists(st.tuples(sendable_text.filter(_not_token_key), json_values(6, sendable_text)), max_size=4),
    ascii_only=st.booleans(),
    indent=st.sampled_from([None, 2]),
)


def draw(strategy: st.SearchStrategy[T], count: int, seed_value: int) -> list[T]:
    """``count`` examples of ``strategy``, the same ones for the same seed (for scenarios that are not @given)."""
    drawn: list[T] = []

    @settings(
        max_examples=count,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @seed(seed_value)
    @given(strategy)
    def collect(example: T) -> None:
        drawn.append(example)

    collect()
    return drawn[:count]
