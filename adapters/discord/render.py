"""The core's views as Discord messages: an embed each, buttons on steps, long output attached;
or, with Components V2 (DISCORD_COMPONENTS_V2), the same parts laid out in a container
(`layout.py`) with the buttons inside it. The session's root message (the header) is always an
embed with a line of content, which a mention's reply needs.

Every message fits Discord's limits (see `limits.py`): text is shortened in the message and, for a
command's result or a long proposed command, attached in full as a file.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

import discord

from adapters.discord.components import decision_buttons, decision_view
from adapters.discord.layout import build_layout
from adapters.discord.limits import ATTACHMENT_BYTES, ATTACHMENTS, THREAD_NAME, Code, EmbedSpec
from bot.presenter import views as v
from bot.presenter import wording
from bot.presenter.render import Renderer
from bot.presenter.wording import Line
from bot.text import clip

RESULT_INLINE: Final = 1500  # characters of a result shown in the message; longer ones are attached
ARGS_INLINE: Final = 900  # characters of a proposed command shown; longer ones are attached

BLURPLE: Final = 0x5865F2
GREEN: Final = 0x57F287
YELLOW: Final = 0xFEE75C
ORANGE: Final = 0xE67E22
RED: Final = 0xED4245
GREY: Final = 0x95A5A6

STEP_COLORS: Final = {
    "pending": BLURPLE,
    "auto": GREEN,
    "decided": GREEN,
    "running": YELLOW,
    "done": GREEN,
    "invalid": ORANGE,
    "interrupted": ORANGE,
}
OUTCOME_COLORS: Final = {"finished": GREEN, "stopped": GREY, "failed": RED, "paused": ORANGE}
MOODS: Final[dict[str, str]] = {
    "waiting": "⏸️",
    "auto": "⏩",
    "continuous": "🔁",
    "approved": "✅",
    "feedback": "💬",
    "stopped": "⏹️",
    "running": "⏳",
    "done": "✔️",
    "invalid": "⚠️",
    "interrupted": "⚠️",
}
LEVEL: Final = {"info": ("ℹ️", GREY), "warning": ("⚠️", ORANGE), "error": ("⛔", RED)}


def attachment_name(name: str) -> str:
    """A file name Discord keeps as it is, so `attachment://NAME` finds the file."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", name) or "file"


@dataclass
class Attachment:
    filename: str
    content: bytes

    def file(self) -> discord.File:
        return discord.File(io.BytesIO(self.content), filename=self.filename)


@dataclass
class Rendered:
    """A message: content and embeds with a view of buttons, or (`v2`) a layout view alone."""

    content: str | None = None
    embeds: list[discord.Embed] = field(default_factory=list)
    view: discord.ui.View | discord.ui.LayoutView | None = None
    attachments: list[Attachment] = field(default_factory=list)

    @property
    def v2(self) -> bool:
        """A Components V2 message: no content, no embeds, everything in `view`."""
        return isinstance(self.view, discord.ui.LayoutView)

    def files(self) -> list[discord.File]:
        return [a.file() for a in self.attachments]


def when(moment: datetime | None) -> str:
    return discord.utils.format_dt(moment, "f") if moment is not None else ""


def thread_name(view: v.SessionHeaderView) -> str:
    goal = view.goals[0] if view.goals else view.title or ""
    return clip(" ".join(f"{view.ai_name} {view.session_id}: {goal}".split()), THREAD_NAME)


def line_text(line: Line) -> str:
    """A line of the shared wording in Discord markdown: its mark, who, the words, the command,
    when."""
    parts = [MOODS[line.mood]]
    if line.who:
        parts.append(discord.utils.escape_markdown(line.who))
    parts.append(line.text)
    if line.code:
        parts.append(f"`{clip(line.code, 100)}`…")
    return " ".join(parts) + (f" · {when(line.at)}" if line.at else "")


def _args_text(args: dict[str, Any]) -> str:
    return json.dumps(args, indent=2, ensure_ascii=False, default=str) if args else "{}"


@dataclass
class DiscordRenderer(Renderer[Rendered]):
    """The core's views as embeds, or as Components V2 layouts (`components_v2`) but for the
    header; `result_inline`: characters of a result shown in its message (longer ones are
    attached)."""

    result_inline: int = RESULT_INLINE
    components_v2: bool = False

    def _shape(
        self,
        spec: EmbedSpec,
        buttons: tuple[str, int, list[v.DecisionOption]] | None = None,
        attachments: list[Attachment] | None = None,
        shown: list[str] | None = None,
    ) -> Rendered:
        """The message of `spec` with the decision `buttons` (session, step, options) and
        `attachments`: an embed, or a layout. `shown`: the attached files a layout shows (by
        default those sent with it; an edit names those sent with the message before), the image
        of `spec.image` apart."""
        attachments = attachments or []
        if not self.components_v2:
            view = decision_view(*buttons) if buttons is not None else None
            return Rendered(embeds=[spec.build()], view=view, attachments=attachments)
        names = [a.filename for a in attachments] if shown is None else shown
        image = (spec.image or "").removeprefix("attachment://")
        items = decision_buttons(*buttons) if buttons is not None else []
        layout = build_layout(spec, items, [n for n in names if n != image])
        return Rendered(view=layout, attachments=attachments)

    def header(self, view: v.SessionHeaderView) -> Rendered:
        spec = EmbedSpec(
            title=view.title or f"{view.ai_name} · session {view.session_id}",
            description="\n".join(f"{i}. {g}" for i, g in enumerate(view.goals, 1)),
            color=BLURPLE,
            footer=f"Session {view.session_id} · commands: status {view.session_id}, stop {view.session_id}",
        )
        spec.add("Role", view.ai_role)
        spec.add("Owner", view.owner, inline=True)
        spec.add("Mode", view.mode, inline=True)
        content = clip(f"Session `{view.session_id}` for {discord.utils.escape_markdown(view.owner)}.", 2000)
        return Rendered(content=content, embeds=[spec.build()])

    def tasks(self, view: v.TaskListView) -> Rendered:
        lines = [f"~~{t}~~ ✓" for t in view.done[-10:]]
        lines += [f"**{i}. {t}**" if i == 1 else f"{i}. {t}" for i, t in enumerate(view.tasks, 1)]
        spec = EmbedSpec(
            title="Task list",
            description="\n".join(lines) or "No tasks left.",
            color=GREY,
            footer=f"Session {view.session_id} · {len(view.tasks)} to do, {len(view.done)} done",
        )
        return self._shape(spec)

    def step(self, view: v.StepView, attach_args: bool = False) -> Rendered:
        """A cycle: thoughts as fields, the proposed command, its status, and its buttons."""
        t = view.thoughts
        lines = [line_text(x) for x in (wording.decided(view), wording.progress(view)) if x is not None]
        if view.status == "pending" and view.budget_left_usd is not None:
            lines[-1] += f" Budget left: ${view.budget_left_usd:.4f}."
        spec = EmbedSpec(
            title=f"Step {view.step_no} · {view.command}",
            description="\n".join(lines) or view.status,
            color=STEP_COLORS.get(view.status, GREY),
            footer=f"Session {view.session_id} · step {view.step_no}",
        )
        spec.add("Thoughts", t.text)
        spec.add("Reasoning", t.reasoning)
        spec.add("Plan", t.plan)
        spec.add("Criticism", t.criticism)
        if t.speak and t.speak.strip() != t.text.strip():
            spec.add("Says", t.speak)
        args = _args_text(view.args)
        spec.add("Command", Code(args, "json", prefix=f"`{clip(view.command, 100)}`\n"))
        if view.note:
            spec.add("Note", view.note)
        attachments: list[Attachment] = []
        name = attachment_name(f"step-{view.step_no}-{view.command}.json")
        long_args = len(args) > ARGS_INLINE
        if attach_args and long_args:
            attachments.append(Attachment(name, args.encode("utf-8")))
            spec.add("Full command", f"{len(args):,} characters, attached as {name}.")
        # an edit keeps the file posted with the step: a layout goes on showing it
        return self._shape(
            spec,
            (view.session_id, view.step_no, view.options),
            attachments,
            shown=[name] if long_args else [],
        )

    def result(self, view: v.ResultView) -> Rendered:
        """The result as the agent read it, shortened past RESULT_INLINE; the files that came
        with it (a command's full output) attached, else a long result attached whole."""
        output = view.output or "(no output)"
        inline = self.result_inline
        spec = EmbedSpec(
            title=f"{'Result' if view.ok else 'Error'} of step {view.step_no} · {view.command}",
            description=Code(output),
            color=GREEN if view.ok else RED,
            footer=f"Session {view.session_id} · step {view.step_no}",
        )
        attachments: list[Attachment] = []
        if len(output) > inline:
            spec.description = Code(output[:inline] + "\n…")
        for f in view.files[:ATTACHMENTS]:
            if f.image and len(f.content) > ATTACHMENT_BYTES:  # a cut image is no image: say so
                spec.add("Not attached", f"{f.name}: {len(f.content):,} bytes, more than Discord takes")
                continue
            content = f.content[:ATTACHMENT_BYTES]
            cut = (
                f" (its first {ATTACHMENT_BYTES // 1024 // 1024} MB)" if len(f.content) > len(content) else ""
            )
            filename = attachment_name(f.filename)
            attachments.append(Attachment(filename, content))
            if f.image and spec.image is None:  # shown in the step's embed, not as a bare file
                spec.image = f"attachment://{filename}"
            spec.add("Attached", f"{f.name}{cut}: {f.comment}" if f.comment else f"{f.name}{cut}")
        if len(output) > inline and not view.files:
            name = f"result-{view.session_id}-step{view.step_no}.txt"
            attachments.append(Attachment(name, output.encode("utf-8")))
            spec.add("Full output", f"{len(output):,} characters, attached as {name}.")
        return self._shape(spec, attachments=attachments)

    def summary(self, view: v.SummaryView) -> Rendered:
        spec = EmbedSpec(
            title=f"{wording.OUTCOMES[view.outcome]} ({view.session_id})",
            description=view.reason or "",
            color=OUTCOME_COLORS.get(view.outcome, GREY),
            footer=f"Session {view.session_id}",
        )
        spec.add("Cycles", str(view.cycles), inline=True)
        spec.add("Spent", f"${view.cost_usd:.4f}", inline=True)
        spec.add("Tokens", f"{view.prompt_tokens:,} in, {view.completion_tokens:,} out", inline=True)
        if hint := wording.resume_hint(view, "@AutoGPT"):
            spec.add("Go on", hint)
        return self._shape(spec)

    def notice(self, view: v.NoticeView) -> Rendered:
        mark, color = LEVEL.get(view.level, ("", GREY))
        spec = EmbedSpec(
            description=f"{mark} {view.text}".strip(),
            color=color,
            footer=f"Session {view.session_id}" if view.session_id else "",
        )
        return self._shape(spec)

    def usage(self, view: v.UsageView) -> Rendered:
        """A usage report as an embed: what it covers, the totals, by user, channel and model,
        and the spend of each day as a text chart."""
        who = f"<@{view.user}>" if view.user is not None and not view.mine else None
        where = f"<#{view.channel}>" if view.channel is not None else None
        totals = " · ".join(f"**{k}** {val}" for k, val in wording.usage_totals(view))
        spec = EmbedSpec(
            description=f"**{wording.usage_heading(view, who, where)}**\n{totals}",
            color=BLURPLE,
            footer=wording.unpriced_note(view) or "",
        )
        for name, title in wording.USAGE_SECTIONS:
            rows: list[v.UsageRow] = getattr(view, name)
            lines = [
                f"{_usage_label(name, row)} · {wording.usage_line(row, name == 'by_model')}" for row in rows
            ]
            spec.add(title, "\n".join(lines))
        if chart := wording.usage_chart(view):
            spec.add(wording.CHART_TITLE, Code("\n".join(chart)))
        return Rendered(embeds=[spec.build()])

    def profile(self, view: v.ProfileView) -> Rendered:
        """A channel's profile as an embed: each key, its value or the setting that applies."""
        lines = [
            f"**{f.label}** (`{f.key}`): "
            + (discord.utils.escape_markdown(f.value) if f.set else f"*{f.value}*")
            for f in view.fields
        ]
        notes = [
            wording.profile_changed(view),
            None if any(f.set for f in view.fields) else wording.PROFILE_NOTHING,
        ]
        spec = EmbedSpec(
            title=wording.profile_heading(view),
            description=(f"{view.note}\n\n" if view.note else "") + f"<#{view.channel}>\n" + "\n".join(lines),
            color=BLURPLE,
            footer=" ".join(n for n in [*notes, wording.profile_footer(view)] if n),
        )
        return Rendered(embeds=[spec.build()])


def _usage_label(section: str, row: v.UsageRow) -> str:
    """A row's user (a mention: allowed mentions are off, so nobody is pinged), channel (a link)
    or model (code); the "others" row in words."""
    if not row.key:
        return row.label
    if section == "by_user":
        return f"<@{row.key}>"
    if section == "by_channel":
        return f"<#{row.key}>"
    return f"`{clip(row.label, 100)}`"
