"""Scheduled recurring goals: making, listing, pausing, resuming and removing schedules; firings
that start continuous sessions in their own thread; missed firings inside and outside the grace
time after a restart. Short intervals control time; real stores, the scripted LLM."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from bot.core import Core
from bot.models import Actor, Place, Session, SessionState, utcnow
from bot.schedules import Schedule, ScheduleError, firing_id, make_trigger
from bot.settings import Settings
from tests.fakes.chat import TestPlatform
from tests.fakes.llm_server import ScriptedLLM, agent_reply

OWNER = "U1"
PLACE = Place(platform="test", channel="C9")
ME = Actor(platform="test", user_id=OWNER, name="owner")


def one_step_then_finish(body: dict[str, Any]) -> dict[str, Any]:
    """Each scheduled run: append one line to its workspace, then finish."""
    if "Command append_to_file returned" in json.dumps(body["messages"]):
        return agent_reply("finish", {"reason": "done"})
    return agent_reply("append_to_file", {"filename": "ran.txt", "text": "x"})


def quick(settings: Settings, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "min_schedule_interval_s": 1,
        "scheduler_leader_ttl_s": 1.0,
        "scheduler_sync_s": 0.2,
        "schedule_misfire_grace_s": 3,
    }
    values.update(extra)
    return settings.model_copy(update=values)


@pytest.fixture
async def sched(settings: Settings, llm: ScriptedLLM) -> AsyncIterator[tuple[Core, TestPlatform]]:
    llm.default["execution_reply"] = one_step_then_finish
    core = await Core.start(quick(settings))
    chat = TestPlatform()
    core.add_platform(chat)
    try:
        yield core, chat
    finally:
        await core.close()


async def runs_of(core: Core, schedule_id: str) -> list[Session]:
    return [s for s in await core.store.sessions_of(f"test:{OWNER}") if s.schedule_id == schedule_id]


async def wait_runs(core: Core, schedule_id: str, n: int, within: float = 15.0) -> list[Session]:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        found = await runs_of(core, schedule_id)
        if len(found) >= n and all(s.state == SessionState.FINISHED for s in found):
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"schedule {schedule_id}: {len(await runs_of(core, schedule_id))} runs, wanted {n}")


def test_triggers_accept_cron_and_intervals_and_explain_mistakes() -> None:
    now = utcnow()
    assert make_trigger("0 9 * * 1-5", "UTC", now).get_next_fire_time(None, now) is not None
    every = make_trigger("every 30m", "UTC", now)
    assert every.get_next_fire_time(None, now) - now <= timedelta(minutes=30)  # type: ignore[operator]
    daily = make_trigger("every day at 09:00", "Europe/Paris", now).get_next_fire_time(None, now)
    assert daily is not None and (daily.hour, daily.minute) == (9, 0)
    for bad, needle in [
        ("61 9 * * *", "not a valid cron expression"),
        ("0 9 * *", "neither a 5-field cron expression"),
        ("every 3 fortnights", "not an interval"),
        ("every day at 25:00", "not a time of day"),
    ]:
        with pytest.raises(ScheduleError) as err:
            make_trigger(bad, "UTC", now)
        assert (needle in str(err.value) and "0 9 * * 1-5" in str(err.value)) or "25:00" in str(err.value)
    with pytest.raises(ScheduleError, match="Unknown time zone"):
        make_trigger("every 2h", "Mars/Olympus", now)
    with pytest.raises(ScheduleError, match="too often"):
        make_trigger("every 10s", "UTC", now, min_interval_s=60)


async def test_make_list_pause_resume_remove(sched: tuple[Core, TestPlatform]) -> None:
    core, _ = sched
    core.settings.max_schedules_per_user = 2
    made = await core.service.handle_text(ME, PLACE, 'schedule "0 9 * * 1-5" summarise the news')
    assert made.ok and "next run" in made.message
    schedule_id = made.message.split()[1]
    bad = await core.service.handle_text(ME, PLACE, 'schedule "0 25 * * *" nope')
    assert not bad.ok and "Examples" in bad.message
    listing = await core.service.handle_text(ME, PLACE, "schedules")
    assert schedule_id in listing.message and "next 20" in listing.message
    stranger = Actor(platform="test", user_id="U2")
    refused = await core.service.handle_text(stranger, PLACE, f"pause-schedule {schedule_id}")
    assert not refused.ok and "Only" in refused.message
    assert (await core.service.handle_text(ME, PLACE, f"pause-schedule {schedule_id}")).ok
    assert "paused" in (await core.service.handle_text(ME, PLACE, "schedules")).message
    assert (await core.service.handle_text(ME, PLACE, f"resume-schedule {schedule_id}")).ok
    await core.service.handle_text(ME, PLACE, 'schedule "every 2h" another')
    limited = await core.service.handle_text(ME, PLACE, 'schedule "every 3h" a third')
    assert not limited.ok and "limit is 2" in limited.message
    assert (await core.service.handle_text(ME, PLACE, f"unschedule {schedule_id}")).ok
    assert schedule_id not in (await core.service.handle_text(ME, PLACE, "schedules")).message
    gone = await core.service.handle_text(ME, PLACE, f"unschedule {schedule_id}")
    assert not gone.ok and "No schedule" in gone.message


@pytest.mark.slow
async def test_a_schedule_fires_twice_each_a_continuous_session_in_its_own_thread(
    sched: tuple[Core, TestPlatform],
) -> None:
    core, chat = sched
    made = await core.service.handle_text(ME, PLACE, 'schedule --name Digest "every 2s" append a line')
    assert made.ok, made.message
    schedule_id = made.message.split()[1]
    core.start_background()
    runs = await wait_runs(core, schedule_id, 2)
    assert len({s.id for s in runs}) == len(runs) >= 2
    for run in runs[:2]:
        assert run.continuous and run.place.thread is not None and run.ai_name == "Digest"
        assert (core.settings.data_dir / "workspaces" / run.id / "ran.txt").read_text() == "x"
    titles = [h.title for h in chat.headers]
    assert all(t and f"schedule {schedule_id}" in t and "Digest" in t for t in titles)
    schedule = await core.schedules.get(schedule_id)
    assert schedule is not None and schedule.runs >= 2
    # pausing stops the firings
    await core.service.handle_text(ME, PLACE, f"pause-schedule {schedule_id}")
    await asyncio.sleep(0.5)
    count = len(await runs_of(core, schedule_id))
    await asyncio.sleep(2.5)
    assert len(await runs_of(core, schedule_id)) == count


async def _plant(core: Core, when: str, age_s: float) -> Schedule:
    """A schedule made `age_s` seconds ago that never ran: as if the bot was down since."""
    schedule = Schedule(
        id="pending", owner=OWNER, owner_name="owner", place=PLACE, when=when, tz="UTC", goals=["catch up"]
    )
    schedule = await core.schedules.create(schedule)
    created = utcnow() - timedelta(seconds=age_s)
    await core.schedules.update(schedule.id, lambda s: setattr(s, "created_at", created))
    found = await core.schedules.get(schedule.id)
    assert found is not None
    return found


async def test_a_firing_missed_while_down_runs_once_within_the_grace(
    sched: tuple[Core, TestPlatform],
) -> None:
    core, _ = sched
    # due every 20 s; it was due 1 s ago (and several times before): within the 3 s grace
    schedule = await _plant(core, "every 20s", age_s=20 * 3 + 1)
    core.start_background()
    runs = await wait_runs(core, schedule.id, 1)
    await asyncio.sleep(1.0)
    runs = await runs_of(core, schedule.id)
    assert len(runs) == 1  # the runs due 41 s and 21 s ago were outside the grace
    due = schedule.created_at + timedelta(seconds=60)
    assert runs[0].id == firing_id(schedule.id, due)


async def test_every_run_missed_within_the_grace_runs_once_in_order(
    sched: tuple[Core, TestPlatform],
) -> None:
    """As after a hand-over between leaders: two runs fell due while nobody led. Both run, each
    once, the older first, and the second only after the first has ended (runs never overlap)."""
    core, _ = sched
    core.settings.schedule_misfire_grace_s = 4
    schedule = await _plant(core, "every 2s", age_s=2 * 2 + 0.5)  # due 2.5 s and 0.5 s ago
    first, second = (schedule.created_at + timedelta(seconds=2 * k) for k in (1, 2))
    core.start_background()
    runs = {s.id: s for s in await wait_runs(core, schedule.id, 2)}
    assert {firing_id(schedule.id, first), firing_id(schedule.id, second)} <= set(runs)
    older, newer = runs[firing_id(schedule.id, first)], runs[firing_id(schedule.id, second)]
    assert older.finished_at is not None and older.finished_at <= newer.created_at


async def test_a_run_due_while_the_previous_is_going_waits_for_it_and_several_merge(
    settings: Settings, llm: ScriptedLLM
) -> None:
    """The first run stops for a human (a shell command); the runs due meanwhile do not start
    beside it: the latest waits, the others are merged into it, and it starts once the first
    run ends, saying so in its thread."""
    core = await Core.start(quick(settings, execute_local_commands=True))
    chat = TestPlatform()
    core.add_platform(chat)
    llm.script("execution_reply", agent_reply("execute_shell", {"command_line": "echo hi"}))
    llm.default["execution_reply"] = one_step_then_finish
    try:
        made = await core.service.handle_text(ME, PLACE, 'schedule "every 1s" look around')
        schedule_id = made.message.split()[1]
        core.start_background()
        deadline = time.monotonic() + 10
        while (
            not (runs := await runs_of(core, schedule_id)) or runs[0].state != SessionState.AWAITING_APPROVAL
        ):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
        blocker = runs[0]
        await asyncio.sleep(3.5)  # three more runs fall due
        assert [s.id for s in await runs_of(core, schedule_id)] == [blocker.id]
        schedule = await core.schedules.get(schedule_id)
        assert schedule is not None and schedule.waiting is not None
        assert schedule.missed and "merged into this one" in schedule.missed[-1]
        assert (await core.service.handle_text(ME, PLACE, f"stop {blocker.id}")).ok
        deadline = time.monotonic() + 10
        while len(runs := await runs_of(core, schedule_id)) < 2:
            assert time.monotonic() < deadline, "the waiting run never started"
            await asyncio.sleep(0.1)
        await core.service.handle_text(ME, PLACE, f"pause-schedule {schedule_id}")
        nxt = next(s for s in runs if s.id != blocker.id)
        stored = await core.schedules.get(schedule_id)
        assert stored is not None and stored.last_session == nxt.id and stored.last_fire is not None
        assert nxt.id == firing_id(
            schedule_id, stored.last_fire
        ) and stored.last_fire > schedule.waiting - timedelta(seconds=1)
        assert nxt.created_at > blocker.updated_at - timedelta(seconds=0.01)
        notices = [v.text for v in chat.of(nxt.id, "notice")]  # type: ignore[union-attr]
        assert any("merged into this one" in n for n in notices), notices
    finally:
        await core.close()


async def test_a_firing_missed_outside_the_grace_is_skipped_and_the_next_run_says_so(
    sched: tuple[Core, TestPlatform],
) -> None:
    core, chat = sched
    # due every 6 s; last due 4.5 s ago: outside the 3 s grace, so skipped; the next run is in 1.5 s
    schedule = await _plant(core, "every 6s", age_s=6 + 4.5)
    core.start_background()
    await asyncio.sleep(1.0)
    assert await runs_of(core, schedule.id) == []
    stored = await core.schedules.get(schedule.id)
    assert stored is not None and stored.missed and "missed while the bot was down" in stored.missed[0]
    runs = await wait_runs(core, schedule.id, 1)
    notices = [v for v in chat.of(runs[0].id, "notice")]
    assert any("missed while the bot was down" in v.text for v in notices)  # type: ignore[union-attr]
    stored = await core.schedules.get(schedule.id)
    assert stored is not None and stored.missed == []


async def test_schedules_survive_a_restart(settings: Settings, llm: ScriptedLLM) -> None:
    llm.default["execution_reply"] = one_step_then_finish
    first = await Core.start(quick(settings))
    made = await first.service.handle_text(ME, PLACE, 'schedule "every 2s" append a line')
    schedule_id = made.message.split()[1]
    await first.close()
    second = await Core.start(quick(settings))
    second.add_platform(TestPlatform())
    try:
        assert await second.schedules.get(schedule_id) is not None
        second.start_background()
        await wait_runs(second, schedule_id, 1)
    finally:
        await second.close()
