"""Prompts of the three agents (execution, task creation, prioritisation), fitted to the model's
token limit: older history is summarised in one line per step and then dropped, and a long
command result is cut with a note, so no tool output can overflow the context."""

from __future__ import annotations

import json
import weakref
from typing import Any

from bot.llm import tokens
from bot.models import GoalChange, Session, SessionState, Step, StepStatus
from bot.tools.base import Tool

REPLY_FORMAT = {
    "thoughts": {
        "text": "thought",
        "reasoning": "reasoning",
        "plan": "- short bulleted\n- list that conveys\n- long-term plan",
        "criticism": "constructive self-criticism",
        "speak": "thoughts summary to say to user",
    },
    "command": {"name": "command name", "args": {"arg name": "value"}},
}

MAX_TASKS_SHOWN = 20
MAX_SUMMARY_LINES = 30


def system_prompt(session: Session, tools: list[Tool], token_limit: int) -> str:
    """AutoGPT's prompt. The parts a user writes (name, role, goals) each get a share of the
    token limit and are cut with a note beyond it, so the rules and the reply format always fit."""
    share = max(50, token_limit // 4 // max(1, len(session.goals)))
    goals = "\n".join(f"{i}. {_fit(g, share, 'goal')}" for i, g in enumerate(session.goals, 1))
    commands = "\n".join(f"{i}. {t.prompt_line()}" for i, t in enumerate(tools, 1))
    name = _fit(session.ai_name, 50, "name")
    role = _fit(session.ai_role, max(50, token_limit // 16), "role")
    return (
        f"You are {name}, {role}\n"
        "Your decisions must always be made independently without seeking user assistance. "
        "Play to your strengths as an LLM and pursue simple strategies with no legal complications.\n\n"
        f"GOALS:\n\n{goals}\n\n"
        "Constraints:\n"
        f"1. ~{token_limit} token limit for short term memory. Your short term memory is short, "
        "so immediately save important information to files.\n"
        "2. If you are unsure how you previously did something or want to recall past events, "
        "thinking about similar events will help you remember.\n"
        "3. No user assistance\n"
        '4. Exclusively use the commands listed in double quotes e.g. "command name"\n\n'
        f"Commands:\n{commands}\n\n"
        "Resources:\n1. File output in your own workspace.\n2. Long-term memory management.\n\n"
        "Performance Evaluation:\n"
        "1. Continuously review and analyze your actions to ensure you are performing to the best "
        "of your abilities.\n"
        "2. Constructively self-criticize your big-picture behavior constantly.\n"
        "3. Reflect on past decisions and strategies to refine your approach.\n"
        "4. Every command has a cost, so be smart and efficient. Aim to complete tasks in the least "
        "number of steps.\n\n"
        "You should only respond in JSON format as described below\nResponse Format:\n"
        f"{json.dumps(REPLY_FORMAT, indent=4)}\n"
        "Ensure the response can be parsed by Python json.loads"
    )


def task_block(session: Session, token_limit: int = 8000) -> str:
    share = max(30, token_limit // 8 // MAX_TASKS_SHOWN)  # a task list takes at most a quarter
    lines = ["Your task list, most important first:"]
    if session.tasks:
        lines += [f"{i}. {_fit(t, share, 'task')}" for i, t in enumerate(session.tasks[:MAX_TASKS_SHOWN], 1)]
        if len(session.tasks) > MAX_TASKS_SHOWN:
            lines.append(f"(and {len(session.tasks) - MAX_TASKS_SHOWN} more)")
        lines.append(f"Your current task: {_fit(session.tasks[0], share, 'task')}")
    else:
        lines.append("(empty: if every goal is met, use the finish command)")
    if session.done_tasks:
        shown = [_fit(t, share // 2, "task") for t in session.done_tasks[-MAX_TASKS_SHOWN:]]
        lines.append("Completed tasks: " + "; ".join(shown))
    return "\n".join(lines)


def budget_block(session: Session, budget_left: float, budget: float, cycles_left: int) -> str:
    text = f"Your remaining API budget is ${budget_left:.3f}; you have {cycles_left} cycles left."
    if (budget > 0 and budget_left < 0.1 * budget) or cycles_left <= 2:
        text += " Budget nearly exceeded. Finish up."
    return text


def _step_messages(step: Step, result_tokens: int | None) -> list[dict[str, Any]]:
    """A step as the agent sees it in its history; `result_tokens` None: nothing cut."""
    limit = result_tokens if result_tokens is not None else 0
    reply = {"thoughts": step.thoughts.model_dump(), "command": step.command.model_dump()}
    said = json.dumps(reply, ensure_ascii=False)
    if result_tokens is not None:
        said = _fit(said, limit, "reply")
    msgs: list[dict[str, Any]] = [{"role": "assistant", "content": said}]
    if step.shared:  # files the user shared just before this step
        shared = step.shared if result_tokens is None else tokens.truncate(step.shared, limit, note="")
        msgs.insert(0, {"role": "user", "content": shared})
    if step.steered:  # what the user changed of the goals just before this step
        steered = step.steered if result_tokens is None else tokens.truncate(step.steered, limit, note="")
        msgs.insert(0, {"role": "user", "content": steered})
    follow = [n if result_tokens is None else _fit(n, limit // 4, "note") for n in step.notes]
    if step.feedback is not None:
        feedback = step.feedback if result_tokens is None else _fit(step.feedback, limit, "feedback")
        follow.append(f"Human feedback: {feedback}")
    elif step.result is not None:
        result = step.result
        if result_tokens is not None:
            result = tokens.truncate(step.result, limit, note=" of this result")
        follow.append(f"Command {step.command.name} returned: {result}")
    if follow:
        msgs.append({"role": "user", "content": "\n".join(follow)})
    return msgs


class _Seen:
    """A step's history messages as last built, with their token counts: a past step is the
    same cycle after cycle, so a long session's prompt is not built and counted anew each time."""

    __slots__ = ("cut", "key", "longest", "ref", "whole")

    def __init__(self, step: Step, key: tuple[Any, ...]) -> None:
        self.ref = weakref.ref(step, _forget(id(step)))
        self.key = key
        self.whole = _Counted(_step_messages(step, None))
        said = self.whole.msgs[bool(step.shared) + bool(step.steered)]["content"]
        self.longest = max(
            len(said),
            len(step.shared or ""),
            len(step.steered or ""),
            len(step.feedback or ""),
            len(step.result or ""),
            4 * max((len(n) for n in step.notes), default=0),
        )
        self.cut: dict[int, _Counted] = {}


class _Counted:
    __slots__ = ("bound", "exact", "msgs")

    def __init__(self, msgs: list[dict[str, Any]]) -> None:
        self.msgs = msgs
        self.bound = tokens.upper_bound(msgs) - 3
        self.exact: int | None = None

    def count(self) -> int:
        if self.exact is None:
            self.exact = tokens.count_messages(self.msgs)
        return self.exact


def _forget(key: int) -> Any:
    return lambda _ref: _SEEN.pop(key, None)


_SEEN: dict[int, _Seen] = {}  # id(step) -> what was built for it, while the step lives
_CUTS_KEPT = 4


def _history_item(step: Step, result_tokens: int) -> _Counted:
    key = (
        step.status,
        step.result,
        step.feedback,
        tuple(step.notes),
        step.shared,
        step.steered,
        step.args_file,
    )
    seen = _SEEN.get(id(step))
    if seen is None or seen.ref() is not step or seen.key != key:
        seen = _SEEN[id(step)] = _Seen(step, key)
    if seen.longest <= result_tokens // 4 * 4:  # nothing in it would be cut
        return seen.whole
    item = seen.cut.get(result_tokens)
    if item is None:
        item = _Counted(_step_messages(step, result_tokens))
        if len(seen.cut) >= _CUTS_KEPT:
            del seen.cut[next(iter(seen.cut))]
        seen.cut[result_tokens] = item
    return item


def step_messages(step: Step, result_tokens: int) -> list[dict[str, Any]]:
    """A step as the agent sees it in its history, each part cut to fit `result_tokens`."""
    return list(_history_item(step, result_tokens).msgs)


def goal_changes_text(changes: list[GoalChange]) -> str:
    """What the agent is told of changes a human made to its goals since its last step."""
    lines = ["Your user changed your goals since your last step:"]
    for c in changes:
        match c.action:
            case "add":
                lines.append(f'- added goal {c.index}: "{c.after}"')
            case "remove":
                lines.append(f'- removed goal {c.index}, which was: "{c.before}"')
            case "edit":
                lines.append(f'- changed goal {c.index} from "{c.before}" to "{c.after}"')
    lines.append(
        "The GOALS above are your goals now. Adjust your plan to them: drop work that served only a "
        "removed goal, and take up what a new or changed goal asks."
    )
    return "\n".join(lines)


def step_summary(step: Step) -> str:
    args = json.dumps(step.command.args, ensure_ascii=False)
    if len(args) > 80:
        args = args[:77] + "..."
    if step.status == StepStatus.SKIPPED:
        outcome = f"skipped, human feedback: {(step.feedback or '')[:80]}"
    elif step.result is not None:
        outcome = step.result[:80].replace("\n", " ")
    else:
        outcome = step.status.value
    return f"step {step.no}: {step.command.name} {args} -> {outcome}"


def execution_messages(
    session: Session,
    tools: list[Tool],
    token_limit: int,
    reply_tokens: int,
    memories: list[str],
    budget_line: str,
    shared: dict[str, Any] | None = None,
    steered: str | None = None,
) -> list[dict[str, Any]]:
    """The execution agent's prompt, guaranteed to fit `token_limit - reply_tokens`. `shared`:
    the message about files the user shared since the last cycle (bot/inbox.py), if any;
    `steered`: what the user changed of the goals since then (`goal_changes_text`)."""
    head = [
        {"role": "system", "content": system_prompt(session, tools, token_limit)},
        {"role": "system", "content": task_block(session, token_limit)},
    ]
    tail: list[dict[str, Any]] = []
    if memories:
        share = max(50, token_limit // 6 // len(memories))  # memories take at most a sixth
        mem = "\n".join(f"- {_fit(m, share, 'memory')}" for m in memories)
        tail.append({"role": "system", "content": f"This reminds you of these events from your past:\n{mem}"})
    keep = [{"role": "user", "content": steered}] if steered else []
    keep += [shared] if shared is not None else []
    keep.append({"role": "system", "content": budget_line})
    keep.append(
        {
            "role": "user",
            "content": "Determine which next command to use, and respond using the format specified above:",
        }
    )
    tail += keep
    budget = token_limit - reply_tokens
    # everything, each result cut to a third of the budget: when that surely fits, no counting
    # (built newest first, and given up as soon as it cannot fit: a long session costs no more)
    left = budget - tokens.upper_bound(head + tail)
    whole: list[dict[str, Any]] = []
    past = session.history
    for step in reversed(past):
        if left < 0:
            break
        item = _history_item(step, max(100, budget // 3))
        left -= item.bound
        whole[:0] = item.msgs
    if left >= 0:
        return head + whole + tail
    room = token_limit - reply_tokens - tokens.count_messages(head + tail)
    if room < 200:  # huge memories or task list: shrink the memory block first
        tail = keep
        room = token_limit - reply_tokens - tokens.count_messages(head + tail)
    # A single result may take at most a third of what is left, so several steps stay visible.
    result_tokens = max(100, room // 3)
    history: list[dict[str, Any]] = []
    kept = 0
    for step in reversed(past):
        item = _history_item(step, result_tokens)
        need = item.count()
        if need > room - 120:  # keep room for the summary line of older steps
            break
        history[:0] = item.msgs
        room -= need
        kept += 1
    older = past[: len(past) - kept]
    if older:
        lines = [step_summary(s) for s in older[-MAX_SUMMARY_LINES:]]
        if len(older) > MAX_SUMMARY_LINES:
            lines.insert(0, f"({len(older) - MAX_SUMMARY_LINES} earlier steps not shown)")
        summary = "Summary of your earlier steps:\n" + "\n".join(lines)
        summary = tokens.truncate(summary, max(50, room - 10), note=" of the summary")
        history.insert(0, {"role": "system", "content": summary})
    return fit_messages(head + history + tail, token_limit - reply_tokens)


def _fit(text: str, limit: int, what: str = "") -> str:
    """`text` cut to `limit` tokens, with a note saying what was cut."""
    return tokens.truncate(text, max(10, limit), note=f" of this {what}" if what else "")


def fit_messages(messages: list[dict[str, Any]], budget: int) -> list[dict[str, Any]]:
    """The last guard: while the prompt is over `budget` tokens, the largest message is cut
    (with a note) by what is too much, so a prompt fits the model whatever its parts."""
    if tokens.upper_bound(messages) <= budget:
        return messages
    out = list(messages)
    for _ in range(len(out) * 2 + 2):
        excess = tokens.count_messages(out) - budget
        if excess <= 0:
            return out
        sizes = [tokens.count(m["content"]) if isinstance(m.get("content"), str) else 0 for m in out]
        biggest = max(range(len(out)), key=lambda i: sizes[i])
        if sizes[biggest] <= 20:
            break
        keep = max(10, sizes[biggest] - excess - 20)
        out[biggest] = {
            **out[biggest],
            "content": tokens.truncate(
                out[biggest]["content"], keep, note=" (cut to fit the model's context)"
            ),
        }
    return out


def creation_messages(session: Session, token_limit: int, reply_tokens: int) -> list[dict[str, Any]]:
    """Task creation. With no step yet: the first task list from the goals. Otherwise new tasks
    from the last result that do not overlap the incomplete ones."""
    objective = "; ".join(session.goals)
    budget = token_limit - reply_tokens - 300
    past = session.history
    if not past or (session.forked_from is not None and session.state == SessionState.PLANNING):
        taken = ""
        if past:  # a session forked at an earlier step: plan again, from what was done so far
            lines = "\n".join(step_summary(x) for x in past[-MAX_SUMMARY_LINES:])
            taken = f"These steps have been taken already:\n{_fit(lines, budget // 3, 'list')}\n"
        prompt = (
            f"You are a task creation AI. Your objective: {_fit(objective, budget // 2)}\n{taken}"
            "Create the list of tasks that an autonomous agent with file tools should carry out, in "
            "order, to reach the objective. Keep it short: at most 7 concrete tasks.\n"
            'Reply with JSON: {"tasks": ["first task", "second task"]}'
        )
    else:
        step = past[-1]
        result = step.result if step.result is not None else f"human feedback: {step.feedback}"
        current = session.tasks[0] if session.tasks else step.command.name
        incomplete = "; ".join(session.tasks[1:MAX_TASKS_SHOWN]) or "(none)"
        prompt = (
            "You are a task creation AI that uses the result of an execution agent to create new "
            f"tasks with the following objective: {_fit(objective, budget // 4)}\n"
            f"The last completed task has the result: {_fit(str(result), budget // 2, 'result')}\n"
            f"This result was based on this task description: {_fit(current, budget // 8, 'task')}\n"
            f"These are incomplete tasks: {_fit(incomplete, budget // 4)}\n"
            "Based on the result, create new tasks to be completed by the AI system that do not "
            "overlap with incomplete tasks. Reply with an empty list if none are needed.\n"
            'Reply with JSON: {"tasks": ["new task"]}'
        )
    return fit_messages([{"role": "system", "content": prompt}], token_limit - reply_tokens)


def prioritisation_messages(
    session: Session, tasks: list[str], token_limit: int, reply_tokens: int
) -> list[dict[str, Any]]:
    budget = token_limit - reply_tokens - 300
    listing = "\n".join(f"{i}. {t}" for i, t in enumerate(tasks, 1))
    prompt = (
        "You are a task prioritization AI tasked with cleaning the formatting of and reprioritizing "
        f"the following tasks:\n{_fit(listing, budget // 2)}\n"
        f"Consider the ultimate objective of your team: {_fit('; '.join(session.goals), budget // 3)}\n"
        "Do not remove any tasks. Reply with JSON, the tasks ordered by priority: "
        '{"tasks": ["most important task", "next task"]}'
    )
    return fit_messages([{"role": "system", "content": prompt}], token_limit - reply_tokens)
