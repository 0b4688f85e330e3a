"""The session store interface. Redis and SQLite implement it and pass one contract suite.

Every state change goes through `cas` (compare-and-set on the session's version), so two
processes or two clicks can never both apply a transition to the same version.
"""

from __future__ import annotations

import asyncio
import random
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import TypeVar

from pydantic_core import PydanticSerializationError

from bot.models import Session
from bot.redact import NO_SECRETS, Redactor
from bot.text import scrub


class StoreError(Exception):
    """The store cannot be reached or answered wrongly."""


class SessionExists(StoreError):
    pass


C = TypeVar("C")


def opened(connection: C | None, name: str) -> C:
    """A store's connection when it is open; StoreError naming the store otherwise."""
    if connection is None:
        raise StoreError(f"{name} is not open")
    return connection


# Changes the session it is given in place, or returns the session to store instead; False aborts.
Mutation = Callable[[Session], Awaitable[Session | bool | None] | Session | bool | None]


class SessionStore(ABC):
    """Durable session state. Implementations must make `cas` atomic across processes.

    What is stored passes through `encode`: the session's JSON with every configured secret
    redacted (`redactor`, set by `make_store`), so no command output can put a key in the store."""

    redactor: Redactor = NO_SECRETS

    def encode(self, session: Session, version: int) -> str:
        """The stored text of `session` at `version`."""
        stored = session.model_copy(update={"version": version})
        try:
            text = stored.model_dump_json()
        except PydanticSerializationError:  # a lone surrogate that came in from outside
            text = Session.model_validate(scrub(stored.model_dump())).model_dump_json()
        return self.redactor.text(text)

    @abstractmethod
    async def open(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def ping(self) -> bool: ...

    @abstractmethod
    async def create(self, session: Session) -> None:
        """Insert a new session (version 0 -> stored as 1). Raises SessionExists if the id is taken."""

    @abstractmethod
    async def get(self, session_id: str) -> Session | None: ...

    @abstractmethod
    async def cas(self, session: Session, expected_version: int) -> bool:
        """Store `session` if the stored version is `expected_version`; on success the stored
        and the given session's version become expected_version + 1. Terminal sessions leave
        the active index and expire after the store's finished TTL."""

    @abstractmethod
    async def sessions_of(self, user_key: str) -> list[Session]:
        """Every stored session of a user (`platform:user id`), newest first."""

    @abstractmethod
    async def active_ids(self) -> list[str]:
        """Ids of every session that is not in a terminal state."""

    @abstractmethod
    async def delete(self, session_id: str) -> None: ...

    @abstractmethod
    async def add_spend(self, user_key: str, day: str, usd: float) -> float:
        """Atomically add to a user's spend for a day (YYYY-MM-DD, UTC); returns the new total."""

    @abstractmethod
    async def get_spend(self, user_key: str, day: str) -> float: ...

    @abstractmethod
    async def acquire_lease(self, session_id: str, holder: str, ttl_s: float) -> bool:
        """Take or renew the lease on a session: true when free, lapsed, or already `holder`'s."""

    @abstractmethod
    async def release_lease(self, session_id: str, holder: str) -> None:
        """Give the lease back, only if `holder` has it."""

    @abstractmethod
    async def lease_expiry(self, session_id: str) -> float | None:
        """When the lease on a session lapses (epoch seconds); None when nobody holds it."""

    @abstractmethod
    async def bind_place(self, place_key: str, session_id: str, ttl_s: float) -> None:
        """Remember which session lives in a place (a thread), e.g. to take a reply there as feedback."""

    @abstractmethod
    async def session_at(self, place_key: str) -> str | None:
        """The id of the session bound to a place, if any (and not expired)."""

    @abstractmethod
    async def doc_create(self, kind: str, doc_id: str, data: str) -> bool:
        """Insert a small versioned document (a schedule, ...) at version 1; False if the id is taken."""

    @abstractmethod
    async def doc_get(self, kind: str, doc_id: str) -> tuple[int, str] | None:
        """(version, data) of a document, or None."""

    @abstractmethod
    async def doc_cas(self, kind: str, doc_id: str, expected_version: int, data: str) -> bool:
        """Replace a document if its version is `expected_version` (the version then goes up by one)."""

    @abstractmethod
    async def doc_list(self, kind: str) -> list[tuple[int, str]]:
        """Every document of a kind."""

    @abstractmethod
    async def doc_delete(self, kind: str, doc_id: str) -> bool:
        """Remove a document; False if it was not there."""

    @abstractmethod
    async def claim(self, key: str, ttl_s: float) -> bool:
        """True the first time `key` is claimed within `ttl_s` seconds, by any process; False for
        a repeat. A request delivered twice (a replay, a platform's retry) is recognised by it."""

    @abstractmethod
    async def stored_bytes(self, session_id: str) -> int:
        """Bytes the session takes in the store (for benchmarks)."""

    async def update(
        self, session_id: str, mutate: Mutation, attempts: int = 20, current: Session | None = None
    ) -> Session | None:
        """Load, mutate, compare-and-set, retrying on a lost race.

        `mutate` changes the session in place, or returns the session to store (a new value
        computed from the one it got); returning False aborts (nothing is written and None is
        returned). Returns the stored session, or None if it is missing or aborted.
        `current`, a copy the caller just read or wrote, saves the first load: if it is stale the
        compare-and-set fails and the loop loads the stored one.
        """
        for attempt in range(attempts):
            if attempt:  # lost a race: let the winner's neighbours through before trying again
                await asyncio.sleep(random.uniform(0, 0.002 * attempt))
            if attempt == 0 and current is not None and current.id == session_id:
                # a private copy to mutate: a JSON round trip (as stored) is 3x cheaper than deepcopy
                session: Session | None = Session.model_validate_json(current.model_dump_json())
            else:
                session = await self.get(session_id)
            if session is None:
                return None
            expected = session.version
            outcome = mutate(session)
            if isinstance(outcome, Awaitable):
                outcome = await outcome
            if outcome is False:
                return None
            if isinstance(outcome, Session):
                session = outcome
            if await self.cas(session, expected):
                return session
        raise StoreError(f"session {session_id}: too many concurrent updates")
