"""The console's spinner (AutoGPT's "Thinking..."): on a terminal, what the engine is doing is
shown on one line redrawn in place, within a second of each phase starting, and erased before
anything else is printed and when the work ends; when output is not a terminal, nothing."""

from __future__ import annotations

import io
import time

from adapters.console.platform import ConsoleAdapter
from bot.core import Core
from bot.decisions import Decision
from bot.grammar import GoalCommand
from bot.models import Actor, Place
from bot.settings import Settings
from tests.fakes.llm_server import Delay, ScriptedLLM, agent_reply


class Terminal(io.StringIO):
    """A terminal's output: every write kept with the time it was made."""

    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty
        self.writes: list[tuple[float, str]] = []

    def isatty(self) -> bool:
        return self.tty

    def write(self, text: str) -> int:
        self.writes.append((time.monotonic(), text))
        return super().write(text)


async def run_session(settings: Settings, llm: ScriptedLLM, out: Terminal) -> float:
    llm.script(
        "execution_reply",
        Delay(1.2, then=agent_reply("list_files", {"directory": "."})),
        agent_reply("finish", {"reason": "done"}),
    )
    core = await Core.start(settings)
    console = ConsoleAdapter(out, color=False, workspaces=settings.data_dir / "workspaces")
    core.add_platform(console)
    actor = Actor(platform="console", user_id="me", is_admin=True)
    try:
        outcome = await core.service.start(
            actor, Place(platform="console", channel="terminal"), GoalCommand(goals=["look"])
        )
        assert outcome.ok and outcome.session_id
        await core.runner.idle(15)
        await core.service.decide(outcome.session_id, actor, Decision(action="approve", step_no=1))
        await core.runner.idle(15)
    finally:
        await console.stop()
        await core.close()
    return llm.requests_of("execution_reply") and next(
        r.at for r in llm.requests if r.kind == "execution_reply"
    )


async def test_a_spinner_shows_each_phase_on_a_terminal(settings: Settings, llm: ScriptedLLM) -> None:
    out = Terminal(tty=True)
    asked = await run_session(settings, llm, out)
    thinking = [at for at, text in out.writes if "Thinking..." in text and text.startswith("\r")]
    assert thinking and thinking[0] - asked < 1.0  # within a second of the call going out
    assert any("Running list_files..." in text for _, text in out.writes)
    # redrawn while the 1.2 s call lasts, and erased before the step is printed
    assert len(thinking) >= 5
    text = out.getvalue()
    before_step = text.split("THOUGHTS:")[0]
    assert before_step.endswith("\r\x1b[K")
    drawn = [t for _, t in out.writes if t.startswith("\r")]
    assert drawn[-1] == "\r\x1b[K"  # nothing left spinning once the work ended


async def test_no_spinner_when_output_is_not_a_terminal(settings: Settings, llm: ScriptedLLM) -> None:
    out = Terminal(tty=False)
    await run_session(settings, llm, out)
    text = out.getvalue()
    assert "Thinking..." not in text and "\r" not in text and "\x1b" not in text
    assert "THOUGHTS:" in text
