"""The session store interface. Redis and SQLite implement it and pass one contract suite.

Every state change goes through `cas` (compare-and-set on the session's version), so two
processes or two clicks can never both apply a transition to the same version.

Layout: a session is stored as its head (everything but `steps`, with its version and its
number of steps) under compare-and-set, and its steps one record each, keyed by position. A
commit through `update` writes the head and only the steps that changed, in one atomic
operation, so its cost does not grow with the session's length: the session handed to the
mutation has its steps in a `StepList`, which copies a step only when the mutation reaches it
and tells the store which ones it may have changed. `cas` called on its own writes every step.
"""

from __future__ import annotations

import asyncio
import random
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, SupportsIndex, TypeVar, overload

from pydantic import TypeAdapter
from pydantic_core import PydanticSerializationError

from bot.models import ChannelProfile, Session, Step, Template
from bot.redact import NO_SECRETS, Redactor
from bot.text import scrub


class StoreError(Exception):
    """The store cannot be reached or answered wrongly."""


class SessionExists(StoreError):
    pass


class OpenError(StoreError):
    """A part of the bot (the archive, the memory) could not be opened at start; the message
    names it: "Cannot open the archive (PostgreSQL at db:5432/bot is not answering: ...)"."""

    def __init__(self, part: str, reason: object) -> None:
        super().__init__(f"Cannot open the {part} ({reason})")
        self.part = part


C = TypeVar("C")


def opened(connection: C | None, name: str) -> C:
    """A store's connection when it is open; StoreError naming the store otherwise."""
    if connection is None:
        raise StoreError(f"{name} is not open")
    return connection


# Changes the session it is given in place, or returns the session to store instead; False aborts.
Mutation = Callable[[Session], Awaitable[Session | bool | None] | Session | bool | None]

_STEPS: TypeAdapter[list[Step]] = TypeAdapter(list[Step])
_HEAD_EXCLUDE = frozenset({"steps"})


def dump_step(step: Step) -> str:
    """A step's JSON (not redacted); a lone surrogate that came in from outside is replaced."""
    try:
        return step.model_dump_json()
    except PydanticSerializationError:
        return Step.model_validate(scrub(step.model_dump())).model_dump_json()


def decode_steps(texts: Iterable[str]) -> list[Step]:
    """Steps from their stored JSON texts, in one decoding pass."""
    return _STEPS.validate_json("[" + ",".join(texts) + "]")


def decode_session(head: str, steps: Iterable[str]) -> Session:
    """A session from its stored head and the JSON texts of its steps."""
    session = Session.model_validate_json(head)
    session.steps = decode_steps(steps)
    return session


def private_copy(current: Session) -> Session:
    """A copy of `current` to mutate: its head decoded again from its JSON, its steps shared
    behind a `StepList` that copies a step before handing it out."""
    try:
        head = current.model_dump_json(exclude=_HEAD_EXCLUDE)
    except PydanticSerializationError:
        head = Session.model_validate(scrub(current.model_dump(exclude=_HEAD_EXCLUDE))).model_dump_json()
    copy = Session.model_validate_json(head)
    copy.steps = StepList(current.steps, copy_on_access=True)
    return copy


class StepList(list[Step]):
    """The steps of a session being mutated, over a base (the steps as stored at the version
    the mutation started from), which it never lets a mutation change: a base step is copied
    (or, with `copy_on_access=False`, when the base is private, only recorded) the first time
    it is handed out, by index, slice or iteration. `changes()` then names the positions whose
    step may differ from the base, comparing the JSON of the handed-out ones with the base's:
    its cost grows with what the mutation touched, not with the number of steps."""

    __slots__ = ("_base", "_copy", "_low", "_out", "_where")

    def __init__(self, base: list[Step], *, copy_on_access: bool) -> None:
        items = list.copy(base)  # a plain copy of the pointers, never through our own iteration
        super().__init__(items)
        self._base: list[Step] = items[:]
        self._copy = copy_on_access
        self._out: dict[int, tuple[Step, int, str]] = {}  # id(handed out) -> (it, base index, base JSON)
        self._low = len(items)  # positions from here on may have been moved, added or replaced
        self._where: dict[int, int] | None = None  # id(base step) -> base index, once positions moved

    # ------------------------------------------------------------------ handing steps out
    def _base_index(self, item: Step, i: int) -> int:
        if i < len(self._base) and item is self._base[i]:
            return i
        if self._low >= len(self._base):  # nothing moved: a base step is only at its own place
            return -1
        if self._where is None:
            self._where = {id(step): k for k, step in enumerate(self._base)}
        return self._where.get(id(item), -1)

    def _own(self, i: int) -> Step:
        item = list.__getitem__(self, i)
        if id(item) in self._out:
            return item
        k = self._base_index(item, i)
        if k < 0:
            return item
        dumped = dump_step(item)
        if self._copy:
            item = Step.model_validate_json(dumped)
            list.__setitem__(self, i, item)
        self._out[id(item)] = (item, k, dumped)
        return item

    def _moved(self, position: int) -> None:
        self._low = min(self._low, max(0, position))

    @overload
    def __getitem__(self, i: SupportsIndex) -> Step: ...

    @overload
    def __getitem__(self, i: slice) -> list[Step]: ...

    def __getitem__(self, i: SupportsIndex | slice) -> Step | list[Step]:
        if isinstance(i, slice):
            return [self._own(k) for k in range(*i.indices(len(self)))]
        k = i.__index__()
        if k < 0:
            k += len(self)
        if not 0 <= k < len(self):
            raise IndexError("list index out of range")
        return self._own(k)

    def __iter__(self) -> Iterator[Step]:
        i = 0
        while i < len(self):
            yield self._own(i)
            i += 1

    def __reversed__(self) -> Iterator[Step]:
        i = len(self) - 1
        while i >= 0:
            if i < len(self):
                yield self._own(i)
            i -= 1

    def copy(self) -> list[Step]:
        return list(self)

    def __add__(self, other: list[Step]) -> list[Step]:  # type: ignore[override]
        return list(self) + list(other)

    def __mul__(self, n: SupportsIndex) -> list[Step]:
        return list(self) * n

    __rmul__ = __mul__

    def __imul__(self, n: SupportsIndex) -> StepList:
        items = list(self) * n
        self._moved(0)
        list.__setitem__(self, slice(None), items)
        return self

    # ------------------------------------------------------------------ changing the list
    def __setitem__(self, i: Any, value: Any) -> None:
        if isinstance(i, slice):
            self._moved(0)
        else:
            k = i.__index__()
            self._moved(k + len(self) if k < 0 else k)
        list.__setitem__(self, i, value)

    def __delitem__(self, i: SupportsIndex | slice) -> None:
        if isinstance(i, slice):
            self._moved(min(range(*i.indices(len(self))), default=len(self)))
        else:
            k = i.__index__()
            self._moved(k + len(self) if k < 0 else k)
        list.__delitem__(self, i)

    def __iadd__(self, other: Iterable[Step]) -> StepList:  # type: ignore[override]
        self.extend(other)
        return self

    def append(self, item: Step) -> None:
        self._moved(len(self))
        list.append(self, item)

    def extend(self, items: Iterable[Step]) -> None:
        self._moved(len(self))
        list.extend(self, items)

    def insert(self, i: SupportsIndex, item: Step) -> None:
        k = i.__index__()
        self._moved(max(0, k + len(self)) if k < 0 else min(k, len(self)))
        list.insert(self, i, item)

    def pop(self, i: SupportsIndex = -1) -> Step:
        k = i.__index__()
        k = k + len(self) if k < 0 else k
        item = self[k]
        self._moved(k)
        list.__delitem__(self, k)
        return item

    def remove(self, item: Step) -> None:
        del self[self.index(item)]

    def clear(self) -> None:
        self._moved(0)
        list.clear(self)

    def reverse(self) -> None:
        self._moved(0)
        list.reverse(self)

    def sort(self, *args: Any, **kwargs: Any) -> None:
        items = list(self)  # a key function sees copies, never the base
        items.sort(*args, **kwargs)
        self._moved(0)
        list.__setitem__(self, slice(None), items)

    def __reduce_ex__(self, protocol: SupportsIndex) -> Any:  # copy/deepcopy/pickle: a plain list
        return (list, (list(self),))

    # ------------------------------------------------------------------ what to write
    def changes(self) -> tuple[int, list[tuple[int, str]]]:
        """(number of base steps, [(position, JSON)] of every step to write, ascending): the
        positions whose step differs from the base's, or that are new. Positions past the end
        of the list are gone."""
        n, base = len(self), self._base
        candidates = {k for _, k, _ in self._out.values() if k < n}
        candidates.update(range(min(self._low, n), n))
        out: list[tuple[int, str]] = []
        for j in sorted(candidates):
            item = list.__getitem__(self, j)
            known = self._out.get(id(item))
            if known is not None:
                if known[1] == j and known[2] == (dumped := dump_step(item)):
                    continue
                out.append((j, dumped if known[1] == j else dump_step(item)))
            elif j < len(base) and item is base[j]:
                continue
            else:
                out.append((j, dump_step(item)))
        return len(base), out


@dataclass
class Write:
    """What a commit writes: the head, and the steps by position (redacted JSON). `base`: the
    number of steps stored before, when only `steps` changed (the rest are as stored, and
    positions from `count` on are gone); None to replace every step."""

    head: str
    count: int
    steps: list[tuple[int, str]] = field(default_factory=list)
    base: int | None = None


class SessionStore(ABC):
    """Durable session state. Implementations must make `cas` atomic across processes.

    What is stored passes through `encode`/`write_of`: the session's JSON with every configured
    secret redacted (`redactor`, set by `make_store`), so no command output can put a key in the
    store."""

    redactor: Redactor = NO_SECRETS

    def encode(self, session: Session, version: int) -> str:
        """The whole stored text of `session` at `version` (the single-JSON layout)."""
        stored = session.model_copy(update={"version": version})
        try:
            text = stored.model_dump_json()
        except PydanticSerializationError:  # a lone surrogate that came in from outside
            text = Session.model_validate(scrub(stored.model_dump())).model_dump_json()
        return self.redactor.text(text)

    def encode_head(self, session: Session, version: int) -> str:
        """The stored head of `session` at `version`: everything but its steps, redacted."""
        stored = session.model_copy(update={"version": version})
        try:
            text = stored.model_dump_json(exclude=_HEAD_EXCLUDE)
        except PydanticSerializationError:
            text = Session.model_validate(scrub(stored.model_dump(exclude=_HEAD_EXCLUDE))).model_dump_json()
        return self.redactor.text(text)

    def write_of(self, session: Session, version: int, *, whole: bool = False) -> Write:
        """What to write for `session` at `version`: when its steps are a `StepList` (a mutation
        in `update`), the steps that changed; otherwise (or `whole`) every step."""
        redact = self.redactor.text
        head = self.encode_head(session, version)
        steps = session.steps
        if isinstance(steps, StepList) and not whole:
            base, changed = steps.changes()
            return Write(head, len(steps), [(j, redact(text)) for j, text in changed], base)
        items = list.copy(steps)
        return Write(head, len(items), [(j, redact(dump_step(step))) for j, step in enumerate(items)])

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

    async def commit(self, session: Session, expected_version: int) -> bool:
        """`cas` for a session mutated in `update` (its steps a `StepList`): a store may write
        only the steps that changed. By default, `cas`."""
        return await self.cas(session, expected_version)

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
    async def stored_version(self, session_id: str) -> int | None:
        """The stored version of a session (None: there is none), read cheaply."""

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
        `current`, a copy the caller just read or wrote (and has not changed since), saves the
        first load: if it is stale the compare-and-set fails and the loop loads the stored one,
        and a mutation that refuses the copy is asked again about the stored session.
        The mutation gets a private copy: `current` is never changed. Only the steps it reached
        are copied and compared, and the session returned shares the others with `current`.
        """
        for attempt in range(attempts):
            if attempt:  # lost a race: let the winner's neighbours through before trying again
                await asyncio.sleep(random.uniform(0, 0.002 * attempt))
            session: Session | None
            if attempt == 0 and current is not None and current.id == session_id:
                session = private_copy(current)
            else:
                session = await self.get(session_id)
                if session is None:
                    return None
                session.steps = StepList(session.steps, copy_on_access=False)
            expected = session.version
            outcome = mutate(session)
            if isinstance(outcome, Awaitable):
                outcome = await outcome
            if outcome is False:
                if attempt == 0 and current is not None and await self.stored_version(session_id) != expected:
                    continue  # `current` was stale: the stored session decides
                return None
            if isinstance(outcome, Session):
                session = outcome
            if await self.commit(session, expected):
                if isinstance(session.steps, StepList):
                    session.steps = list.copy(session.steps)
                return session
        raise StoreError(f"session {session_id}: too many concurrent updates")

    # ------------------------------------------------------------------ channel profiles, templates
    # Stored documents (`doc_*`, kinds PROFILES and TEMPLATES), so every store keeps them alike.

    PROFILES = "profile"
    TEMPLATES = "template"

    async def get_profile(self, channel_key: str) -> ChannelProfile | None:
        """A channel's profile (None: the channel has none)."""
        found = await self.doc_get(self.PROFILES, channel_key)
        return ChannelProfile.model_validate_json(found[1]) if found else None

    async def change_profile(
        self, fresh: ChannelProfile, mutate: Callable[[ChannelProfile], bool | None]
    ) -> ChannelProfile | None:
        """Change the profile of `fresh.key` with `mutate` (on `fresh` when the channel has none
        yet), under compare-and-set. False from `mutate` aborts (None is returned)."""
        for _ in range(20):
            found = await self.doc_get(self.PROFILES, fresh.key)
            if found is None:
                profile = fresh.model_copy(deep=True)
            else:
                profile = ChannelProfile.model_validate_json(found[1])
            if mutate(profile) is False:
                return None
            data = profile.model_dump_json()
            if found is None:
                if profile.empty or await self.doc_create(self.PROFILES, fresh.key, data):
                    return profile
            elif await self.doc_cas(self.PROFILES, fresh.key, found[0], data):
                return profile
        raise StoreError(f"profile {fresh.key}: too many concurrent updates")

    async def list_profiles(self) -> list[ChannelProfile]:
        """Every channel profile that sets something."""
        found = [ChannelProfile.model_validate_json(d) for _, d in await self.doc_list(self.PROFILES)]
        return [p for p in found if not p.empty]

    async def get_template(self, key: str) -> Template | None:
        found = await self.doc_get(self.TEMPLATES, key)
        return Template.model_validate_json(found[1]) if found else None

    async def save_template(self, template: Template, replace: Callable[[Template], bool]) -> Template | None:
        """Store `template`; one of the same key is replaced only when `replace(it)` says so
        (None is returned otherwise, and nothing changes)."""
        data = template.model_dump_json()
        for _ in range(20):
            found = await self.doc_get(self.TEMPLATES, template.key)
            if found is None:
                if await self.doc_create(self.TEMPLATES, template.key, data):
                    return template
                continue
            if not replace(Template.model_validate_json(found[1])):
                return None
            if await self.doc_cas(self.TEMPLATES, template.key, found[0], data):
                return template
        raise StoreError(f"template {template.key}: too many concurrent updates")

    async def delete_template(self, key: str) -> bool:
        return await self.doc_delete(self.TEMPLATES, key)

    async def list_templates(self) -> list[Template]:
        return [Template.model_validate_json(d) for _, d in await self.doc_list(self.TEMPLATES)]
