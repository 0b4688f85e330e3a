"""Block Kit for the core's views, always within Slack's limits.

Blocks are built with `slack_sdk.models` (which refuses many over-long values) and every text is
shortened or split before it gets there: 3,000 characters a section, 150 a header, 75 a button,
50 blocks a message (100 in the Home tab and modals), and the blocks of one message kept under
`BLOCKS_BUDGET` characters in all (Slack refuses messages near 13,000). Long texts share a
budget: the longest are shortened first, so short fields are always shown whole.

Text from users and the agent is escaped (`&`, `<`, `>`) as Slack's mrkdwn requires.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    InputBlock,
    MarkdownTextObject,
    PlainTextInputElement,
    PlainTextObject,
    PlanBlock,
    RichTextBlock,
    RichTextElementParts,
    RichTextSectionElement,
    SectionBlock,
    TaskCardBlock,
)
from slack_sdk.models.views import View as SlackView

from adapters.slack import ids
from bot import text as texts
from bot.grammar import USAGE
from bot.presenter import views as v
from bot.presenter import wording
from bot.presenter.ids import button_id
from bot.presenter.render import Renderer
from bot.presenter.wording import Line

SECTION_MAX: Final = 3000
HEADER_MAX: Final = 150
BUTTON_MAX: Final = 75
CONTEXT_MAX: Final = 2000
MAX_BLOCKS: Final = 50
VIEW_MAX_BLOCKS: Final = 100
BLOCKS_BUDGET: Final = 11_000  # compact JSON characters of one message's blocks
TEXT_BUDGET: Final = 7_000  # characters of long text (thoughts, goals, tasks) in one message
FALLBACK_MAX: Final = 3_000  # the notification `text` of a message (Slack's limit: 40,000)
RESULT_INLINE: Final = 2_500  # characters of a result shown in the message; longer ones are attached
MAX_HOME_SESSIONS: Final = 20
FEEDBACK_MAX: Final = 3000
TASK_TITLE_MAX: Final = 150  # a task card's title; the rest of a longer task goes in its details
PLAN_TASKS_MAX: Final = 40  # task cards in the plan (MAX_TASKS to do and the last 10 done fit)
STATUS_MAX: Final = 300  # the live status line under the task list

ELLIPSIS: Final = "…"
_MENTION = re.compile(r"^<@[UW][A-Z0-9]+>$")
_MENTIONS = re.compile(r"(<@[UW][A-Z0-9]+>)")


@dataclass(frozen=True)
class SlackMessage:
    """What one chat.postMessage / chat.update sends: the notification text and the blocks."""

    text: str
    blocks: list[dict[str, Any]]


# ---------------------------------------------------------------------------- text


def escape(text: str, mentions: bool = False) -> str:
    """Text for mrkdwn. With `mentions`, user mentions (`<@U123>`, how this adapter names users
    to the core) are kept, so texts the core writes about a user show that user's name."""
    if mentions:
        parts = _MENTIONS.split(text)
        return "".join(p if i % 2 else escape(p) for i, p in enumerate(parts))
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def unescape(text: str) -> str:
    """A message's text as the user typed it (Slack escapes &, < and >)."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _safe_cut(escaped: str, n: int) -> int:
    """A cut position at or before n that splits neither an `&amp;`-style entity nor a mention."""
    if n >= len(escaped):
        return len(escaped)
    amp = escaped.rfind("&", max(0, n - 5), n)
    if amp != -1 and ";" not in escaped[amp:n]:
        n = amp
    angle = escaped.rfind("<", max(0, n - 160), n)
    if angle != -1 and ">" not in escaped[angle:n]:
        n = angle
    return n


def clip(raw: str, limit: int, mentions: bool = False) -> str:
    """`raw` escaped, shortened to at most `limit` characters (ending with … when shortened).
    Triple backticks become triple quotes, so no text opens a code block it does not close."""
    raw = raw.replace("```", "'''")
    if len(raw) > limit * 2 + 16:  # a huge text: no need to escape what is cut anyway
        return clip_escaped(escape(raw[: limit * 2 + 16], mentions) + ELLIPSIS, limit)
    return clip_escaped(escape(raw, mentions), limit)


def clip_escaped(escaped: str, limit: int) -> str:
    return texts.clip(escaped, limit, ELLIPSIS, cut=_safe_cut)


def split_escaped(escaped: str, size: int) -> list[str]:
    """Pieces of at most `size` characters, cut at a line break, else a space, else anywhere."""
    return texts.split(escaped, size, cut=_safe_cut)


def plain(text: str, limit: int) -> str:
    """A plain_text value (no escaping), at most `limit` characters, on one line."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + ELLIPSIS


def code(raw: str, limit: int) -> str:
    """A code block of at most `limit` characters."""
    raw = raw.replace("```", "'''")
    return "```" + (clip(raw, limit - 6) or " ") + "```"


def inline(raw: str, limit: int) -> str:
    """Inline code: backticks inside would end it early, so they become quotes."""
    return "`" + (clip(" ".join(raw.replace("`", "'").split()), limit - 2) or " ") + "`"


def who(label: str | None) -> str:
    """A user label: a `<@U123>` mention as is (Slack shows the name), anything else escaped."""
    if not label:
        return "someone"
    return label if _MENTION.match(label) else escape(label)


def mention(user_id: str) -> str:
    return f"<@{user_id}>"


def when(moment: datetime | None) -> str:
    """A time every reader sees in their own time zone."""
    if moment is None:
        return ""
    fallback = moment.strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(moment.timestamp())}^{{date_short_pretty}} at {{time}}|{fallback}>"


def allot(lengths: Sequence[int], budget: int) -> list[int]:
    """Share `budget` characters among texts: short ones whole, the longest cut to one cap."""
    if sum(lengths) <= budget:
        return list(lengths)
    remaining, left = budget, len(lengths)
    cap = 0
    for length in sorted(lengths):
        share = remaining // left
        if length > share:
            cap = share
            break
        remaining -= length
        left -= 1
    return [min(length, cap) for length in lengths]


def bullets(plan: str) -> str:
    lines = [ln.strip().lstrip("-*•").strip() for ln in plan.splitlines()]
    return "\n".join(f"• {ln}" for ln in lines if ln)


# ---------------------------------------------------------------------------- blocks


def _dict(block: Block) -> dict[str, Any]:
    return block.to_dict()  # validates the limits slack_sdk knows


def header(text: str) -> dict[str, Any]:
    return _dict(HeaderBlock(text=PlainTextObject(text=plain(text, HEADER_MAX) or " ", emoji=True)))


def section(mrkdwn: str, accessory: ButtonElement | None = None) -> dict[str, Any]:
    text = clip_escaped(mrkdwn, SECTION_MAX) if mrkdwn.strip() else ELLIPSIS  # Slack refuses empty text
    return _dict(SectionBlock(text=MarkdownTextObject(text=text), accessory=accessory))


def context(mrkdwn: str) -> dict[str, Any]:
    text = clip_escaped(mrkdwn, CONTEXT_MAX) if mrkdwn.strip() else ELLIPSIS
    return _dict(ContextBlock(elements=[MarkdownTextObject(text=text)]))


def labelled(label: str, raw: str, allowance: int) -> list[dict[str, Any]]:
    """`*Label*` and a text, shortened to `allowance`, split over as many sections as it needs."""
    title = f"*{label}*\n"
    pieces = split_escaped(clip(raw.strip(), max(allowance, 40)), SECTION_MAX - len(title))
    return [section((title if i == 0 else "") + piece) for i, piece in enumerate(pieces)]


def fit(
    blocks: list[dict[str, Any]], max_blocks: int = MAX_BLOCKS, budget: int = BLOCKS_BUDGET
) -> list[dict[str, Any]]:
    """The last guard: at most `max_blocks` blocks and `budget` characters, whatever came in.
    Drops sections from the middle (keeping the head and the last three: status, buttons,
    footer), then shortens the longest section texts."""
    if len(blocks) > max_blocks:
        tail = blocks[-3:]
        blocks = [*blocks[: max_blocks - 4], context(f"{ELLIPSIS} (shortened)"), *tail]
    while _size(blocks) > budget:
        texts = [
            (len(b["text"]["text"]), i)
            for i, b in enumerate(blocks)
            if b.get("type") == "section" and isinstance(b.get("text"), dict)
        ]
        if not texts:
            break
        longest, i = max(texts)
        if longest < 200:
            break
        excess = _size(blocks) - budget
        blocks[i] = dict(
            blocks[i], text=dict(blocks[i]["text"], text=_recut(blocks[i]["text"]["text"], excess))
        )
    return blocks


def _recut(text: str, excess: int) -> str:
    target = max(100, len(text) - excess - 50)
    if text.startswith("```") and text.endswith("```") and len(text) > 6:
        return "```" + clip_escaped(text[3:-3], target - 6) + "```"
    cut = clip_escaped(text, target)
    if cut.count("```") % 2:  # the cut took the end of a code block that starts further in: close it
        cut = clip_escaped(text, target - 3) + "```"
    return cut


def _size(blocks: list[dict[str, Any]]) -> int:
    return len(json.dumps(blocks, ensure_ascii=False, separators=(",", ":")))


def message(text: str, blocks: list[dict[str, Any]]) -> SlackMessage:
    return SlackMessage(text=clip(text, FALLBACK_MAX, mentions=True), blocks=fit(blocks))


# ---------------------------------------------------------------------------- the views

MOODS: Final[dict[str, str]] = {
    "waiting": ":hourglass_flowing_sand:",
    "auto": ":fast_forward:",
    "continuous": ":repeat:",
    "approved": ":white_check_mark:",
    "feedback": ":speech_balloon:",
    "stopped": ":octagonal_sign:",
    "running": ":gear:",
    "done": ":heavy_check_mark:",
    "invalid": ":no_entry:",
    "interrupted": ":warning:",
}
OUTCOME_MARKS: Final[dict[str, str]] = {
    "finished": ":checkered_flag:",
    "stopped": ":octagonal_sign:",
    "failed": ":x:",
    "paused": ":double_vertical_bar:",
}
NOTICE_MARKS: Final[dict[str, str]] = {"info": ":information_source:", "warning": ":warning:", "error": ":x:"}
STATE_MARKS: Final[dict[str, str]] = {
    "planning": ":memo:",
    "running": ":gear:",
    "awaiting_approval": ":hourglass_flowing_sand:",
    "paused": ":double_vertical_bar:",
    "finished": ":checkered_flag:",
    "stopped": ":octagonal_sign:",
    "failed": ":x:",
}


def line_text(line: Line) -> str:
    """A line of the shared wording in mrkdwn: its mark, who, the words, the command, when."""
    parts = [MOODS[line.mood]]
    if line.who:
        parts.append(who(line.who))
    parts.append(escape(line.text))
    if line.code:
        parts.append(inline(line.code, 200) + f" {ELLIPSIS}")
    text = " ".join(parts)
    return text + (f" · {when(line.at)}" if line.at else "")


@dataclass
class SlackRenderer(Renderer[SlackMessage]):
    """The core's views as Block Kit; `result_inline`: characters of a result shown in its
    message (longer ones are attached)."""

    result_inline: int = RESULT_INLINE
    plan_blocks: bool = True  # the task list as a plan block (off: as text, as before Slack had them)

    def header(self, view: v.SessionHeaderView) -> SlackMessage:
        first = view.goals[0] if view.goals else ""
        allowances = allot([len(escape(g)) for g in view.goals], TEXT_BUDGET - 600)
        goals = "\n".join(
            f"{i}. {clip(g, a)}" for i, (g, a) in enumerate(zip(view.goals, allowances, strict=True), 1)
        )
        blocks = [
            header(view.title or f"{view.ai_name}: {first}"),
            section(f"*{clip(view.ai_name, 80)}* is {clip(view.ai_role, 400)}."),
            *[
                section(("*Goals*\n" if i == 0 else "") + p)
                for i, p in enumerate(split_escaped(goals, SECTION_MAX - 10))
            ],
            context(f"Started by {who(view.owner)} · session `{view.session_id}` · {escape(view.mode)}"),
            context(
                "Each step is posted in this thread. Decide with its buttons, or reply in the thread to "
                "give the agent feedback on the step that waits."
            ),
        ]
        return message(f"{view.ai_name} session {view.session_id} by {view.owner}: {first}", blocks)

    def tasks(self, view: v.TaskListView, status: str | None = None) -> SlackMessage:
        """The task list as a plan (a `plan` block of task cards: done, the current one in
        progress, the rest pending), or as text with `plan_blocks` off. `status`: the live line
        of what the agent is doing (`status_line`), shown at the bottom while it lasts."""
        blocks = plan_blocks(view) if self.plan_blocks else task_text_blocks(view)
        blocks.append(
            context(f"Session `{view.session_id}` · {len(view.tasks)} to do, {len(view.done)} done")
        )
        if status:
            blocks.append(context(status))
        return message(f"Task list of session {view.session_id}: {len(view.tasks)} to do", blocks)

    def step(self, view: v.StepView) -> SlackMessage:
        t = view.thoughts
        fields = [
            ("Thoughts", t.text),
            ("Reasoning", t.reasoning),
            ("Plan", bullets(t.plan)),
            ("Criticism", t.criticism),
            ("Speak", t.speak),
        ]
        args = json.dumps(view.args, ensure_ascii=False)
        note = view.note or ""
        raws = [raw for _, raw in fields] + [args, note]
        allowances = allot([len(escape(x)) for x in raws], TEXT_BUDGET)
        blocks = [header(f"Step {view.step_no}: {view.command}")]
        for (label, raw), allowance in zip(fields, allowances, strict=False):
            if raw.strip():
                blocks += labelled(label, raw, allowance)
        command = f"*Command* {inline(view.command, 200)}\n"
        blocks.append(section(command + code(args, min(allowances[-2] + 6, SECTION_MAX - len(command)))))
        if note.strip():
            blocks += labelled(":warning: Note", note, allowances[-1])
        for line in (wording.decided(view), wording.progress(view)):
            if line is not None:
                blocks.append(context(line_text(line)))
        if view.options:  # pending: the decisions; a continuous run's step: Pause and Stop
            blocks.append(buttons(view))
        footer = f"Session `{view.session_id}` · step {view.step_no}"
        if view.budget_left_usd is not None:
            footer += f" · budget left ${view.budget_left_usd:.2f}"
        blocks.append(context(footer))
        return message(f"Step {view.step_no}: {view.command} ({wording.status_word(view)})", blocks)

    def result(self, view: v.ResultView, attach_error: str | None = None) -> SlackMessage:
        """A command's result; past `result_inline` characters it is shortened and attached in
        full, or, with `attach_error`, says why the full result could not be attached."""
        shown = self.result_inline
        icon = ":page_facing_up:" if view.ok else ":x:"
        blocks = [
            section(f"{icon} *Result of step {view.step_no}* {inline(view.command, 200)}"),
            section(code(view.output, shown + 6)),
        ]
        if view.files or self.needs_attachment(view):
            what = "the full output" if view.files else "the full result"
            said = (
                f"{what} is attached below as a file"
                if attach_error is None
                else f"{what} could not be attached ({escape(attach_error)})"
            )
            if self.needs_attachment(view):
                text = f"Shortened: the result has {len(view.output):,} characters; {said}."
            else:
                text = said[0].upper() + said[1:] + "."
            if view.files:
                text += " " + ", ".join(inline(f.name, 200) for f in view.files)
            blocks.append(context(text))
        return message(f"Result of step {view.step_no} ({view.command})", blocks)

    def needs_attachment(self, view: v.ResultView) -> bool:
        return len(escape(view.output)) > self.result_inline

    def summary(self, view: v.SummaryView) -> SlackMessage:
        title = f"{OUTCOME_MARKS[view.outcome]} {wording.OUTCOMES[view.outcome]}"
        blocks = [header(f"{title} ({view.session_id})")]
        if view.reason:
            blocks.append(section(clip(view.reason, SECTION_MAX, mentions=True)))
        fields = [
            MarkdownTextObject(text=f"*Cycles*\n{view.cycles}"),
            MarkdownTextObject(text=f"*Spent*\n${view.cost_usd:.4f}"),
            MarkdownTextObject(
                text=f"*Tokens*\n{view.prompt_tokens:,} prompt + {view.completion_tokens:,} completion"
            ),
        ]
        blocks.append(_dict(SectionBlock(fields=fields)))
        if hint := wording.resume_hint(view, ids.COMMAND):
            blocks.append(context(hint))
        return message(
            f"Session {view.session_id} {view.outcome} after {wording.spent(view)}: {view.reason}", blocks
        )

    def notice(self, view: v.NoticeView) -> SlackMessage:
        body = f"{NOTICE_MARKS[view.level]} " + clip(view.text, TEXT_BUDGET, mentions=True)
        return message(view.text, [section(p) for p in split_escaped(body, SECTION_MAX)])

    def sessions(self, view: v.SessionListView) -> dict[str, Any]:  # type: ignore[override]
        """The App Home tab: the user's sessions, each with a Stop button while it is open."""
        blocks: list[dict[str, Any]] = [
            header("AutoGPT"),
            section(
                f"Start a session in any channel with `{ids.COMMAND} goal &lt;your goal&gt;`; "
                f"`{ids.COMMAND} help` lists every command. Each session lives in its own thread."
            ),
        ]
        if view.notice:
            blocks.append(context(clip(view.notice, CONTEXT_MAX)))
        if view.usage is not None:
            blocks += home_usage_blocks(view.usage)
        blocks.append(header("Your sessions"))
        if not view.sessions:
            blocks.append(section("_You have no sessions yet._"))
        for s in view.sessions[:MAX_HOME_SESSIONS]:
            state = f"{STATE_MARKS[s.state]} {wording.STATES[s.state]}"
            link = (
                f" · <https://slack.com/archives/{s.channel}/p{s.thread.replace('.', '')}|thread>"
                if s.thread
                else ""
            )
            text = (
                f"*`{s.session_id}`* · {state} · {s.cycles} cycles · ${s.cost_usd:.4f}{link}\n"
                f"{clip(s.goal, 300)}"
            )
            accessory = None
            if s.open:
                accessory = ButtonElement(
                    text=PlainTextObject(text="Stop"),
                    action_id=ids.HOME_STOP,
                    value=button_id("stop", s.session_id, 0),
                    style="danger",
                    confirm=stop_confirmation(s.session_id),
                )
            blocks.append(section(text, accessory))
        if len(view.sessions) > MAX_HOME_SESSIONS:
            blocks.append(context(f"and {len(view.sessions) - MAX_HOME_SESSIONS} more: `{ids.COMMAND} list`"))
        blocks += schedules_blocks(view)
        blocks += home_profile_blocks(view)
        return {"type": "home", "blocks": fit(blocks, VIEW_MAX_BLOCKS, BLOCKS_BUDGET * 2)}

    def usage(self, view: v.UsageView) -> SlackMessage:
        """A usage report: what it covers, the totals, by user, channel and model, and a chart."""
        who = mention(view.user) if view.user is not None and not view.mine else None
        where = f"<#{view.channel}>" if view.channel is not None else None
        blocks = [
            section(f"*{wording.usage_heading(view, who, where)}*"),
            _dict(
                SectionBlock(
                    fields=[MarkdownTextObject(text=f"*{k}*\n{val}") for k, val in wording.usage_totals(view)]
                )
            ),
        ]
        for name, title in wording.USAGE_SECTIONS:
            rows: list[v.UsageRow] = getattr(view, name)
            if rows:
                lines = [
                    f"• {_usage_label(name, row)} · {escape(wording.usage_line(row, name == 'by_model'))}"
                    for row in rows
                ]
                blocks += [section(p) for p in split_escaped(f"*{title}*\n" + "\n".join(lines), SECTION_MAX)]
        if chart := wording.usage_chart(view):
            blocks.append(section(f"*{wording.CHART_TITLE}*\n" + code("\n".join(chart), SECTION_MAX - 40)))
        if note := wording.unpriced_note(view):
            blocks.append(context(escape(note)))
        return message(wording.usage_text(view), blocks)

    def profile(self, view: v.ProfileView) -> SlackMessage:
        """A channel's profile: each key, its value or the setting that applies."""
        blocks = [section(escape(view.note))] if view.note else []
        blocks.append(section(f"*{wording.profile_heading(view, f'<#{view.channel}>')}*"))
        lines = [
            f"• *{escape(f.label)}* (`{f.key}`): {escape(f.value) if f.set else '_' + escape(f.value) + '_'}"
            for f in view.fields
        ]
        blocks += [section(p) for p in split_escaped("\n".join(lines), SECTION_MAX)]
        notes = [
            wording.profile_changed(view),
            None if any(f.set for f in view.fields) else wording.PROFILE_NOTHING,
        ]
        notes.append(wording.profile_footer(view))
        blocks.append(context(escape(" ".join(n for n in notes if n), mentions=True)))
        return message(wording.profile_text(view), blocks)


def _usage_label(section_name: str, row: v.UsageRow) -> str:
    """A row's user (a mention), channel (a link) or model (code); the "others" row in words."""
    if not row.key:
        return escape(row.label)
    if section_name == "by_user":
        return mention(row.key)
    if section_name == "by_channel":
        return f"<#{row.key}>"
    return inline(row.label, 100)


def home_usage_blocks(view: v.UsageView) -> list[dict[str, Any]]:
    """The user's last 30 days in the Home tab: the totals, and the spend of each day as a text
    column chart in a code block. (An image block needs an image at a public URL, or a file
    Slack shares with every viewer; the bot has neither in Socket Mode, so the chart is text.)"""
    out = [_dict(DividerBlock()), header(wording.HOME_USAGE), section(escape(wording.usage_line(view.total)))]
    if chart := wording.usage_chart(view):
        out.append(section(code("\n".join(chart), SECTION_MAX - 40)))
    return out


def home_profile_blocks(view: v.SessionListView) -> list[dict[str, Any]]:
    """The channel profiles of the team, what each sets."""
    out = [_dict(DividerBlock()), header(wording.HOME_PROFILES)]
    if not view.profiles:
        out.append(context(escape(wording.home_no_profiles(ids.COMMAND))))
    for p in view.profiles[:MAX_HOME_SESSIONS]:
        lines = [f"{escape(f.label)}: {clip(f.value, 300)}" for f in p.fields if f.set]
        out.append(section(f"*<#{p.channel}>*\n" + "\n".join(lines)))
    if len(view.profiles) > MAX_HOME_SESSIONS:
        out.append(context(f"and {len(view.profiles) - MAX_HOME_SESSIONS} more"))
    return out


RENDERER: Final = SlackRenderer()


def _task_lines(view: v.TaskListView) -> tuple[list[str], list[str], list[int]]:
    """The done tasks shown (the last 10), the tasks to do, and each one's share of the budget."""
    done = [" ".join(t.split()) for t in view.done[-10:]]
    todo = [" ".join(t.split()) for t in view.tasks]
    return done, todo, allot([len(escape(t)) for t in [*done, *todo]], TEXT_BUDGET - 500)


def task_text_blocks(view: v.TaskListView) -> list[dict[str, Any]]:
    """The task list as mrkdwn sections: done ones struck through, then the numbered ones to do."""
    done, todo, allowances = _task_lines(view)
    lines: list[str] = []
    if len(view.done) > len(done):
        lines.append(f"_{len(view.done) - len(done)} earlier tasks done_")
    lines += [f":heavy_check_mark: ~{clip(t, max(20, a))}~" for t, a in zip(done, allowances, strict=False)]
    lines += [
        f"{i}. {clip(t, a)}" for i, (t, a) in enumerate(zip(todo, allowances[len(done) :], strict=True), 1)
    ]
    if not todo:
        lines.append("_No tasks left._")
    pieces = split_escaped("\n".join(lines), SECTION_MAX - 20)
    return [section(("*Task list*\n" if i == 0 else "") + p) for i, p in enumerate(pieces)]


def plan_blocks(view: v.TaskListView) -> list[dict[str, Any]]:
    """The task list as a `plan` block: a task card each (plain text: no escaping), a long task's
    title shortened and the whole of it in the card's details."""
    done, todo, allowances = _task_lines(view)
    cards: list[TaskCardBlock] = []
    entries = [(t, "complete") for t in done] + [
        (t, "in_progress" if i == 0 else "pending") for i, t in enumerate(todo)
    ]
    for n, ((task, state), allowance) in enumerate(zip(entries, allowances, strict=True)):
        title = plain(task, TASK_TITLE_MAX) or ELLIPSIS
        details = None
        if title != task:
            rest = plain(task, max(allowance, TASK_TITLE_MAX + 1))
            details = RichTextBlock(
                elements=[RichTextSectionElement(elements=[RichTextElementParts.Text(text=rest)])]
            )
        cards.append(TaskCardBlock(task_id=f"task_{n}", title=title, status=state, details=details))
    cards = cards[-PLAN_TASKS_MAX:]
    title = "Task list"
    if len(view.done) > len(done):
        title += f" ({len(view.done) - len(done)} earlier tasks done)"
    if not todo:
        title += ": no tasks left"
    plan = _dict(PlanBlock(title=title, tasks=cards))
    return [_fit_plan(plan, BLOCKS_BUDGET - 1500)]


def _fit_plan(plan: dict[str, Any], budget: int) -> dict[str, Any]:
    """Shorten the biggest task cards (their details first, then their titles) until the plan's
    JSON fits `budget` characters (text that JSON escapes, such as backslashes, counts double)."""
    tasks: list[dict[str, Any]] = plan.get("tasks") or []
    while tasks and _size([plan]) > budget:
        sizes = [(_size([t]), i) for i, t in enumerate(tasks)]
        _, i = max(sizes)
        task = tasks[i]
        if task.get("details"):
            text = task["details"]["elements"][0]["elements"][0]["text"]
            if len(text) > 2 * TASK_TITLE_MAX:
                task["details"]["elements"][0]["elements"][0]["text"] = plain(text, len(text) // 2)
            else:
                del task["details"]
        elif len(task["title"]) > 20:
            task["title"] = plain(task["title"], len(task["title"]) // 2)
        else:
            break
    return plan


def status_line(view: v.ProgressView) -> str | None:
    """What the agent is doing, as the task list's live status line (mrkdwn); None: nothing."""
    if not view.doing:
        return None
    since = f" (since {when_exactly(view.since)})" if view.since is not None else ""
    return f":hourglass_flowing_sand: {clip(view.text, STATUS_MAX - 120)}{since}"


def when_exactly(moment: datetime) -> str:
    """A time of day to the second, in every reader's own time zone."""
    fallback = moment.strftime("%H:%M:%S UTC")
    return f"<!date^{int(moment.timestamp())}^{{time_secs}}|{fallback}>"


def render(view: v.View) -> SlackMessage:
    return RENDERER.render(view)


def stop_confirmation(session_id: str) -> ConfirmObject:
    return ConfirmObject(
        title="Stop this session?",
        text=f"Session {session_id} stops for good; the agent will not go on.",
        confirm="Stop it",
        deny="Keep going",
        style="danger",
    )


def buttons(view: v.StepView) -> dict[str, Any]:
    elements = [button(view, option) for option in view.options if option.action in ids.ACTION_IDS]
    return _dict(ActionsBlock(block_id=f"autogpt_step_{view.session_id}_{view.step_no}", elements=elements))


def button(view: v.StepView, option: v.DecisionOption) -> ButtonElement:
    count = option.count if option.action == "approve_n" else 1
    style = {"approve": "primary", "stop": "danger"}.get(option.action)
    confirm = stop_confirmation(view.session_id) if option.action == "stop" else None
    return ButtonElement(
        text=PlainTextObject(text=plain(option.label, BUTTON_MAX), emoji=True),
        action_id=ids.ACTION_IDS[option.action],
        value=button_id(option.action, view.session_id, view.step_no, count),
        style=style,
        confirm=confirm,
    )


# ---------------------------------------------------------------------------- replies to one user


def reply(text: str, *, verbatim: str | None = None, monospace: bool = False) -> SlackMessage:
    """An ephemeral answer: `text`, then `verbatim` (or the grammar's usage text found in `text`)
    in a code block; with `monospace`, all but the first line of `text` in a code block too."""
    if verbatim is None and USAGE in text:
        text, verbatim = text.replace(USAGE, "").strip(), USAGE
    blocks: list[dict[str, Any]] = []
    if monospace and "\n" in text.strip():
        first, rest = text.strip().split("\n", 1)
        blocks += [section(clip(first, SECTION_MAX, mentions=True)), section(code(rest, SECTION_MAX))]
    elif text.strip():
        blocks += [section(p) for p in split_escaped(clip(text, TEXT_BUDGET, mentions=True), SECTION_MAX)]
    if verbatim:
        blocks.append(section(code(verbatim, SECTION_MAX)))
    fallback = "\n".join(x for x in (text, verbatim) if x)
    return message(fallback or ELLIPSIS, blocks or [section(ELLIPSIS)])


# ---------------------------------------------------------------------------- modal and Home tab


def feedback_modal(session_id: str, step_no: int, command: str) -> dict[str, Any]:
    view = SlackView(
        type="modal",
        callback_id=ids.FEEDBACK_VIEW,
        private_metadata=button_id("feedback", session_id, step_no),
        title=PlainTextObject(text="Feedback"),
        submit=PlainTextObject(text="Send"),
        close=PlainTextObject(text="Cancel"),
        blocks=[
            SectionBlock(
                text=MarkdownTextObject(
                    text=f"Step {step_no} of session `{session_id}` proposes {inline(command, 200)}. "
                    "Tell the agent what to do instead: the command is skipped and your words go "
                    "into its next prompt."
                )
            ),
            InputBlock(
                block_id=ids.FEEDBACK_BLOCK,
                label=PlainTextObject(text="Your feedback"),
                element=PlainTextInputElement(
                    action_id=ids.FEEDBACK_INPUT, multiline=True, max_length=FEEDBACK_MAX, focus_on_load=True
                ),
            ),
        ],
    )
    return view.to_dict()


def schedules_blocks(view: v.SessionListView) -> list[dict[str, Any]]:
    """The Home tab's scheduled goals, with their next run."""
    out = [_dict(DividerBlock()), header("Your schedules")]
    if not view.schedules:
        out.append(
            context(f'No schedules. `{ids.COMMAND} schedule "every day at 09:00" &lt;goal&gt;` makes one.')
        )
    for sch in view.schedules[:MAX_HOME_SESSIONS]:
        next_run = sch.next_run
        when = (
            "paused"
            if sch.paused
            else (
                f"next run <!date^{int(next_run.timestamp())}^{{date_short_pretty}} "
                f"{{time}}|{next_run:%Y-%m-%d %H:%M} UTC>"
                if next_run
                else "no next run"
            )
        )
        out.append(
            section(
                f"*`{sch.schedule_id}`* · {escape(sch.when)} ({escape(sch.tz)}) · {when} · {sch.runs} runs\n"
                f"{clip(sch.goal, 300)}"
            )
        )
    return out
