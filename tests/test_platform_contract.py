"""One contract suite for every chat adapter, as tests/test_store_contract.py is for the stores:
the same scenarios, run through each platform's fake by a `Driver` that acts as that platform's
users do (a command, a click on a button actually shown, the feedback form) and reads back what
the chat shows. Drivers: the core's test platform, the toy chat (tests/fakes/toy.py), Slack (the
Bolt app over HTTP against FakeSlackAPI) and Discord (discord.py against FakeDiscord).

Each scenario is asserted on the stored session and on what the chat shows. The store is SQLite
(the restart scenario runs over Redis too); platform-specific shapes (Block Kit, embeds, modals,
threads, limits) stay in each platform's own tests."""

from __future__ import annotations

import ast
import asyncio
import contextlib
import io
import json
import re
import wave
from collections.abc import AsyncIterator, Callable, Iterator
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any, ClassVar, Final, Literal, Protocol

import pytest
from discord.gateway import DiscordWebSocket
from discord.http import Route
from pydantic import SecretStr

from adapters.slack import ids as slack_ids
from bot import adapter as adapter_module
from bot.core import Core
from bot.decisions import Decision
from bot.models import Actor, Place, Session, SessionState, StepStatus
from bot.presenter import wording
from bot.presenter.ids import button_id, parse
from bot.presenter.views import ResultView, StepView
from bot.settings import Settings
from tests.fakes import toy
from tests.fakes.chat import TestPlatform
from tests.fakes.discord_api import ADMIN, OWNER, STRANGER, USERS, DiscordBot, FakeDiscord, Interaction
from tests.fakes.github_api import FakeGitHub
from tests.fakes.llm_server import ScriptedLLM, agent_reply
from tests.fakes.slack_api import SlackBot, running_bot, start_goal
from tests.fakes.twitter_api import FakeTwitter

Who = Literal["owner", "stranger", "admin"]
DECISIONS: Final = ["approve", "approve_n", "feedback", "retry", "stop", "allow_tool"]  # a waiting step's
ON_FINISH: Final = DECISIONS[:5]  # finish cannot be always allowed
GOAL: Final = "goal write a poem to poem.txt"
MODAL: Final = 9  # Discord's callback type of an interaction answered with a modal


class Driver(Protocol):
    """A chat platform as its users see it: what they do, what they are shown."""

    name: str
    dedupes_double_clicks: bool  # the platform drops an identical second request: nothing is said

    @property
    def core(self) -> Core: ...

    def label(self, who: Who) -> str:
        """How the platform names the user (`decided_by`, "<label> approved")."""

    async def start_goal(self, who: Who, text: str) -> str:
        """Send `text` as a command; the id of the session it started (settled)."""

    async def send(self, who: Who, text: str) -> str:
        """Send `text` as a command (settled); what the user was answered."""

    def buttons(self, sid: str, step_no: int) -> list[str]:
        """The actions the step's message offers now."""

    async def press(
        self, sid: str, step_no: int, action: str, who: Who, *, as_posted: bool = False, settle: bool = True
    ) -> None:
        """Click the button of `action` on the step's message as shown now (`as_posted`: as first
        posted, by a client that has not refreshed); then settle unless told not to."""

    async def feedback(self, sid: str, step_no: int, who: Who, text: str) -> None:
        """Give `text` as feedback on the step the way the platform asks for it (its form)."""

    def told(self, who: Who) -> list[str]:
        """What the user was told privately (answers, refusals), oldest first."""

    def step_text(self, sid: str, step_no: int) -> str: ...

    def edits(self, sid: str, step_no: int | None = None) -> int:
        """How many times the step's message was edited (None: all the session's messages)."""

    def shown(self, sid: str) -> list[str]:
        """The text of every message in the session's thread, as shown now."""

    def forms(self) -> int:
        """Feedback forms opened so far."""

    def attachments(self, sid: str) -> dict[str, bytes]:
        """The files attached in the session's thread, by name."""

    async def settle(self) -> None:
        """Until what was sent is handled and the sessions it kicked wait or ended."""

    async def restart(self) -> None:
        """A new process (core and adapter) on the same store and the same chat."""


# ---------------------------------------------------------------------------- the drivers


async def settled(core: Core) -> None:
    await core.runner.idle(15)


class TestPlatformDriver:
    """The core's test platform: views recorded as they are; its text is the toy renderer's."""

    __test__ = False
    name = "test"
    dedupes_double_clicks = False
    USERS: ClassVar[dict[str, str]] = {"owner": "U1", "stranger": "U2", "admin": "UADMIN"}

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.chat = TestPlatform()
        self.text = toy.ToyRenderer()
        self._told: list[tuple[str, str]] = []
        self._core: Core | None = None

    @classmethod
    @contextlib.asynccontextmanager
    async def running(cls, settings: Settings) -> AsyncIterator[TestPlatformDriver]:
        driver = cls(settings)
        await driver.start()
        try:
            yield driver
        finally:
            await driver.core.close()

    async def start(self) -> None:
        self._core = await Core.start(self.settings)
        self._core.add_platform(self.chat)
        await self._core.resume_all()

    @property
    def core(self) -> Core:
        assert self._core is not None
        return self._core

    def actor(self, who: Who) -> Actor:
        return Actor(platform="test", user_id=self.USERS[who], is_admin=who == "admin")

    def label(self, who: Who) -> str:
        return self.USERS[who]

    async def start_goal(self, who: Who, text: str) -> str:
        place = Place(platform="test", channel="C1")
        outcome = await self.core.service.handle_text(self.actor(who), place, text)
        self._told.append((who, outcome.message))
        assert outcome.session_id is not None, outcome.message
        await self.settle()
        return outcome.session_id

    async def send(self, who: Who, text: str) -> str:
        outcome = await self.core.service.handle_text(
            self.actor(who), Place(platform="test", channel="C1"), text
        )
        self._told.append((who, outcome.message))
        await self.settle()
        return outcome.message

    def _step(self, sid: str, step_no: int, as_posted: bool = False) -> StepView:
        message = self.chat.step_message(sid, step_no)
        view = message.view if as_posted else message.current
        assert isinstance(view, StepView)
        return view

    def buttons(self, sid: str, step_no: int) -> list[str]:
        return [o.action for o in self._step(sid, step_no).options]

    async def _decide(
        self, sid: str, step_no: int, action: str, who: Who, as_posted: bool, text: str | None
    ) -> None:
        option = next((o for o in self._step(sid, step_no, as_posted).options if o.action == action), None)
        assert option is not None, f"step {step_no} offers no {action} button"
        decision = Decision(action=option.action, step_no=step_no, count=option.count, text=text)
        outcome = await self.core.service.decide(sid, self.actor(who), decision)
        if not outcome.ok:
            self._told.append((who, outcome.message))

    async def press(
        self, sid: str, step_no: int, action: str, who: Who, *, as_posted: bool = False, settle: bool = True
    ) -> None:
        await self._decide(sid, step_no, action, who, as_posted, None)
        if settle:
            await self.settle()

    async def feedback(self, sid: str, step_no: int, who: Who, text: str) -> None:
        await self._decide(sid, step_no, "feedback", who, False, text)
        await self.settle()

    def told(self, who: Who) -> list[str]:
        return [text for w, text in self._told if w == who]

    def step_text(self, sid: str, step_no: int) -> str:
        return self.text.render(self._step(sid, step_no))

    def edits(self, sid: str, step_no: int | None = None) -> int:
        if step_no is not None:
            return len(self.chat.step_message(sid, step_no).edits)
        return sum(len(m.edits) for m in self.chat.messages if getattr(m.view, "session_id", None) == sid)

    def shown(self, sid: str) -> list[str]:
        views = [m.current for m in self.chat.messages]
        return [
            self.text.render(v) for v in views if getattr(v, "session_id", None) == sid and v.kind != "header"
        ]

    def forms(self) -> int:
        return 0

    def attachments(self, sid: str) -> dict[str, bytes]:
        views = [m.view for m in self.chat.messages if getattr(m.view, "session_id", None) == sid]
        return {f.filename: f.content for v in views if isinstance(v, ResultView) for f in v.files}

    async def settle(self) -> None:
        await settled(self.core)

    async def restart(self) -> None:
        await self.core.close()
        await self.start()  # the same chat: what it showed stays


class ToyDriver:
    """The toy chat: plain-text messages whose buttons are links, clicked as a toy client does."""

    name = "toy"
    dedupes_double_clicks = False
    USERS: ClassVar[dict[str, str]] = {"owner": "ann", "stranger": "bob", "admin": "root"}

    def __init__(self, settings: Settings) -> None:
        self.settings = settings.model_copy(update={"admin_user_ids": ["root"]})
        self.wire = toy.Wire()
        self._core: Core | None = None
        self._adapter: toy.ToyAdapter | None = None

    @classmethod
    @contextlib.asynccontextmanager
    async def running(cls, settings: Settings) -> AsyncIterator[ToyDriver]:
        driver = cls(settings)
        await driver.start()
        try:
            yield driver
        finally:
            await driver.core.close()

    async def start(self) -> None:
        self._core = await Core.start(self.settings)
        self._adapter = toy.ToyAdapter(self._core, None, self.wire)
        await self._adapter.start()
        await self._core.resume_all()

    @property
    def core(self) -> Core:
        assert self._core is not None
        return self._core

    @property
    def adapter(self) -> toy.ToyAdapter:
        assert self._adapter is not None
        return self._adapter

    def label(self, who: Who) -> str:
        return self.USERS[who].title()

    async def start_goal(self, who: Who, text: str) -> str:
        await self.adapter.on_text(self.USERS[who], "C1", text)
        await self.settle()
        match = re.search(r"Started session (\w+)", self.told(who)[-1])
        assert match, self.told(who)
        return match.group(1)

    async def send(self, who: Who, text: str) -> str:
        told = len(self.told(who))
        await self.adapter.on_text(self.USERS[who], "C1", text)
        await self.settle()
        return "\n".join(self.told(who)[told:])

    def _thread(self, sid: str, root: bool = False) -> list[list[str]]:
        """The versions of each message in the session's thread (`root`: its root message too)."""
        messages = self.wire.messages
        roots = [mid for mid, (_, versions) in messages.items() if f" session {sid} for " in versions[0]]
        assert len(roots) == 1, f"expected one root message of {sid}, found {len(roots)}"
        return [
            v for mid, (thread, v) in messages.items() if thread == roots[0] and (root or mid != roots[0])
        ]

    def _step(self, sid: str, step_no: int) -> list[str]:
        found = [v for v in self._thread(sid) if v[0].startswith(f"Step {step_no}: ")]
        assert len(found) == 1, f"expected one message for step {step_no}, found {len(found)}"
        return found[0]

    def buttons(self, sid: str, step_no: int) -> list[str]:
        return [b.action for b in toy.buttons(self._step(sid, step_no)[-1])]

    async def _click(
        self, sid: str, step_no: int, action: str, who: Who, as_posted: bool, text: str | None
    ) -> None:
        shown = self._step(sid, step_no)[0 if as_posted else -1]
        link = next((b.encode() for b in toy.buttons(shown) if b.action == action), None)
        assert link is not None, f"step {step_no} offers no {action} button: {shown}"
        await self.adapter.on_click(self.USERS[who], link, text)

    async def press(
        self, sid: str, step_no: int, action: str, who: Who, *, as_posted: bool = False, settle: bool = True
    ) -> None:
        await self._click(sid, step_no, action, who, as_posted, None)
        if settle:
            await self.settle()

    async def feedback(self, sid: str, step_no: int, who: Who, text: str) -> None:
        await self._click(sid, step_no, "feedback", who, False, text)
        await self.settle()

    def told(self, who: Who) -> list[str]:
        return [text for user, text in self.wire.told if user == self.USERS[who]]

    def step_text(self, sid: str, step_no: int) -> str:
        return self._step(sid, step_no)[-1]

    def edits(self, sid: str, step_no: int | None = None) -> int:
        if step_no is not None:
            return len(self._step(sid, step_no)) - 1
        return sum(len(versions) - 1 for versions in self._thread(sid, root=True))

    def shown(self, sid: str) -> list[str]:
        return [versions[-1] for versions in self._thread(sid)]

    def forms(self) -> int:
        return 0

    def attachments(self, sid: str) -> dict[str, bytes]:
        roots = {
            mid for mid, (_, versions) in self.wire.messages.items() if f" session {sid} for " in versions[0]
        }
        return {name: content for thread, name, content in self.wire.files if thread in roots}

    async def settle(self) -> None:
        await settled(self.core)

    async def restart(self) -> None:
        await self.core.close()
        await self.start()  # a new adapter on the same wire


class SlackDriver:
    """Slack over HTTP: signed slash commands and block_actions built from the posted buttons, the
    feedback modal submitted; what users are told is what they got ephemerally."""

    name = "slack"
    dedupes_double_clicks = False
    USERS: ClassVar[dict[str, str]] = {"owner": "U1", "stranger": "U2", "admin": "UADMIN"}

    def __init__(self, bot: SlackBot) -> None:
        self.bot = bot
        self.api = bot.api

    @classmethod
    @contextlib.asynccontextmanager
    async def running(cls, settings: Settings) -> AsyncIterator[SlackDriver]:
        async with running_bot(settings) as bot:  # and no payload broke Slack's limits
            yield cls(bot)

    @property
    def core(self) -> Core:
        return self.bot.c

    def label(self, who: Who) -> str:
        return f"<@{self.USERS[who]}>"

    async def start_goal(self, who: Who, text: str) -> str:
        return await start_goal(self.bot, text, self.USERS[who])

    async def send(self, who: Who, text: str) -> str:
        told = len(self.api.ephemerals_to(self.USERS[who]))
        sent = await self.bot.send.command(text, user=self.USERS[who])
        assert sent.status == 200, sent.body
        await self.bot.settle()
        return "\n".join(self.api.ephemerals_to(self.USERS[who])[told:])

    def buttons(self, sid: str, step_no: int) -> list[str]:
        """The actions offered (each button's action id must be the one Slack routes its action by)."""
        found = [
            (_action(el.get("value")), el["action_id"]) for _, el in self.bot.step(sid, step_no).buttons()
        ]
        assert all(slack_ids.ACTION_IDS[action] == action_id for action, action_id in found), found
        return [action for action, _ in found]

    async def press(
        self, sid: str, step_no: int, action: str, who: Who, *, as_posted: bool = False, settle: bool = True
    ) -> None:
        message = self.bot.step(sid, step_no)
        message = message.as_first_posted() if as_posted else message
        action_id = next(
            (el["action_id"] for _, el in message.buttons() if _action(el.get("value")) == action), None
        )
        assert action_id is not None, f"step {step_no} offers no {action} button"
        told = len(self.api.ephemerals)
        sent = await self.bot.send.click(message, action_id, self.USERS[who])
        assert sent.status == 200, sent.body
        if settle:
            await self.settle()
            # anything said about a click is said where the user clicked: the session's thread
            assert all(e.get("thread_ts") == message.thread_ts for e in self.api.ephemerals[told:])

    async def feedback(self, sid: str, step_no: int, who: Who, text: str) -> None:
        forms = self.forms()
        await self.press(sid, step_no, "feedback", who)
        assert self.forms() == forms + 1, self.told(who)
        modal = self.api.opened_views[-1]
        assert modal["private_metadata"] == button_id("feedback", sid, step_no)
        typed = {slack_ids.FEEDBACK_BLOCK: {slack_ids.FEEDBACK_INPUT: text}}
        sent = await self.bot.send.submit(modal, typed, self.USERS[who])
        assert sent.status == 200 and sent.body == "", sent.body
        await self.settle()

    def told(self, who: Who) -> list[str]:
        return self.api.ephemerals_to(self.USERS[who])

    def step_text(self, sid: str, step_no: int) -> str:
        return self.bot.step(sid, step_no).all_text()

    def edits(self, sid: str, step_no: int | None = None) -> int:
        if step_no is not None:
            return self.bot.step(sid, step_no).edits
        return self.bot.root(sid).edits + sum(m.edits for m in self.bot.thread(sid))

    def shown(self, sid: str) -> list[str]:
        return [m.all_text() for m in self.bot.thread(sid)]

    def forms(self) -> int:
        return len(self.api.of("views.open"))

    def attachments(self, sid: str) -> dict[str, bytes]:
        thread = self.bot.root(sid).ts
        return {
            u.filename: u.content
            for u in self.api.uploads.values()
            if u.completed is not None and u.completed.get("thread_ts") == thread and u.content is not None
        }

    async def settle(self) -> None:
        await self.bot.settle()

    async def restart(self) -> None:
        url = self.bot.send.url
        await self.bot.restart()  # a new Bolt server and a new core on the same store
        assert self.bot.send.url != url


class DiscordDriver:
    """Discord: mentions through the gateway, clicks and modal submissions as interactions built
    from what the bot sent; what users are told is what only they saw."""

    name = "discord"
    dedupes_double_clicks = False
    USERS: ClassVar[dict[str, int]] = {"owner": OWNER, "stranger": STRANGER, "admin": ADMIN}

    def __init__(self, bot: DiscordBot) -> None:
        self.bot = bot
        self.api = bot.api

    @classmethod
    @contextlib.asynccontextmanager
    async def running(cls, settings: Settings) -> AsyncIterator[DiscordDriver]:
        saved = Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY  # the adapter points them at the fake
        try:
            async with FakeDiscord() as api:
                bot = DiscordBot(settings, api)
                await bot.start()
                try:
                    yield cls(bot)
                finally:
                    await bot.stop()
                # no limit broken, every interaction answered, and nothing a click said was public
                assert api.problems() == []
                assert all(i.texts() == i.private_texts() for i in api.interactions.values())
        finally:
            Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = saved

    @property
    def core(self) -> Core:
        return self.bot.c

    def label(self, who: Who) -> str:
        return USERS[self.USERS[who]].title()

    async def start_goal(self, who: Who, text: str) -> str:
        said = await self.api.say(self.USERS[who], text)
        await self.settle()
        replies = [
            m
            for m in self.api.messages.values()
            if (m.current.get("message_reference") or {}).get("message_id") == str(said.id)
        ]
        match = re.search(r"Session `(\w+)`", replies[0].content) if len(replies) == 1 else None
        assert match, [m.content for m in replies]
        return match.group(1)

    async def send(self, who: Who, text: str) -> str:
        said = await self.api.say(self.USERS[who], text)
        await self.settle()
        return "\n".join(
            m.all_text()
            for m in self.api.messages.values()
            if (m.current.get("message_reference") or {}).get("message_id") == str(said.id)
        )

    def buttons(self, sid: str, step_no: int) -> list[str]:
        return [_action(b.get("custom_id")) for b in self.bot.step(sid, step_no).buttons()]

    async def _click(self, sid: str, step_no: int, action: str, who: Who, as_posted: bool) -> Interaction:
        message = self.bot.step(sid, step_no)
        version = 0 if as_posted else -1
        label = next(
            (b["label"] for b in message.buttons(version) if _action(b.get("custom_id")) == action), None
        )
        assert label is not None, f"step {step_no} offers no {action} button"
        clicked = await self.api.click(message, label, self.USERS[who], version=version)
        return await clicked.answered()

    async def press(
        self, sid: str, step_no: int, action: str, who: Who, *, as_posted: bool = False, settle: bool = True
    ) -> None:
        await self._click(sid, step_no, action, who, as_posted)
        if settle:
            await self.settle()

    async def feedback(self, sid: str, step_no: int, who: Who, text: str) -> None:
        opened = await self._click(sid, step_no, "feedback", who, False)
        await self.settle()
        assert opened.response_type == MODAL, opened.private_texts()
        submitted = await self.api.submit_modal(opened, self.USERS[who], text)
        await submitted.answered()
        await self.settle()

    def told(self, who: Who) -> list[str]:
        user = self.USERS[who]
        return [t for i in self.api.interactions.values() if i.user_id == user for t in i.private_texts()]

    def step_text(self, sid: str, step_no: int) -> str:
        return self.bot.step(sid, step_no).all_text()

    def edits(self, sid: str, step_no: int | None = None) -> int:
        if step_no is not None:
            return self.bot.step(sid, step_no).edits
        return self.bot.root(sid).edits + sum(m.edits for m in self.bot.thread(sid))

    def shown(self, sid: str) -> list[str]:
        return [m.all_text() for m in self.bot.thread(sid)]

    def forms(self) -> int:
        return sum(any(c["type"] == MODAL for c in i.callbacks) for i in self.api.interactions.values())

    def attachments(self, sid: str) -> dict[str, bytes]:
        return {name: content for m in self.bot.thread(sid) for name, content in m.files.items()}

    async def settle(self) -> None:
        await self.bot.settle()

    async def restart(self) -> None:
        identified = len(self.api.identifies)
        await self.bot.restart()  # a new core and a new client, same store, same Discord
        assert len(self.api.identifies) == identified + 1


def _action(button_value: Any) -> str:
    """The action a posted button stands for (its id, parsed as every adapter parses it)."""
    parsed = parse(button_value)
    assert parsed is not None, f"not a button id: {button_value!r}"
    return parsed.action


DRIVERS: Final[dict[str, Callable[[Settings], contextlib.AbstractAsyncContextManager[Any]]]] = {
    "test": TestPlatformDriver.running,
    "toy": ToyDriver.running,
    "slack": SlackDriver.running,
    "discord": DiscordDriver.running,
}


@pytest.fixture
def store_kind() -> str:
    """SQLite unless a test says otherwise (the conftest runs every store)."""
    return "sqlite"


@pytest.fixture(params=list(DRIVERS))
async def driver(
    request: pytest.FixtureRequest, settings: Settings, llm: ScriptedLLM
) -> AsyncIterator[Driver]:
    async with DRIVERS[request.param](settings) as started:
        yield started


# ---------------------------------------------------------------------------- helpers


async def stored(d: Driver, sid: str) -> Session:
    session = await d.core.store.get(sid)
    assert session is not None
    return session


def workspace(d: Driver, sid: str) -> Path:
    return d.core.settings.data_dir / "workspaces" / sid


def summary(d: Driver, sid: str, outcome: str) -> str:
    """The session's summary message: "Session finished (<id>)" and the like."""
    found = [text for text in d.shown(sid) if f"{wording.OUTCOMES[outcome]} ({sid})" in text]
    assert len(found) == 1, d.shown(sid)
    return found[0]


def results_of(d: Driver, sid: str, step_no: int) -> list[str]:
    return [text for text in d.shown(sid) if f"Result of step {step_no}" in text]


# ---------------------------------------------------------------------------- the scenarios


async def test_a_goal_to_finish_through_approve_clicks(driver: Driver, llm: ScriptedLLM) -> None:
    d, owner = driver, driver.label("owner")
    llm.script(
        "execution_reply",
        agent_reply("write_to_file", {"filename": "poem.txt", "text": "roses"}, text="I will write"),
        agent_reply("write_to_file", {"filename": "notes.txt", "text": "violets"}),
        agent_reply("finish", {"reason": "poem written"}),
    )
    sid = await d.start_goal("owner", GOAL)
    told = len(d.told("owner"))
    session = await stored(d, sid)
    assert session.state == SessionState.AWAITING_APPROVAL and session.goals == ["write a poem to poem.txt"]
    assert "write_to_file" in d.step_text(sid, 1) and "I will write" in d.step_text(sid, 1)

    for step_no in (1, 2, 3):
        assert d.buttons(sid, step_no) == (DECISIONS if step_no < 3 else ON_FINISH)
        await d.press(sid, step_no, "approve", "owner")
        assert d.buttons(sid, step_no) == []  # decided: the message was edited, its buttons gone
        assert f"{owner} approved" in d.step_text(sid, step_no)
        assert (await stored(d, sid)).steps[step_no - 1].decided_by == owner
        if step_no < 3:
            assert len(results_of(d, sid, step_no)) == 1

    assert (workspace(d, sid) / "poem.txt").read_text() == "roses"
    assert (workspace(d, sid) / "notes.txt").read_text() == "violets"
    session = await stored(d, sid)
    assert session.state == SessionState.FINISHED and session.reason == "poem written"
    assert [s.decision for s in session.steps] == ["approved"] * 3
    assert [s.status for s in session.steps[:2]] == [StepStatus.DONE] * 2
    assert "poem written" in summary(d, sid, "finished")
    assert d.told("owner")[told:] == []  # nothing to tell anyone privately
    assert not llm.unscripted


async def test_b_approve_next_n_runs_the_next_steps_without_asking(driver: Driver, llm: ScriptedLLM) -> None:
    d, owner = driver, driver.label("owner")
    n = d.core.settings.approve_next_n
    llm.script(
        "execution_reply",
        *[agent_reply("append_to_file", {"filename": "log.txt", "text": f"{i}\n"}) for i in range(n)],
        agent_reply("finish", {"reason": "done"}),
    )
    sid = await d.start_goal("owner", GOAL)
    await d.press(sid, 1, "approve_n", "owner")

    assert (workspace(d, sid) / "log.txt").read_text() == "".join(f"{i}\n" for i in range(n))
    assert d.buttons(sid, 1) == [] and f"{owner} approved this and the next {n - 1}" in d.step_text(sid, 1)
    session = await stored(d, sid)
    for step_no in range(2, n + 1):
        assert d.buttons(sid, step_no) in ([], ["pause", "stop"])
        assert "Approved in advance" in d.step_text(sid, step_no)
        step = session.steps[step_no - 1]
        assert step.decided_by == "auto" and step.status == StepStatus.DONE
    assert d.buttons(sid, n + 1) == ON_FINISH  # then it asks again
    assert session.state == SessionState.AWAITING_APPROVAL and session.approvals_left == 0
    assert session.pending_step is not None and session.pending_step.no == n + 1
    assert len(llm.requests_of("execution_reply")) == n + 1


async def test_c_feedback_skips_the_step_and_tells_the_agent(driver: Driver, llm: ScriptedLLM) -> None:
    d, owner = driver, driver.label("owner")
    llm.script(
        "execution_reply",
        agent_reply("delete_file", {"filename": "x"}),
        agent_reply("list_files", {"directory": "."}),
    )
    sid = await d.start_goal("owner", GOAL)
    told = len(d.told("owner"))
    await d.feedback(sid, 1, "owner", "don't delete anything")

    session = await stored(d, sid)
    step = session.steps[0]
    assert step.status == StepStatus.SKIPPED and step.feedback == "don't delete anything"
    assert step.decided_by == owner and step.decision == "gave feedback"
    prompt = json.dumps(llm.requests_of("execution_reply")[-1]["messages"])
    assert "Human feedback: don't delete anything" in prompt
    assert d.buttons(sid, 1) == [] and f"{owner} gave feedback" in d.step_text(sid, 1)
    assert results_of(d, sid, 1) == []  # not run
    assert session.pending_step is not None and session.pending_step.no == 2
    assert d.buttons(sid, 2) == DECISIONS
    assert d.told("owner")[told:] == []


async def test_d_stop(driver: Driver, llm: ScriptedLLM) -> None:
    d, owner = driver, driver.label("owner")
    llm.script("execution_reply", agent_reply("list_files", {"directory": "."}))
    sid = await d.start_goal("owner", GOAL)
    await d.press(sid, 1, "stop", "owner")

    session = await stored(d, sid)
    assert session.state == SessionState.STOPPED and session.reason == f"stopped by {owner}"
    assert session.steps[0].status == StepStatus.REJECTED
    assert d.buttons(sid, 1) == [] and f"{owner} stopped" in d.step_text(sid, 1)
    assert f"stopped by {owner}" in summary(d, sid, "stopped")
    assert results_of(d, sid, 1) == [] and len(llm.requests_of("execution_reply")) == 1

    # a click on the step as first shown (a client that has not refreshed) changes nothing, and says why
    told, edits = len(d.told("owner")), d.edits(sid, 1)
    await d.press(sid, 1, "approve", "owner", as_posted=True)
    [late] = d.told("owner")[told:]
    assert "already stopped" in late
    assert (await stored(d, sid)).state == SessionState.STOPPED and d.edits(sid, 1) == edits


async def test_e_a_strangers_clicks_change_nothing_an_admin_may_decide(
    driver: Driver, llm: ScriptedLLM
) -> None:
    d, owner, admin = driver, driver.label("owner"), driver.label("admin")
    llm.script("execution_reply", agent_reply("list_files", {"directory": "."}))
    sid = await d.start_goal("owner", GOAL)
    shown, edits, forms, told = d.shown(sid), d.edits(sid), d.forms(), len(d.told("stranger"))

    for action in DECISIONS:
        await d.press(sid, 1, action, "stranger")
    refusals = d.told("stranger")[told:]
    assert len(refusals) == len(DECISIONS), refusals
    assert all(f"Only {owner} or an admin" in r for r in refusals), refusals
    assert d.shown(sid) == shown and d.edits(sid) == edits  # no message was edited
    assert d.forms() == forms  # and no feedback form opened
    assert d.buttons(sid, 1) == DECISIONS
    session = await stored(d, sid)
    assert session.state == SessionState.AWAITING_APPROVAL and len(session.steps) == 1
    assert session.steps[0].status == StepStatus.PENDING and session.steps[0].decided_by is None

    # an admin may decide on anyone's session
    told = len(d.told("admin"))
    await d.press(sid, 1, "stop", "admin")
    session = await stored(d, sid)
    assert session.state == SessionState.STOPPED and session.reason == f"stopped by {admin}"
    assert session.steps[0].status == StepStatus.REJECTED and session.steps[0].decided_by == admin
    assert d.buttons(sid, 1) == [] and f"{admin} stopped" in d.step_text(sid, 1)
    assert f"stopped by {admin}" in summary(d, sid, "stopped")
    assert d.told("admin")[told:] == []
    # the owner's click on the step as they still see it: nothing changes, and says why
    told, edits = len(d.told("owner")), d.edits(sid)
    await d.press(sid, 1, "approve", "owner", as_posted=True)
    [late] = d.told("owner")[told:]
    assert "already stopped" in late and d.edits(sid) == edits


async def test_f_a_double_click_decides_once(driver: Driver, llm: ScriptedLLM) -> None:
    d, owner = driver, driver.label("owner")
    llm.script(
        "execution_reply",
        agent_reply("append_to_file", {"filename": "once.txt", "text": "x"}),
        agent_reply("finish", {"reason": "written once"}),
    )
    sid = await d.start_goal("owner", GOAL)
    told = len(d.told("owner"))
    await asyncio.gather(
        d.press(sid, 1, "approve", "owner", as_posted=True, settle=False),
        d.press(sid, 1, "approve", "owner", as_posted=True, settle=False),
    )
    await d.settle()

    notes = d.told("owner")[told:]
    if d.dedupes_double_clicks:
        assert notes == []
    else:
        assert len(notes) == 1 and "already decided" in notes[0] and f"approved by {owner}" in notes[0], notes
    assert (workspace(d, sid) / "once.txt").read_text() == "x"  # ran once
    assert len(results_of(d, sid, 1)) == 1
    assert len(llm.requests_of("execution_reply")) == 2
    session = await stored(d, sid)
    assert session.steps[0].status == StepStatus.DONE and session.steps[0].decided_by == owner
    assert session.pending_step is not None and session.pending_step.no == 2
    assert d.buttons(sid, 1) == [] and f"{owner} approved" in d.step_text(sid, 1)

    # the old button later on: a private note, nothing runs
    told = len(d.told("owner"))
    await d.press(sid, 1, "approve", "owner", as_posted=True)
    [late] = d.told("owner")[told:]
    assert "already decided" in late
    assert len(llm.requests_of("execution_reply")) == 2 and len(results_of(d, sid, 1)) == 1


@pytest.mark.parametrize("store_kind", ["sqlite", "redis"])
async def test_g_buttons_posted_before_a_restart_still_work(driver: Driver, llm: ScriptedLLM) -> None:
    d, owner = driver, driver.label("owner")
    llm.script(
        "execution_reply",
        agent_reply("write_to_file", {"filename": "a.txt", "text": "1"}),
        agent_reply("write_to_file", {"filename": "b.txt", "text": "2"}),
        agent_reply("finish", {"reason": "both written"}),
    )
    sid = await d.start_goal("owner", GOAL)
    await d.press(sid, 1, "approve", "owner")
    assert (workspace(d, sid) / "a.txt").read_text() == "1"
    assert d.buttons(sid, 2) == DECISIONS

    await d.restart()  # a new process on the same store; the chat still shows step 2's buttons
    told = len(d.told("owner"))
    await d.press(sid, 2, "approve", "owner", as_posted=True)
    assert (workspace(d, sid) / "b.txt").read_text() == "2"
    assert d.buttons(sid, 2) == [] and f"{owner} approved" in d.step_text(sid, 2)
    assert d.told("owner")[told:] == []
    await d.press(sid, 3, "approve", "owner")
    session = await stored(d, sid)
    assert session.state == SessionState.FINISHED and session.reason == "both written"
    assert [s.decided_by for s in session.steps] == [owner] * 3
    assert "both written" in summary(d, sid, "finished")


async def test_h_always_allow_here(driver: Driver, llm: ScriptedLLM) -> None:
    d, owner = driver, driver.label("owner")
    llm.script(
        "execution_reply",
        agent_reply("write_to_file", {"filename": "a.txt", "text": "1"}),
        agent_reply("write_to_file", {"filename": "b.txt", "text": "2"}),
        agent_reply("read_file", {"filename": "a.txt"}),
    )
    sid = await d.start_goal("owner", GOAL)
    told = len(d.told("owner"))
    await d.press(sid, 1, "allow_tool", "owner")

    session = await stored(d, sid)
    [grant] = session.grants
    assert grant.tool == "write_to_file" and grant.by == owner
    assert d.buttons(sid, 1) == [] and "always allowed write_to_file here" in d.step_text(sid, 1)
    # the same command again runs without asking; another one asks
    assert (workspace(d, sid) / "b.txt").read_text() == "2"
    assert d.buttons(sid, 2) == [] and f"{owner} always allowed this command here" in d.step_text(sid, 2)
    assert session.steps[1].decided_by == "policy" and session.steps[1].status == StepStatus.DONE
    assert d.buttons(sid, 3) == DECISIONS and session.pending_step is not None
    assert d.told("owner")[told:] == []


async def test_i_a_sandboxed_commands_output_is_shown_and_attached(driver: Driver, llm: ScriptedLLM) -> None:
    d = driver
    d.core.settings.execute_local_commands = True
    code = "import sys\nfor i in range(3000):\n    print(f'line {i}')\nprint('a warning', file=sys.stderr)\n"
    llm.script(
        "execution_reply",
        agent_reply("execute_python_code", {"code": code}),
        agent_reply("finish", {"reason": "ok"}),
    )
    sid = await d.start_goal("owner", GOAL)
    assert d.buttons(sid, 1) == DECISIONS
    await d.press(sid, 1, "approve", "owner")

    [result] = results_of(d, sid, 1)
    assert "exit code 0" in result and "line 0" in result  # the output as the agent read it
    files = d.attachments(sid)
    full = files.get("step-1-output.txt")
    assert full is not None, list(files)
    assert b"line 2999" in full and b"a warning" in full  # the whole of it, attached
    session = await stored(d, sid)
    kept = session.steps[0].result or ""
    assert "line 2999" not in kept and "the full output is in .autogpt/step-1-output.txt" in kept
    assert (workspace(d, sid) / ".autogpt/step-1-output.txt").read_bytes() == full


TW_KEYS: Final = {
    "tw_consumer_key": "ck-contract",
    "tw_consumer_secret": "cs-contract",
    "tw_access_token": "at-contract",
    "tw_access_token_secret": "ats-contract",
}


@pytest.fixture(scope="module")
def providers() -> Iterator[tuple[FakeGitHub, FakeTwitter]]:
    with (
        FakeGitHub() as gh,
        FakeTwitter(
            consumer_key=TW_KEYS["tw_consumer_key"],
            consumer_secret=TW_KEYS["tw_consumer_secret"],
            token=TW_KEYS["tw_access_token"],
            token_secret=TW_KEYS["tw_access_token_secret"],
        ) as x,
    ):
        gh.make_repo("acme/widgets", {"README.md": "# Widgets\n", "src/app.py": "print('hi')\n"})
        gh.add_issue("acme/widgets", 7, "It breaks", "on Tuesdays")
        yield gh, x


@pytest.mark.slow
async def test_j_autogpts_other_commands_show_their_results(
    driver: Driver, llm: ScriptedLLM, providers: tuple[FakeGitHub, FakeTwitter]
) -> None:
    """generate_image, read_audio_from_file, clone_repository, github_read_issue and send_tweet,
    each against its local fake, with what it made shown where the user is."""
    d, (gh, x) = driver, providers
    x.reset()
    for key, value in TW_KEYS.items():
        setattr(d.core.settings, key, SecretStr(value))
    d.core.settings.github_url, d.core.settings.twitter_api_url = gh.origin, x.base_url
    llm.script(
        "execution_reply",
        agent_reply("generate_image", {"prompt": "a red fox", "size": 256}),
        agent_reply("read_audio_from_file", {"filename": "memo.wav"}),
        agent_reply("clone_repository", {"url": f"{gh.origin}/acme/widgets", "clone_path": "widgets"}),
        agent_reply("github_read_issue", {"repo": "acme/widgets", "number": 7}),
        agent_reply("send_tweet", {"tweet_text": "A fox, drawn by a bot"}),
        agent_reply("finish", {"reason": "ok"}),
    )
    sid = await d.start_goal("owner", GOAL)
    memo = io.BytesIO()
    with wave.open(memo, "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(8000), w.writeframes(b"\0\0" * 48000)
    workspace(d, sid).mkdir(parents=True, exist_ok=True)
    (workspace(d, sid) / "memo.wav").write_bytes(memo.getvalue())
    for step_no in range(1, 6):
        session = await stored(d, sid)
        assert session.pending_step is not None, (session.state, session.reason, d.shown(sid)[-2:])
        await d.press(sid, step_no, "approve", "owner")

    [image] = results_of(d, sid, 1)
    assert "Saved the image as images/a-red-fox-1.png" in image
    assert d.attachments(sid)["a-red-fox-1.png"].startswith(b"\x89PNG")  # the picture itself, in the thread
    [heard] = results_of(d, sid, 2)
    assert "Transcript of memo.wav (0.1 min): heard memo.wav" in heard
    [cloned] = results_of(d, sid, 3)
    assert "README.md" in cloned and "src/" in cloned and gh.heads["acme/widgets"][:12] in cloned
    assert (workspace(d, sid) / "widgets" / "src" / "app.py").is_file()
    [issue] = results_of(d, sid, 4)
    assert "It breaks" in issue and "on Tuesdays" in issue
    [tweeted] = results_of(d, sid, 5)
    assert [t.text for t in x.tweets] == ["A fox, drawn by a bot"]
    assert f"Tweeted: {x.tweets[0].id}" in tweeted
    session = await stored(d, sid)
    assert session.usage.cost_usd >= 0.04 + 0.1 * 0.006  # an image and a tenth of a minute, charged


async def test_k_steering_goals_ask_again_and_fork(driver: Driver, llm: ScriptedLLM) -> None:
    """Typed `goals ID add`, the Ask again button and `fork ID` on every platform: the same grammar,
    the same answers, the change said in the session's thread."""
    d, owner = driver, driver.label("owner")
    llm.script(
        "execution_reply",
        agent_reply("delete_file", {"filename": "poem.txt"}),
        agent_reply("write_to_file", {"filename": "poem.txt", "text": "roses"}),
        agent_reply("read_file", {"filename": "poem.txt"}),
        agent_reply("read_file", {"filename": "poem.txt"}, text="in the fork"),
    )
    sid = await d.start_goal("owner", GOAL)
    said = await d.send("owner", f"goals {sid} add make it rhyme")
    assert "Goal 2 added" in said, said
    assert any("make it rhyme" in text and "added goal 2" in text for text in d.shown(sid)), d.shown(sid)
    refused = await d.send("stranger", f"goals {sid} remove 1")
    assert f"Only {owner} or an admin" in refused, refused

    await d.press(sid, 1, "retry", "owner")
    assert d.buttons(sid, 1) == [] and "asked again" in d.step_text(sid, 1)
    assert d.buttons(sid, 2) == DECISIONS and "write_to_file" in d.step_text(sid, 2)
    assert "added goal 2" in json.dumps(llm.requests_of("execution_reply")[-1]["messages"])
    await d.press(sid, 2, "approve", "owner")
    session = await stored(d, sid)
    assert (
        session.goals == ["write a poem to poem.txt", "make it rhyme"]
        and session.steps[0].decided_by == owner
    )
    assert [s.status for s in session.steps] == [StepStatus.RETRIED, StepStatus.DONE, StepStatus.PENDING]

    forked = await d.send("owner", f"fork {sid}")
    match = re.search(
        rf"Session `?(\w+)`? (?:forked from|for .*\n\s*Forked from session) {sid} at step 2", forked
    )
    assert match, forked
    new = await stored(d, match.group(1))
    assert new.forked_from == sid and [s.status for s in new.steps[:2]] == [
        StepStatus.RETRIED,
        StepStatus.DONE,
    ]
    assert (workspace(d, new.id) / "poem.txt").read_text() == "roses"
    assert new.pending_step is not None and new.pending_step.thoughts.text == "in the fork"
    assert d.buttons(new.id, 3) == DECISIONS


# ---------------------------------------------------------------------------- the toy as a platform

ALLOWED: Final = ("bot.adapter", "bot.decisions", "bot.models", "bot.presenter", "bot.service", "bot.core")


def test_the_toy_adapter_uses_bots_public_pieces_only() -> None:
    tree = ast.parse(Path(toy.__file__).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    ours = {m for m in imported if m.split(".")[0] in ("bot", "adapters", "tests")}
    assert ours and all(m.startswith(ALLOWED) for m in ours), ours
    assert not toy.ToyAdapter.__abstractmethods__  # the whole contract is implemented


def test_one_entry_point_makes_the_toy_an_adapter(monkeypatch: pytest.MonkeyPatch) -> None:
    """A platform is a folder plus one line in pyproject.toml's `autogpt_bot.adapters` group."""
    point = EntryPoint(name="toy", value="tests.fakes.toy:ToyAdapter", group=adapter_module.ENTRY_POINTS)
    monkeypatch.setattr(adapter_module, "entry_points", lambda group: [point])
    assert adapter_module.adapter_classes() == {"toy": toy.ToyAdapter}
