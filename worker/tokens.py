"""What this replica knows about the tokens it handles: which delivery leads each token, which tokens it answered,
and how far each continuation chain has got.

All of it is one replica's memory: SageMaker (``CALLBACK_WORKER_VERIFY_TOKENS``) is the shared source of truth for
whether a step still waits. This settles on sight, without a call, the duplicates that meet on one replica: a second
delivery of a token joins the one under way, a copy of a token answered here is dropped, and an older link of a
continuation chain that reappears (its delete failed after the next link was sent) is recognised by its chain id and
link number and dropped. Chains are keyed by token *and* chain id: chain ids are message ids, printed in every log
line, and nothing in one token's message may touch another token's chain. An old link that reappears on *another*
replica is not recognised: that is why the delete of a re-queued link is retried for as long as its lease lasts
(:mod:`worker.settle`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from callback_worker.worker.lifecycle import Delivery, Phase
from callback_worker.worker.message import CallbackMessage, Status

#: Tokens answered, and chains followed, that are remembered (least recently used forgotten first).
MEMORY = 10_000


@dataclass(eq=False, slots=True)
class TokenRecord:
    """The deliveries of one token in flight here."""

    leader: Delivery | None = None
    """The Executing delivery carrying the token's lifecycle here."""
    stopper: Delivery | None = None
    """The Stopping delivery carrying the token's stop here (copies of it join it)."""
    deliveries: int = 0

    @property
    def stopping(self) -> bool:
        return self.stopper is not None


class Tokens:
    """Per-token bookkeeping of one replica."""

    def __init__(self, memory: int = MEMORY) -> None:
        self.memory = memory
        self.records: dict[str, TokenRecord] = {}
        self._answered: OrderedDict[str, None] = OrderedDict()
        self._chains: OrderedDict[tuple[str, str], int] = OrderedDict()

    def enter(self, delivery: Delivery, message: CallbackMessage) -> TokenRecord:
        """Register ``delivery`` under its token (synchronously, before anything awaits); an Executing delivery
        leads when no other does."""
        record = self.records.get(message.token)
        if record is None:
            record = self.records[message.token] = TokenRecord()
        record.deliveries += 1
        if message.status is Status.STOPPING:
            if record.stopper is None:
                record.stopper = delivery
        elif record.leader is None:
            record.leader = delivery
        return record

    def claim(self, delivery: Delivery, message: CallbackMessage) -> None:
        """Make ``delivery`` (already entered) the token's leader if no other delivery leads it now."""
        record = self.records[message.token]
        if record.leader is None:
            record.leader = delivery

    def leave(self, delivery: Delivery, message: CallbackMessage) -> None:
        """``delivery`` is over: wake those who joined it, and forget the record once no delivery needs it."""
        record = self.records.get(message.token)
        if record is None:
            return
        if record.leader is delivery:
            record.leader = None
        if record.stopper is delivery:
            record.stopper = None
        delivery.finish()
        record.deliveries -= 1
        if record.deliveries <= 0:
            del self.records[message.token]

    def running(self) -> Iterator[Delivery]:
        """Leaders whose handler is running."""
        for record in self.records.values():
            if record.leader is not None and record.leader.phase is Phase.RUNNING:
                yield record.leader

    def answered(self, token: str) -> bool:
        return token in self._answered

    def remember_answer(self, token: str) -> None:
        _remember(self._answered, token, None, self.memory)

    def is_stale(self, message: CallbackMessage, chain: str) -> bool:
        """True if a later link of this message's chain (of its own token) was already sent or run here."""
        return message.continuation.link < self._chains.get((message.token, chain), 0)

    def advance_chain(self, token: str, chain: str, link: int) -> None:
        """Link ``link`` of ``token``'s ``chain`` is now the live one: earlier links that reappear are stale. (Link
        0 makes nothing stale and is not remembered: the memory holds only chains that continued.)"""
        if link > self._chains.get((token, chain), 0):
            _remember(self._chains, (token, chain), link, self.memory)


def _remember(memory: OrderedDict[Any, Any], key: object, value: object, size: int) -> None:
    memory[key] = value
    memory.move_to_end(key)
    while len(memory) > size:
        memory.popitem(last=False)
