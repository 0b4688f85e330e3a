"""The audit export: every decision, every command run with its outcome, and every spend, as
CSV or JSON lines (`autogpt-bot export`).

Read from the archive (finished sessions) and the live store (sessions under way). A session
gives one record when it starts and one when it ends; a step gives a record for who decided on
it (approved, gave feedback, stopped, or approved on its own: continuous mode, approvals given
in advance, the approval policy) and one for the command's outcome; an "always allow" is a
record of its own, and so is a change of the goals (`goals ID add|remove|edit`); spend is one
record per model a session used (spend recorded before spend per model was is one record for
the rest). Records are in time order per session. What is stored is redacted already; the
export redacts again on the way out.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime
from typing import Any, Final, Literal, TextIO

from pydantic import BaseModel

from bot.models import Session, StepStatus
from bot.presenter.wording import NOT_RECORDED
from bot.redact import NO_SECRETS, Redactor
from bot.store.archive import SessionArchive
from bot.store.base import SessionStore

Kind = Literal["session_started", "session_ended", "decision", "grant", "goal_change", "command", "spend"]
FORMATS: Final = ("csv", "jsonl")
_FORMULA: Final = ("=", "+", "-", "@", "\t", "\r")  # a spreadsheet runs a cell starting so


class AuditRecord(BaseModel):
    """One line of the export. `actor` / `actor_id`: who did it (a user's name and id, or
    `auto`, `continuous`, `policy` for a step approved on its own); `action`: what was decided,
    or a command's outcome; `detail`: feedback, a result, a reason."""

    time: datetime | None
    kind: Kind
    session: str
    platform: str
    team: str | None = None
    channel: str
    owner: str
    step: int | None = None
    command: str | None = None
    args: str | None = None  # JSON
    actor: str | None = None
    actor_id: str | None = None
    action: str | None = None
    detail: str | None = None
    model: str | None = None
    calls: int | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost_usd: float | None = None


FIELDS: Final = tuple(AuditRecord.model_fields)


class ExportError(ValueError):
    """An export cannot be made as asked; the message says why."""


def parse_since(text: str) -> datetime:
    """`YYYY-MM-DD` (midnight UTC) or an ISO date and time (UTC unless it says otherwise)."""
    value = text.strip()
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ExportError(f"--since {value[:40]!r} is not a date: use YYYY-MM-DD, e.g. 2026-01-31") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _after(moment: datetime | None, since: datetime) -> bool:
    if moment is None:
        return True
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)) >= since


def records_of(session: Session, since: datetime) -> list[AuditRecord]:
    """What one session did at or after `since`, in time order (spend comes last: it is known
    per session, not per moment)."""
    base: dict[str, Any] = {
        "session": session.id,
        "platform": session.place.platform,
        "team": session.place.team,
        "channel": session.place.channel,
        "owner": session.owner,
    }
    out: list[AuditRecord] = [
        AuditRecord(
            time=session.created_at,
            kind="session_started",
            actor=session.owner_name or session.owner,
            actor_id=session.owner,
            action=(
                f"forked from {session.forked_from} at step {session.forked_at or 0}"
                if session.forked_from
                else "started"
            ),
            detail="; ".join(session.goals),
            **base,
        )
    ]
    # a fork's first steps are copies: what they did is in the records of the session they came from
    for step in session.steps[session.forked_at or 0 :]:
        call = {
            "step": step.no,
            "command": step.command.name,
            "args": json.dumps(step.command.args, ensure_ascii=False),
        }
        if step.decided_by is not None:
            detail = step.feedback if step.status == StepStatus.SKIPPED else None
            out.append(
                AuditRecord(
                    time=step.decided_at or step.proposed_at,
                    kind="decision",
                    actor=step.decided_by,
                    actor_id=step.decided_by_id,
                    action=step.decision,
                    detail=detail,
                    **call,
                    **base,
                )
            )
        if step.status in (StepStatus.DONE, StepStatus.INVALID, StepStatus.INTERRUPTED, StepStatus.EXECUTING):
            outcome = {StepStatus.EXECUTING: "running"}.get(step.status, step.status.value)
            detail = step.result if step.status != StepStatus.INVALID else "; ".join(step.notes) or None
            out.append(
                AuditRecord(
                    time=step.decided_at or step.proposed_at,
                    kind="command",
                    actor=step.decided_by,
                    actor_id=step.decided_by_id,
                    action=outcome,
                    detail=detail,
                    **call,
                    **base,
                )
            )
    for grant in session.grants:
        out.append(
            AuditRecord(
                time=grant.at,
                kind="grant",
                command=grant.tool,
                actor=grant.by,
                actor_id=grant.by_id,
                action="always allowed",
                **base,
            )
        )
    for change in session.goal_changes:
        out.append(
            AuditRecord(
                time=change.at,
                kind="goal_change",
                step=change.after_step or None,
                actor=change.by,
                actor_id=change.by_id,
                action=f"{change.action} goal {change.index}",
                detail=change.after if change.action != "remove" else change.before,
                **base,
            )
        )
    if session.state.terminal:
        out.append(
            AuditRecord(
                time=session.finished_at or session.updated_at,
                kind="session_ended",
                action=session.state.value,
                detail=session.reason,
                **base,
            )
        )
    out = [r for r in out if _after(r.time, since)]
    out.sort(key=lambda r: r.time or session.created_at)
    if not _after(session.finished_at or session.updated_at, since):
        return out
    usage = session.usage
    calls, prompt, completion, cost = 0, 0, 0, 0.0
    when = session.finished_at or session.updated_at
    for model, part in sorted(usage.by_model.items()):
        calls, prompt, completion = (
            calls + part.calls,
            prompt + part.prompt_tokens,
            completion + part.completion_tokens,
        )
        cost += part.cost_usd
        out.append(
            AuditRecord(
                time=when,
                kind="spend",
                model=model,
                calls=part.calls,
                prompt_tokens=part.prompt_tokens,
                completion_tokens=part.completion_tokens,
                cost_usd=round(part.cost_usd, 8),
                **base,
            )
        )
    if usage.calls - calls > 0 or usage.cost_usd - cost > 1e-9:
        out.append(
            AuditRecord(
                time=when,
                kind="spend",
                model=NOT_RECORDED,
                calls=max(0, usage.calls - calls),
                prompt_tokens=max(0, usage.prompt_tokens - prompt),
                completion_tokens=max(0, usage.completion_tokens - completion),
                cost_usd=round(max(0.0, usage.cost_usd - cost), 8),
                **base,
            )
        )
    return out


async def sessions_since(
    store: SessionStore, archive: SessionArchive, since: datetime
) -> AsyncIterator[Session]:
    """The sessions an export covers: archived ones that finished at or after `since`, then the
    live ones (under way, or finished and not archived yet)."""
    seen: set[str] = set()
    async for session in archive.finished_since(since):
        seen.add(session.id)
        yield session
    for session_id in await store.active_ids():
        if session_id in seen:
            continue
        session = await store.get(session_id)
        if session is not None:
            seen.add(session_id)
            yield session


def _cell(value: Any) -> str:
    if value is None:
        return ""
    text = value.isoformat() if isinstance(value, datetime) else str(value)
    return "'" + text if text.startswith(_FORMULA) else text


def lines(records: Iterator[AuditRecord] | list[AuditRecord], fmt: str, header: bool) -> str:
    """`records` in `fmt` (csv: with the header row when `header`)."""
    if fmt == "jsonl":
        return "".join(r.model_dump_json() + "\n" for r in records)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if header:
        writer.writerow(FIELDS)
    for r in records:
        writer.writerow([_cell(getattr(r, name)) for name in FIELDS])
    return buffer.getvalue()


async def export(
    store: SessionStore,
    archive: SessionArchive,
    since: datetime,
    fmt: str,
    out: TextIO,
    redactor: Redactor = NO_SECRETS,
) -> int:
    """Write every record at or after `since` to `out` in `fmt`; returns how many."""
    if fmt not in FORMATS:
        raise ExportError(f"--format must be csv or jsonl, not {fmt!r}")
    count = 0
    if fmt == "csv":
        out.write(lines([], fmt, header=True))
    async for session in sessions_since(store, archive, since):
        records = records_of(session, since)
        if records:
            out.write(redactor.text(lines(records, fmt, header=False)))
            count += len(records)
    return count
