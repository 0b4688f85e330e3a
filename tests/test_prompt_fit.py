"""Every prompt fits the model's limit whatever its parts: a 1 MB goal, role, name, task,
feedback, note, reply, result, memory or shared-file note is cut, with a note saying so, and
the rules and the reply format stay whole."""

from __future__ import annotations

import pytest

from bot.llm import prompts, tokens
from bot.models import CommandCall, Place, Session, Step, StepStatus, Thoughts
from bot.settings import Settings
from bot.tools import default_registry

LIMIT = 8000
REPLY = 1000
HUGE = " ".join(f"word{i % 97}" for i in range(170_000))  # about 1 MB


def session(**fields: object) -> Session:
    values: dict[str, object] = {"id": "abc123", "owner": "U1", "place": Place(platform="t", channel="C")}
    values.update(goals=["write a poem"], tasks=["write it", "check it"])
    values.update(fields)
    return Session.model_validate(values)


def step(**fields: object) -> Step:
    values: dict[str, object] = {
        "no": 1,
        "thoughts": Thoughts(text="t"),
        "command": CommandCall(name="read_file", args={"filename": "a"}),
        "status": StepStatus.DONE,
        "result": "ok",
    }
    values.update(fields)
    return Step.model_validate(values)


def execution(s: Session, memories: list[str] | None = None, shared: str | None = None) -> list[dict]:
    tools = default_registry().available(Settings(_env_file=None, openai_api_key="sk-x"))  # type: ignore[call-arg]
    share = {"role": "user", "content": shared} if shared is not None else None
    return prompts.execution_messages(s, tools, LIMIT, REPLY, memories or [], "budget line", share)


CASES = {
    "goal": lambda: execution(session(goals=[HUGE])),
    "five goals": lambda: execution(session(goals=[HUGE] * 5)),
    "role": lambda: execution(session(ai_role=HUGE)),
    "name": lambda: execution(session(ai_name=HUGE)),
    "tasks": lambda: execution(session(tasks=[HUGE] * 20, done_tasks=[HUGE] * 20)),
    "feedback": lambda: execution(
        session(steps=[step(status=StepStatus.SKIPPED, result=None, feedback=HUGE)])
    ),
    "result": lambda: execution(session(steps=[step(result=HUGE)])),
    "reply": lambda: execution(session(steps=[step(thoughts=Thoughts(text=HUGE, plan=HUGE))])),
    "notes": lambda: execution(session(steps=[step(notes=[HUGE, HUGE])])),
    "memories": lambda: execution(session(), memories=[HUGE] * 5),
    "shared": lambda: execution(session(), shared=HUGE),
    "everything": lambda: execution(
        session(
            goals=[HUGE] * 5,
            ai_role=HUGE,
            tasks=[HUGE] * 20,
            steps=[step(no=n, result=HUGE, feedback=None, notes=[HUGE]) for n in range(1, 30)],
        ),
        memories=[HUGE] * 5,
        shared=HUGE,
    ),
    "creation: goals": lambda: prompts.creation_messages(session(goals=[HUGE] * 5), LIMIT, REPLY),
    "creation: result": lambda: prompts.creation_messages(
        session(tasks=[HUGE] * 20, steps=[step(result=HUGE)]), LIMIT, REPLY
    ),
    "creation: feedback": lambda: prompts.creation_messages(
        session(steps=[step(result=None, feedback=HUGE)]), LIMIT, REPLY
    ),
    "prioritisation": lambda: prompts.prioritisation_messages(
        session(goals=[HUGE] * 5), [HUGE] * 20, LIMIT, REPLY
    ),
}


@pytest.mark.parametrize("part", list(CASES))
def test_a_megabyte_in_any_part_still_fits(part: str) -> None:
    messages = CASES[part]()
    assert tokens.count_messages(messages) <= LIMIT - REPLY
    text = "\n".join(str(m["content"]) for m in messages)
    assert "[... cut:" in text  # said, not silently dropped
    if part.startswith(("creation", "prioritisation")):
        assert 'Reply with JSON: {"tasks"' in text or "Reply with JSON, the tasks" in text
    else:
        assert "Response Format:" in text and "Ensure the response can be parsed" in text


async def test_every_way_in_enforces_max_goal_chars(tmp_path, llm) -> None:  # type: ignore[no-untyped-def]
    """The console builds its goal command itself: the core refuses an over-long goal however it
    came (chat's grammar refused it already)."""
    from bot.grammar import GoalCommand
    from bot.models import Actor
    from tests.conftest import make_settings, started_core

    async with started_core(make_settings(tmp_path, llm, max_goal_chars=100)) as (core, _chat):
        actor = Actor(platform="test", user_id="U1")
        place = Place(platform="test", channel="C1")
        refused = await core.service.start(actor, place, GoalCommand(goals=["x" * 10_000]))
        assert not refused.ok and "10,000 characters long; the limit is 100" in refused.message
        assert await core.store.sessions_of("test:U1") == []
        role = await core.service.start(actor, place, GoalCommand(goals=["ok"], ai_role="r" * 500))
        assert not role.ok and "The role is 500 characters long" in role.message


def test_the_cheap_bound_never_undercounts_and_spares_tiktoken() -> None:
    samples = [
        [{"role": "user", "content": "hello world " * 50}],
        [{"role": "system", "content": "日本語のテキスト" * 100}, {"role": "user", "content": "ok"}],
        [{"role": "user", "content": '{"a": [1, 2, 3]} ' * 200 + "\U0001f600" * 30}],
        [
            {
                "role": "user",
                "content": [{"type": "text", "text": "see"}, {"type": "image_url", "image_url": {}}],
            }
        ],
    ]
    for messages in samples:
        assert tokens.upper_bound(messages) >= tokens.count_messages(messages)
    # a short session's prompt fits under the bound: it is returned without counting
    s = session()
    before = tokens.count.cache_info().misses
    execution(s)
    assert tokens.count.cache_info().misses == before


@pytest.mark.parametrize("result_tokens", [100, 333, 2000])
def test_a_step_in_the_history_is_built_once_and_rebuilt_when_it_changes(result_tokens: int) -> None:
    """The history is kept per step between cycles: what it gives is what building it anew gives,
    a cut one as well as a whole one, and a step changed since (its result, feedback, notes) is
    built again."""
    steps = [
        step(no=1, result="short"),
        step(no=2, result=HUGE[:5000], notes=["n" * 300]),
        step(no=3, result=None, feedback="do better " * 50, status=StepStatus.SKIPPED),
        step(no=4, shared="a file was shared: a.png", result="seen"),
    ]
    for s in steps:
        first = prompts.step_messages(s, result_tokens)
        assert first == prompts._step_messages(s, result_tokens)
        assert prompts.step_messages(s, result_tokens) == first
    changed = steps[0]
    changed.result = "x" * 3000
    assert prompts.step_messages(changed, result_tokens) == prompts._step_messages(changed, result_tokens)
    changed.notes.append("a note")
    assert "a note" in prompts.step_messages(changed, result_tokens)[-1]["content"]
    changed.feedback = "no"
    assert prompts.step_messages(changed, result_tokens)[-1]["content"].endswith("Human feedback: no")


def test_a_long_sessions_prompt_is_the_same_built_again() -> None:
    s = session(
        steps=[step(no=i, result=f"result {i} " + "r" * (i * 37 % 900)) for i in range(1, 120)],
    )
    first = execution(s)
    again = execution(s)
    assert first == again
    prompts._SEEN.clear()
    assert execution(s) == first
    assert tokens.count_messages(first) <= LIMIT - REPLY
