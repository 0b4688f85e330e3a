"""Usage reports: sessions, cycles, LLM calls, tokens and spend by user, channel and model.

From the archive (finished sessions, a row each without its transcript) and the live store
(sessions under way, and finished ones the archive may not have yet), one report per
`UsageQuery`. Sessions count in the period they were created in; a day is a UTC day.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta

from pydantic import BaseModel, Field

from bot.grammar import MAX_USAGE_DAYS
from bot.models import Session, UsageRecord
from bot.presenter.views import UsageDay, UsageRow, UsageView
from bot.presenter.wording import NOT_RECORDED
from bot.store.archive import SessionArchive
from bot.store.base import SessionStore

MAX_ROWS = 15  # rows of a section; the rest are summed in one "others" row
LIVE_READS = 50  # live sessions read at once


class UsageQuery(BaseModel):
    """What a report covers: the last `days` days, of one platform (None: every one, for the
    operator's command line), one user (an id on `platform`, or `platform:id`) and one channel
    (an id) when given. `mine`: the asker's own; `user_label`: what to call the user."""

    days: int = Field(default=30, ge=1, le=MAX_USAGE_DAYS)
    platform: str | None = None
    user: str | None = None
    user_label: str | None = None
    channel: str | None = None
    mine: bool = False


def start_of(days: int, now: datetime) -> datetime:
    """Midnight UTC of the first of the last `days` days (today included)."""
    today = now.astimezone(UTC).date()
    first = today - timedelta(days=days - 1)
    return datetime(first.year, first.month, first.day, tzinfo=UTC)


def _split_user(query: UsageQuery) -> tuple[str | None, str | None]:
    """(platform, user id) of the query's user: `platform:id` names its platform."""
    platform, user = query.platform, query.user
    if user is not None and platform is None and ":" in user:
        platform, user = user.split(":", 1)
    return platform, user


def _wanted(record: UsageRecord, query: UsageQuery, since: datetime) -> bool:
    platform, user = _split_user(query)
    return (
        record.created_at >= since
        and (platform is None or record.platform == platform)
        and (user is None or record.owner == user)
        and (query.channel is None or record.channel == query.channel)
    )


async def collect(
    store: SessionStore, archive: SessionArchive, query: UsageQuery, now: datetime | None = None
) -> list[UsageRecord]:
    """The sessions a report covers: archived ones, and live ones in the store (which win: they
    are the newer copy)."""
    since = start_of(query.days, now or datetime.now(UTC))
    platform, user = _split_user(query)
    user_key = f"{platform}:{user}" if platform is not None and user is not None else None
    archived = await archive.usage_since(since, platform=platform, user_key=user_key, channel=query.channel)
    found = {r.id: r for r in archived if _wanted(r, query, since)}
    live: Iterable[Session | None]
    if user_key is not None:
        live = await store.sessions_of(user_key)
    else:
        ids = await store.active_ids()
        live = []
        for start in range(0, len(ids), LIVE_READS):
            live += await asyncio.gather(*(store.get(i) for i in ids[start : start + LIVE_READS]))
    for session in live:
        if session is not None and (record := UsageRecord.of(session)) and _wanted(record, query, since):
            found[record.id] = record
    return sorted(found.values(), key=lambda r: (r.created_at, r.id))


def _add(row: UsageRow, record: UsageRecord) -> None:
    row.sessions += 1
    row.cycles += record.cycles
    row.calls += record.usage.calls
    row.prompt_tokens += record.usage.prompt_tokens
    row.completion_tokens += record.usage.completion_tokens
    row.cost_usd += record.usage.cost_usd


def _top(rows: dict[str, UsageRow], others: str) -> list[UsageRow]:
    """The rows, the most spent first; past MAX_ROWS, the rest summed in one row."""
    ordered = sorted(rows.values(), key=lambda r: (-r.cost_usd, -r.calls, r.label))
    if len(ordered) <= MAX_ROWS:
        return ordered
    kept, rest = ordered[: MAX_ROWS - 1], ordered[MAX_ROWS - 1 :]
    summed = UsageRow(key="", label=f"{len(rest)} other {others}")
    for r in rest:
        for name in ("sessions", "cycles", "calls", "prompt_tokens", "completion_tokens", "cost_usd"):
            setattr(summed, name, getattr(summed, name) + getattr(r, name))
    return [*kept, summed]


def build(records: list[UsageRecord], query: UsageQuery, now: datetime | None = None) -> UsageView:
    """The report of `records` (already limited to what `query` covers)."""
    now = now or datetime.now(UTC)
    since = start_of(query.days, now)
    many_platforms = query.platform is None and len({r.platform for r in records}) > 1
    total = UsageRow(key="", label="In all")
    users: dict[str, UsageRow] = {}
    channels: dict[str, UsageRow] = {}
    models: dict[str, UsageRow] = {}
    days: dict[date, UsageDay] = {}
    first = since.date()
    for offset in range(query.days):
        day = first + timedelta(days=offset)
        days[day] = UsageDay(day=day)
    unpriced = 0
    for r in records:
        _add(total, r)
        prefix = f"{r.platform}:" if many_platforms else ""
        user = users.setdefault(r.user_key, UsageRow(key=r.owner, label=prefix + (r.owner_name or r.owner)))
        _add(user, r)
        place = f"{r.platform}:{r.channel}"
        _add(channels.setdefault(place, UsageRow(key=r.channel, label=prefix + (r.channel or "-"))), r)
        bucket = days.get(r.created_at.astimezone(UTC).date())
        if bucket is not None:
            bucket.sessions += 1
            bucket.cost_usd += r.usage.cost_usd
        parts = r.usage.by_model
        calls = prompt = completion = 0
        cost = 0.0
        for name, part in parts.items():
            row = models.setdefault(name, UsageRow(key=name, label=name))
            row.sessions += 1
            row.calls += part.calls
            row.prompt_tokens += part.prompt_tokens
            row.completion_tokens += part.completion_tokens
            row.cost_usd += part.cost_usd
            calls, prompt, completion = (
                calls + part.calls,
                prompt + part.prompt_tokens,
                completion + part.completion_tokens,
            )
            cost += part.cost_usd
        rest_cost = r.usage.cost_usd - cost
        rest_calls = r.usage.calls - calls
        if rest_calls > 0 or rest_cost > 1e-9:  # spend recorded before spend per model was
            if not parts:
                unpriced += 1
            row = models.setdefault(NOT_RECORDED, UsageRow(key=NOT_RECORDED, label=NOT_RECORDED))
            row.sessions += 1
            row.calls += max(0, rest_calls)
            row.prompt_tokens += max(0, r.usage.prompt_tokens - prompt)
            row.completion_tokens += max(0, r.usage.completion_tokens - completion)
            row.cost_usd += max(0.0, rest_cost)
    one_user = query.user is not None
    return UsageView(
        days=query.days,
        since=since,
        user=_split_user(query)[1],
        user_label=query.user_label or next((r.owner_name for r in records if r.owner_name), None),
        mine=query.mine,
        channel=query.channel,
        everyone=not one_user,
        total=total,
        by_user=[] if one_user else _top(users, "users"),
        by_channel=[] if query.channel is not None else _top(channels, "channels"),
        by_model=_top(models, "models"),
        daily=list(days.values()),
        unpriced=unpriced,
    )


async def report(
    store: SessionStore, archive: SessionArchive, query: UsageQuery, now: datetime | None = None
) -> UsageView:
    now = now or datetime.now(UTC)
    return build(await collect(store, archive, query, now), query, now)
