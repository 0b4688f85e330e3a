"""The console as a chat platform: views printed the way AutoGPT's terminal showed them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import sys
from pathlib import Path
from typing import ClassVar, TextIO

from bot.adapter import ChatAdapter
from bot.models import MessageRef, Place
from bot.presenter import views as v
from bot.presenter.render import Renderer

RESULT_LIMIT = 2000
AUDIO_EXT = frozenset({"wav", "mp3", "aiff", "ogg"})
PLAYERS = (
    ("paplay",),
    ("aplay", "-q"),
    ("ffplay", "-nodisp", "-autoexit", "-loglevel", "quiet"),
    ("afplay",),
)
PLAY_TIMEOUT_S = 120.0
SPIN_INTERVAL_S = 0.1


def audio_player() -> tuple[str, ...] | None:
    """The first sound player this machine has (--speak plays what the agent says), or None."""
    for player in PLAYERS:
        if path := shutil.which(player[0]):
            return (path, *player[1:])
    return None


async def play(player: tuple[str, ...], path: str) -> None:
    """Play a sound file; a player that fails or hangs is ended quietly (the file stays)."""
    with contextlib.suppress(OSError):
        proc = await asyncio.create_subprocess_exec(
            *player,
            path,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            await asyncio.wait_for(proc.wait(), PLAY_TIMEOUT_S)
        except (TimeoutError, asyncio.CancelledError):
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()


DOCKERENV = Path("/.dockerenv")  # present in every Docker container
COMPOSE_SERVICE = "autogpt-bot"  # docker-compose.yml's service


def in_docker() -> bool:
    return DOCKERENV.exists()


COLORS = {"yellow": "33", "green": "32", "cyan": "36", "red": "31", "magenta": "35", "bold": "1"}


class Spinner:
    """AutoGPT's "Thinking...": one line, redrawn in place while the engine works, erased
    before anything else is printed and when the work ends. Only on a terminal."""

    FRAMES: ClassVar[str] = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"

    def __init__(self, out: TextIO, interval: float = SPIN_INTERVAL_S) -> None:
        self.out = out
        self.interval = interval
        self.text = ""
        self._frame = 0
        self._drawn = False
        self._task: asyncio.Task[None] | None = None

    def set(self, text: str) -> None:
        self.text = text
        if not text:
            self.hide()
            if self._task is not None:
                self._task.cancel()
                self._task = None
            return
        self.show()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._spin())

    def show(self) -> None:
        if not self.text:
            return
        frame = self.FRAMES[self._frame % len(self.FRAMES)]
        self.out.write(f"\r\033[K{frame} {self.text}")
        self.out.flush()
        self._drawn = True

    def hide(self) -> None:
        if self._drawn:
            self.out.write("\r\033[K")
            self.out.flush()
            self._drawn = False

    async def _spin(self) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            while self.text:
                await asyncio.sleep(self.interval)
                self._frame += 1
                self.show()

    def stop(self) -> None:
        self.set("")


class ConsoleRenderer(Renderer[None]):
    """Prints each view to `out`, coloured when it is a terminal (and NO_COLOR is not set)."""

    def __init__(
        self, out: TextIO, color: bool, workspaces: Path | None = None, docker: bool | None = None
    ) -> None:
        self.out = out
        self.color = color
        self.workspaces = workspaces  # DATA_DIR/workspaces: files are shown where they lie
        self.docker = in_docker() if docker is None else docker
        self.spinner: Spinner | None = None
        self._last_tasks: tuple[list[str], list[str]] | None = None

    def where(self, session_id: str | None, name: str) -> str:
        """Where a workspace file lies on this machine (the console's user owns it), or its name
        in the workspace when that is not known."""
        if self.workspaces is None or not session_id:
            return f"{name} in the workspace"
        return str(self.workspaces / session_id / name)

    def _c(self, text: str, color: str) -> str:
        return f"\033[{COLORS[color]}m{text}\033[0m" if self.color else text

    def _print(self, text: str) -> None:
        if self.spinner is not None:
            self.spinner.hide()
        self.out.write(text + "\n")
        self.out.flush()
        if self.spinner is not None:
            self.spinner.show()

    def _label(self, label: str, text: str, color: str = "green") -> None:
        if text:
            self._print(f"{self._c(label, color)} {text}")

    def header(self, view: v.SessionHeaderView) -> None:
        self._print(self._c(f"Session {view.session_id}", "bold") + f" ({view.mode}), owner {view.owner}")
        self._print(f"{self._c(view.ai_name, 'magenta')} is {view.ai_role}")
        self._print("Goals:")
        for i, goal in enumerate(view.goals, 1):
            self._print(f"  {i}. {goal}")

    def tasks(self, view: v.TaskListView) -> None:
        if self._last_tasks == (view.tasks, view.done):
            return
        self._last_tasks = (list(view.tasks), list(view.done))
        self._print(self._c("TASKS:", "cyan"))
        for i, task in enumerate(view.tasks, 1):
            self._print(f"  {i}. {task}")
        if view.done:
            self._print(f"  ({len(view.done)} done)")

    def step(self, view: v.StepView) -> None:
        t = view.thoughts
        self._label("THOUGHTS:", t.text, "yellow")
        self._label("REASONING:", t.reasoning, "yellow")
        if t.plan:
            self._print(self._c("PLAN:", "yellow"))
            for line in t.plan.splitlines():
                if line.strip():
                    self._print(f"-  {line.strip().lstrip('-').strip()}")
        self._label("CRITICISM:", t.criticism, "yellow")
        self._label("SPEAK:", t.speak, "yellow")
        args = json.dumps(view.args, ensure_ascii=False)
        if len(args) > 500:
            args = args[:500] + "..."
        self._print(
            f"{self._c('NEXT ACTION:', 'cyan')} COMMAND = {self._c(view.command, 'cyan')}  ARGUMENTS = {args}"
        )
        if view.note:
            self._label("SYSTEM:", view.note, "red" if view.status == "invalid" else "yellow")
        if view.status == "auto":  # AutoGPT's own words for a command approved in advance
            left = f" ({view.approvals_left} left)" if view.approvals_left else ""
            self._print(self._c(f"-=-=-=-=-=-=-= COMMAND AUTHORISED{left} -=-=-=-=-=-=-=", "magenta"))

    def result(self, view: v.ResultView) -> None:
        output = view.output
        if len(output) > RESULT_LIMIT:
            output = output[:RESULT_LIMIT] + f"... ({len(view.output)} characters in all)"
        self._label("SYSTEM:", f"Command {view.command} returned: {output}", "yellow" if view.ok else "red")
        for f in view.files:  # a terminal's attachment: where the file is
            what = f.comment or "File"
            where = self.where(view.session_id, f.name)
            self._print(self._c(f"{what} ({len(f.content):,} bytes): {where}", "cyan"))

    def summary(self, view: v.SummaryView) -> None:
        color = "green" if view.outcome == "finished" else "red"
        self._print(
            self._c(f"Session {view.session_id} {view.outcome}:", color)
            + f" {view.reason}\nCycles: {view.cycles}, spent ${view.cost_usd:.4f} "
            f"({view.prompt_tokens} prompt + {view.completion_tokens} completion tokens)"
        )
        if view.outcome != "paused":
            for line in self.files_lines(view.session_id):
                self._print(line)

    def files_lines(self, session_id: str) -> list[str]:
        """At the end of a session: where its files are (and, in a container, how to copy them out)."""
        if self.workspaces is None or not session_id:
            return []
        workspace = (self.workspaces / session_id).absolute()
        if not workspace.is_dir() or not any(workspace.iterdir()):
            return ["It left no files."]
        lines = [f"Its files are in {workspace}"]
        if self.docker:
            lines.append(
                f"Copy them out of the container with: docker compose cp "
                f"{COMPOSE_SERVICE}:{workspace} ./{session_id}"
            )
        return lines

    def notice(self, view: v.NoticeView) -> None:
        color = {"info": "cyan", "warning": "yellow", "error": "red"}[view.level]
        self._label(view.level.upper() + ":", view.text, color)


class ConsoleAdapter(ChatAdapter):
    """The terminal as a chat: `autogpt-bot console`, and `run` when no chat is set up."""

    name: ClassVar[str] = "console"

    def __init__(
        self,
        out: TextIO | None = None,
        color: bool | None = None,
        workspaces: Path | None = None,
        play: bool | None = None,
        spin: bool | None = None,
        docker: bool | None = None,
    ) -> None:
        self.out = out or sys.stdout
        tty = self.out.isatty()
        if color is None:
            color = tty and not os.environ.get("NO_COLOR")
        self.renderer = ConsoleRenderer(self.out, color, workspaces, docker)
        if tty if spin is None else spin:  # none when output is not a terminal
            self.renderer.spinner = Spinner(self.out)
        self.player = audio_player() if (tty if play is None else play) else None
        self._playing: set[asyncio.Task[None]] = set()
        self._count = 0

    async def open_session(self, place: Place, view: v.SessionHeaderView) -> Place:
        self.renderer.header(view)
        return place.model_copy(update={"thread": view.session_id})  # where its files lie

    async def post(self, place: Place, view: v.View) -> MessageRef:
        self._count += 1
        if not isinstance(view, v.SessionHeaderView):
            self.render(view)
        return MessageRef(platform=self.name, channel=place.channel, id=str(self._count), thread=place.thread)

    async def update(self, ref: MessageRef, view: v.View) -> None:
        # Edits that matter in a terminal: a changed task list and an interrupted command.
        if isinstance(view, v.TaskListView) or (
            isinstance(view, v.StepView) and view.status == "interrupted"
        ):
            self.render(view)

    async def upload(self, place: Place, filename: str, content: bytes, comment: str) -> None:
        where = self.renderer.where(place.thread, filename)
        self.renderer._print(self.renderer._c(f"{comment} ({len(content):,} bytes): {where}", "cyan"))
        audio = filename.rsplit(".", 1)[-1].lower() in AUDIO_EXT
        if audio and self.player is not None and os.path.isabs(where):
            task = asyncio.create_task(play(self.player, where))
            self._playing.add(task)
            task.add_done_callback(self._playing.discard)

    async def progress(self, place: Place, view: v.ProgressView) -> None:
        if self.renderer.spinner is not None:
            self.renderer.spinner.set(view.text)

    async def stop(self) -> None:
        if self.renderer.spinner is not None:
            self.renderer.spinner.stop()
        for task in list(self._playing):
            task.cancel()

    def render(self, view: v.View) -> None:
        self.renderer.render(view)
