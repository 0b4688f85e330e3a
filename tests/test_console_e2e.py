"""`autogpt-bot console` end to end: a real subprocess driven through standard input, talking to
the scripted LLM server over HTTP, with each real store (SQLite and Redis).

Every test asserts on the exit code, on what was printed, and on the real effects: the files in
the session's workspace (DATA_DIR/workspaces/<session id>/) and the requests the LLM received.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.settings import setting_names
from tests.conftest import REDIS_URL
from tests.fakes.llm_server import Error, ScriptedLLM, agent_reply, tasks_reply

REPO = Path(__file__).resolve().parent.parent
CONSOLE_SCRIPT = Path(sys.executable).parent / "autogpt-bot"

EXIT_FINISHED, EXIT_STOPPED, EXIT_LIMIT, EXIT_WAITING = 0, 3, 4, 5

SESSION_LINE = re.compile(r"^Session ([a-z0-9]+) \(", re.MULTILINE)
SUMMARY = re.compile(
    r"^Session (?P<id>[a-z0-9]+) (?P<outcome>finished|stopped|failed|paused): (?P<reason>.*)\n"
    r"Cycles: (?P<cycles>\d+), spent \$(?P<spent>\d+\.\d+) "
    r"\((?P<prompt>\d+) prompt \+ (?P<completion>\d+) completion tokens\)$",
    re.MULTILINE,
)


@dataclass
class Run:
    code: int
    out: str
    err: str
    data: Path

    @property
    def session_id(self) -> str:
        m = SESSION_LINE.search(self.out)
        assert m, f"no 'Session <id>' line in:\n{self.out}"
        return m.group(1)

    def workspace(self, session_id: str | None = None) -> Path:
        return self.data / "workspaces" / (session_id or self.session_id)

    def summaries(self) -> list[re.Match[str]]:
        return list(SUMMARY.finditer(self.out))

    @property
    def summary(self) -> re.Match[str]:
        found = self.summaries()
        assert found, f"no summary in:\n{self.out}"
        return found[-1]

    @property
    def prompts(self) -> int:
        return self.out.count("Input:")


def clean_environ() -> dict[str, str]:
    """os.environ without any setting of ours, so a developer's environment cannot leak in."""
    keys = set(setting_names())
    env = {k: v for k, v in os.environ.items() if k.upper() not in keys}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    env["NO_COLOR"] = "1"
    return env


def scripted_environ(
    tmp_path: Path, llm: ScriptedLLM, llm_timeout: float = 10, **extra: str
) -> dict[str, str]:
    """`clean_environ` with the scripted LLM and a data folder under `tmp_path`: what a console
    subprocess of the tests runs with (`extra`: more settings)."""
    env = clean_environ()
    env.update(
        OPENAI_API_KEY="sk-test-secret",
        OPENAI_BASE_URL=llm.base_url,
        DATA_DIR=str(tmp_path / "data"),
        LLM_MAX_RETRIES="1",
        LLM_TIMEOUT=f"{llm_timeout:g}",
        SMART_LLM="gpt-4o",
        FAST_LLM="gpt-4o-mini",
    )
    env.update(extra)
    return env


@pytest.fixture(params=["sqlite", "redis"])
def store(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def console(tmp_path: Path, llm: ScriptedLLM, store: str, redis_prefix: str):
    """Run `console ARGS` in a subprocess with `stdin` as its whole input."""

    def run(
        *args: str, stdin: str = "", extra_env: dict[str, str] | None = None, cmd: list[str] | None = None
    ) -> Run:
        env = scripted_environ(tmp_path, llm)
        if store == "redis":
            env.update(REDIS_URL=REDIS_URL, REDIS_PREFIX=redis_prefix)
        env.update(extra_env or {})
        proc = subprocess.run(
            [*(cmd or [sys.executable, "-m", "adapters.cli"]), "console", *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
            env=env,
        )
        assert "Traceback" not in proc.stdout, proc.stdout
        assert "Traceback" not in proc.stderr, proc.stderr
        return Run(proc.returncode, proc.stdout, proc.stderr, tmp_path / "data")

    return run


def appends(n: int, filename: str = "log.txt") -> list[dict]:
    """n distinct append_to_file replies (distinct, so the loop guard never pauses)."""
    return [agent_reply("append_to_file", {"filename": filename, "text": f"{i}\n"}) for i in range(n)]


# ---------------------------------------------------------------------------- scenarios


def test_multi_cycle_run_writes_a_file(console, llm: ScriptedLLM) -> None:
    llm.script("task_list", tasks_reply("write the notes", "check them"))
    llm.script(
        "execution_reply",
        agent_reply(
            "write_to_file",
            {"filename": "notes.txt", "text": "alpha\n"},
            text="I should write the notes first",
            reasoning="the goal asks for a file",
            plan="- write\n- append\n- read back",
            criticism="keep it short",
        ),
        agent_reply("append_to_file", {"filename": "notes.txt", "text": "beta\n"}),
        agent_reply("read_file", {"filename": "notes.txt"}),
        agent_reply("finish", {"reason": "notes written"}),
    )
    r = console("--name", "Scribe", "--role", "a careful note taker", "write notes", stdin="y\ny\ny\ny\n")

    assert r.code == EXIT_FINISHED, r.out + r.err
    assert "Scribe is a careful note taker" in r.out
    assert "  1. write notes" in r.out
    assert "TASKS:\n  1. write the notes\n  2. check them" in r.out
    assert "THOUGHTS: I should write the notes first" in r.out
    assert "REASONING: the goal asks for a file" in r.out
    assert "PLAN:\n-  write\n-  append\n-  read back" in r.out
    assert "CRITICISM: keep it short" in r.out
    assert 'NEXT ACTION: COMMAND = write_to_file  ARGUMENTS = {"filename": "notes.txt"' in r.out
    assert "NEXT ACTION: COMMAND = append_to_file" in r.out
    assert "NEXT ACTION: COMMAND = finish" in r.out
    assert "or enter feedback for Scribe..." in r.out
    assert "SYSTEM: Command write_to_file returned: File notes.txt written to successfully" in r.out
    assert "SYSTEM: Command read_file returned: alpha\nbeta" in r.out
    assert r.prompts == 4
    s = r.summary
    assert s["id"] == r.session_id and s["outcome"] == "finished" and s["reason"] == "notes written"
    assert int(s["cycles"]) == 4 and float(s["spent"]) > 0
    assert (r.workspace() / "notes.txt").read_text() == "alpha\nbeta\n"
    assert len(llm.requests_of("execution_reply")) == 4
    assert not llm.unscripted and not llm.remaining()


def test_y_minus_n_approves_this_and_the_next(console, llm: ScriptedLLM) -> None:
    llm.script("execution_reply", *appends(3), agent_reply("finish", {"reason": "counted"}))
    r = console("count to three", stdin="y -3\ny\n")

    assert r.code == EXIT_FINISHED, r.out + r.err
    # one line for the three appends, one for finish: only the 4th proposal asked again
    assert r.prompts == 2
    assert "Input: y -3\n" in r.out
    assert "COMMAND AUTHORISED (1 left)" in r.out
    assert r.out.count("COMMAND AUTHORISED") == 2
    fourth = r.out.index("NEXT ACTION: COMMAND = finish")
    assert r.out.count("Input:", 0, fourth) == 1
    assert (r.workspace() / "log.txt").read_text() == "0\n1\n2\n"
    s = r.summary
    assert s["outcome"] == "finished" and int(s["cycles"]) == 4


@pytest.mark.parametrize("store", ["sqlite"])  # where commands run does not depend on the store
def test_sandboxed_code_output_and_always_allow(console, llm: ScriptedLLM) -> None:
    """Python runs in the sandbox: its output is shown, the whole of it is in the workspace (a
    terminal's attachment); `a` always allows the command, so the second run asks nobody."""
    code = "for i in range(500):\n    print('row', i)\n"
    llm.script(
        "execution_reply",
        agent_reply("execute_python_code", {"code": code}),
        agent_reply("execute_python_code", {"code": "print('again')"}),
        agent_reply("finish", {"reason": "ran"}),
    )
    r = console("run code", stdin="a\ny\n", extra_env={"EXECUTE_LOCAL_COMMANDS": "true", "SANDBOX": "bwrap"})

    assert r.code == EXIT_FINISHED, r.out + r.err
    assert "'a' to always allow execute_python_code in this session" in r.out
    assert "Command execute_python_code returned: Ran in the bubblewrap sandbox" in r.out
    assert "row 0" in r.out and "again" in r.out
    assert "Full output of: python" in r.out  # where the file lies, for the console's own user
    assert str(r.workspace() / ".autogpt" / "step-1-output.txt") in r.out
    full = (r.workspace() / ".autogpt" / "step-1-output.txt").read_text()
    assert "row 499" in full
    assert r.prompts == 2  # step 1 ('a') and finish ('y'): step 2 ran without asking


@pytest.mark.parametrize("store", ["sqlite"])
@pytest.mark.parametrize(
    ("env", "said"),
    [
        ({"SANDBOX": "none"}, "SANDBOX=none: the agent's commands run on this machine as the bot's user"),
        (
            {"SANDBOX": "docker", "DOCKER_HOST": "tcp://127.0.0.1:9"},
            "execute_python_code, execute_python_file and execute_shell are off: SANDBOX=docker, but no "
            "Docker engine answers",
        ),
    ],
)
def test_start_up_says_where_commands_run(console, llm: ScriptedLLM, env: dict[str, str], said: str) -> None:
    llm.script("execution_reply", agent_reply("finish", {"reason": "nothing to do"}))
    r = console("nothing", stdin="y\n", extra_env={"EXECUTE_LOCAL_COMMANDS": "true", **env})
    assert r.code == EXIT_FINISHED, r.out + r.err
    assert said in r.err


def test_feedback_skips_the_command_and_reaches_the_agent(console, llm: ScriptedLLM) -> None:
    llm.script(
        "execution_reply",
        agent_reply("write_to_file", {"filename": "secret.txt", "text": "nope"}),
        agent_reply("finish", {"reason": "listened"}),
    )
    r = console("write something", stdin="do not write that file, just finish\ny\n")

    assert r.code == EXIT_FINISHED, r.out + r.err
    assert r.prompts == 2
    assert "SYSTEM: Command write_to_file" not in r.out
    assert not (r.workspace() / "secret.txt").exists()
    requests = llm.requests_of("execution_reply")
    assert len(requests) == 2
    prompt = json.dumps(requests[-1]["messages"])
    assert "Human feedback: do not write that file, just finish" in prompt
    assert "Human feedback" not in json.dumps(requests[0]["messages"])
    s = r.summary
    assert s["outcome"] == "finished" and int(s["cycles"]) == 2


def test_r_asks_the_agent_again(console, llm: ScriptedLLM) -> None:
    llm.script(
        "execution_reply",
        agent_reply("write_to_file", {"filename": "secret.txt", "text": "nope"}, text="write it"),
        agent_reply("finish", {"reason": "asked again"}),
    )
    r = console("write something", stdin="r\ny\n")

    assert r.code == EXIT_FINISHED, r.out + r.err
    assert "'r' to ask again" in r.out and r.prompts == 2
    assert not (r.workspace() / "secret.txt").exists()
    _, second = llm.requests_of("execution_reply")
    assert "write it" not in json.dumps(second["messages"])  # asked afresh, without the set-aside step
    assert r.summary["outcome"] == "finished"


def test_n_stops_without_running_the_command(console, llm: ScriptedLLM) -> None:
    llm.script("execution_reply", agent_reply("write_to_file", {"filename": "a.txt", "text": "x"}))
    r = console("write a", stdin="n\n")

    assert r.code == EXIT_STOPPED, r.out + r.err
    assert "NEXT ACTION: COMMAND = write_to_file" in r.out
    assert "SYSTEM: Command" not in r.out
    s = r.summary
    assert s["outcome"] == "stopped" and s["reason"].startswith("stopped by")
    assert int(s["cycles"]) == 1
    assert not (r.workspace() / "a.txt").exists()
    assert len(llm.requests_of("execution_reply")) == 1


def test_empty_line_is_invalid_and_asked_again(console, llm: ScriptedLLM) -> None:
    llm.script(
        "execution_reply",
        agent_reply("write_to_file", {"filename": "a.txt", "text": "x"}),
        agent_reply("finish", {"reason": "done"}),
    )
    r = console("write a", stdin="\n   \ny\ny\n")

    assert r.code == EXIT_FINISHED, r.out + r.err
    assert r.out.count("Invalid input format.") == 2
    assert r.prompts == 4  # two invalid lines, then the approval of each of the two proposals
    assert r.out.index("Invalid input format.") < r.out.index("SYSTEM: Command write_to_file returned")
    assert (r.workspace() / "a.txt").read_text() == "x"
    assert r.summary["outcome"] == "finished"


BUDGET = 0.02
PRICES = json.dumps({"gpt-4o": [4.0, 4.0], "gpt-4o-mini": [0.0, 0.0]})


def test_session_budget_stops_a_continuous_run(console, llm: ScriptedLLM) -> None:
    llm.script("execution_reply", *appends(12, "a.txt"))
    r = console(
        "--continuous",
        "spend",
        extra_env={"SESSION_BUDGET_USD": str(BUDGET), "MODEL_PRICES": PRICES},
    )

    assert r.code == EXIT_LIMIT, r.out + r.err
    assert r.prompts == 0
    assert "session budget reached" in r.out
    s = r.summary
    assert s["outcome"] == "paused" and "session budget reached" in s["reason"]
    spent, cycles = float(s["spent"]), int(s["cycles"])
    assert 0 < spent <= BUDGET
    assert f"${spent:.4f} spent" in s["reason"]
    assert cycles >= 2  # a few cycles fit, the twelfth never came
    assert len(llm.requests_of("execution_reply")) == cycles
    assert (r.workspace() / "a.txt").read_text() == "".join(f"{i}\n" for i in range(cycles))


def test_restart_in_the_middle_resumes_the_pending_step(console, llm: ScriptedLLM) -> None:
    llm.script(
        "execution_reply",
        agent_reply("append_to_file", {"filename": "log.txt", "text": "one\n"}),
        agent_reply("append_to_file", {"filename": "log.txt", "text": "two\n"}),
        agent_reply("finish", {"reason": "both lines"}),
    )
    first = console("log two lines", stdin="y\n")
    sid = first.session_id
    assert first.code == EXIT_WAITING, first.out + first.err
    assert f"autogpt-bot console --resume {sid}" in first.out
    assert "NEXT ACTION: COMMAND = append_to_file" in first.out
    assert (first.workspace() / "log.txt").read_text() == "one\n"
    assert not first.summaries()
    assert len(llm.requests_of("execution_reply")) == 2

    second = console("--resume", sid, stdin="y\ny\n")
    assert second.code == EXIT_FINISHED, second.out + second.err
    assert f"Resuming session {sid}" in second.out
    # the pending step ran once, the first command was not run again
    assert (first.workspace(sid) / "log.txt").read_text() == "one\ntwo\n"
    assert second.out.count("SYSTEM: Command append_to_file returned") == 1
    s = second.summary
    assert s["id"] == sid and s["outcome"] == "finished" and int(s["cycles"]) == 3
    assert len(llm.requests_of("execution_reply")) == 3


@pytest.mark.parametrize("store", ["sqlite"], indirect=True)
def test_resume_shows_the_pending_step_before_asking(console, llm: ScriptedLLM) -> None:
    llm.script("execution_reply", agent_reply("append_to_file", {"filename": "a.txt", "text": "x"}))
    first = console("append", stdin="")
    assert first.code == EXIT_WAITING
    second = console("--resume", first.session_id, stdin="")
    assert second.code == EXIT_WAITING
    asked = second.out.index("Input:")
    assert "NEXT ACTION: COMMAND = append_to_file" in second.out[:asked]


def test_continuous_limit_without_any_input(console, llm: ScriptedLLM) -> None:
    llm.script("execution_reply", *appends(4))
    r = console("--continuous", "--continuous-limit", "2", "count")

    assert r.code == EXIT_LIMIT, r.out + r.err
    assert r.prompts == 0
    assert "continuous (2 cycles)" in r.out
    assert "continuous limit reached" in r.out
    s = r.summary
    assert s["outcome"] == "paused" and int(s["cycles"]) == 2
    assert len(llm.requests_of("execution_reply")) == 2
    assert (r.workspace() / "log.txt").read_text() == "0\n1\n"


@pytest.mark.parametrize("store", ["sqlite"], indirect=True)  # the model choice is not the store's
@pytest.mark.parametrize(
    ("flag", "models"),
    [("--gpt3only", {"gpt-4o-mini"}), ("--gpt4only", {"gpt-4o"}), (None, {"gpt-4o", "gpt-4o-mini"})],
)
def test_gpt3only_and_gpt4only_choose_the_model(
    console, llm: ScriptedLLM, flag: str | None, models: set[str]
) -> None:
    llm.script("task_list", tasks_reply("one", "two"))
    llm.script(
        "execution_reply",
        agent_reply("write_to_file", {"filename": "m.txt", "text": "m"}),
        agent_reply("finish", {"reason": "done"}),
    )
    r = console(*([flag] if flag else []), "pick a model", stdin="y\ny\n")

    assert r.code == EXIT_FINISHED, r.out + r.err
    chat = [x for x in llm.requests if x.path.endswith("/chat/completions")]
    assert {x.kind for x in chat} == {"task_list", "execution_reply"}
    assert {x.body["model"] for x in chat} == models
    if flag is None:  # the default: tasks on FAST_LLM, commands on SMART_LLM
        assert {b["model"] for b in llm.requests_of("execution_reply")} == {"gpt-4o"}
        assert {b["model"] for b in llm.requests_of("task_list")} == {"gpt-4o-mini"}


def test_llm_failure_pauses_clearly_and_y_resumes(console, llm: ScriptedLLM) -> None:
    # LLM_MAX_RETRIES=1: two failed tries and the session pauses
    llm.script(
        "execution_reply",
        Error(500, "the model is on fire"),
        Error(500, "the model is on fire"),
        agent_reply("write_to_file", {"filename": "after.txt", "text": "resumed"}),
        agent_reply("finish", {"reason": "recovered"}),
    )
    r = console("survive an outage", stdin="y\ny\ny\n")

    assert r.code == EXIT_FINISHED, r.out + r.err
    paused = r.summaries()[0]
    assert paused["outcome"] == "paused"
    assert "the model is on fire" in paused["reason"] and "500" in paused["reason"]
    assert "Enter 'y' to resume the session, 'n' to stop it." in r.out
    assert r.out.index("Enter 'y' to resume") < r.out.index("NEXT ACTION: COMMAND = write_to_file")
    assert r.prompts == 3
    assert (r.workspace() / "after.txt").read_text() == "resumed"
    s = r.summary
    assert s["outcome"] == "finished" and int(s["cycles"]) == 2
    assert len(llm.requests_of("execution_reply")) == 4


# ---------------------------------------------------------------------------- launchers


@pytest.mark.parametrize("store", ["sqlite"], indirect=True)
def test_installed_console_script(console, llm: ScriptedLLM) -> None:
    assert CONSOLE_SCRIPT.is_file(), f"{CONSOLE_SCRIPT} is missing: pip install -e '.[test]'"
    llm.script(
        "execution_reply",
        agent_reply("write_to_file", {"filename": "hello.txt", "text": "hello"}),
        agent_reply("finish", {"reason": "said hello"}),
    )
    r = console("say hello", stdin="y\ny\n", cmd=[str(CONSOLE_SCRIPT)])

    assert r.code == EXIT_FINISHED, r.out + r.err
    assert "NEXT ACTION: COMMAND = write_to_file" in r.out
    assert (r.workspace() / "hello.txt").read_text() == "hello"
    s = r.summary
    assert s["outcome"] == "finished" and s["reason"] == "said hello" and int(s["cycles"]) == 2


@pytest.mark.parametrize("store", ["sqlite"], indirect=True)
def test_console_without_goals_asks_for_them(console, llm: ScriptedLLM) -> None:
    llm.script("execution_reply", agent_reply("finish", {"reason": "asked"}))
    r = console(stdin="Quizzer\nan AI that asks\nfirst goal\nsecond goal\n\ny\n")

    assert r.code == EXIT_FINISHED, r.out + r.err
    assert "Name your AI" in r.out and "Goal 3:" in r.out
    assert "Quizzer is an AI that asks" in r.out
    assert "  1. first goal\n  2. second goal" in r.out
    goals_prompt = json.dumps(llm.requests_of("execution_reply")[0]["messages"])
    assert "first goal" in goals_prompt and "second goal" in goals_prompt
    assert r.summary["outcome"] == "finished"


@pytest.mark.parametrize("store", ["sqlite"], indirect=True)
def test_budget_stop_reason_shows_the_budget_as_set(console, llm: ScriptedLLM) -> None:
    llm.script("execution_reply", *appends(10, "a.txt"))
    r = console("--continuous", "spend", extra_env={"SESSION_BUDGET_USD": "0.015", "MODEL_PRICES": PRICES})
    assert r.code == EXIT_LIMIT
    assert "spent of $0.015" in r.summary["reason"]


def test_the_resume_instruction_printed_on_a_pause_works(tmp_path: Path, llm: ScriptedLLM) -> None:
    llm.script("execution_reply", Error(500), Error(500), agent_reply("finish", {"reason": "back"}))
    env = clean_environ()
    env.update(
        OPENAI_API_KEY="sk-test-secret",
        OPENAI_BASE_URL=llm.base_url,
        DATA_DIR=str(tmp_path / "data"),
        LLM_MAX_RETRIES="1",
    )
    with subprocess.Popen(
        [sys.executable, "-m", "adapters.cli", "console", "an outage"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env=env,
    ) as proc:
        assert proc.stdout is not None
        watchdog = threading.Timer(60, proc.kill)  # never hang the suite on a blocked pipe
        watchdog.start()
        try:
            seen = ""
            while "Enter 'y' to resume the session" not in seen:  # the pause, asking for a line
                line = proc.stdout.readline()
                assert line, seen
                seen += line
            # what the screen says to type to resume (no instruction printed: plain `y` is the instruction)
            told = re.findall(r"Resume with: (.+?)(?:$|\.\s)", seen, re.MULTILINE)
            instruction = told[-1] if told else "y"
            assert proc.stdin is not None and proc.stderr is not None
            proc.stdin.write(instruction + "\ny\n")
            proc.stdin.close()
            # read through the same buffered file objects (communicate() would skip what they hold)
            out, err = seen + proc.stdout.read(), proc.stderr.read()
            proc.wait(timeout=60)
        finally:
            watchdog.cancel()
    assert "Traceback" not in out + err
    # the instruction resumed the session: the next proposal came, and `y` finished it
    assert proc.returncode == EXIT_FINISHED, out + err


@pytest.mark.parametrize("store", ["sqlite"])
def test_speak_saves_each_spoken_line_and_prints_where(console, llm: ScriptedLLM) -> None:
    """AutoGPT's --speak: each cycle's speak line (and the summary) is spoken with espeak-ng, saved
    in the workspace, and its path printed (played too where there is a terminal and a player)."""
    llm.script(
        "execution_reply",
        agent_reply("list_files", {"directory": "."}, speak="Let me look at the files"),
        agent_reply("finish", {"reason": "looked"}, speak="All done"),
    )
    r = console("--speak", "look at my files", stdin="y\ny\n")
    assert r.code == EXIT_FINISHED, r.out + r.err
    for name in ("step-1.wav", "step-2.wav", "summary.wav"):
        path = r.workspace() / "speech" / name
        assert path.read_bytes()[:4] == b"RIFF"
        assert str(path) in r.out
    assert "AutoGPT says: Let me look at the files" in r.out


@pytest.mark.parametrize("store", ["sqlite"])
def test_autogpts_other_commands_in_the_console(console, llm: ScriptedLLM) -> None:
    """generate_image (its path printed), clone_repository (the tree listed) and send_tweet (its id)
    against their local fakes, from the console as a user runs it."""
    from tests.fakes.github_api import FakeGitHub
    from tests.fakes.twitter_api import FakeTwitter

    keys = {"TW_CONSUMER_KEY": "ck", "TW_CONSUMER_SECRET": "cs", "TW_ACCESS_TOKEN": "at"}
    keys["TW_ACCESS_TOKEN_SECRET"] = "ats"
    with (
        FakeGitHub() as gh,
        FakeTwitter(consumer_key="ck", consumer_secret="cs", token="at", token_secret="ats") as x,
    ):
        gh.make_repo("acme/widgets", {"README.md": "# Widgets\n"})
        llm.script(
            "execution_reply",
            agent_reply("generate_image", {"prompt": "a red fox", "size": 256}),
            agent_reply("clone_repository", {"url": "acme/widgets", "clone_path": "widgets"}),
            agent_reply("send_tweet", {"tweet_text": "hello from the console"}),
            agent_reply("finish", {"reason": "done"}),
        )
        env = {**keys, "GITHUB_URL": gh.origin, "TWITTER_API_URL": x.base_url}
        r = console("draw, clone and tweet", stdin="y\ny\ny\ny\n", extra_env=env)
        assert r.code == EXIT_FINISHED, r.out + r.err
        image = r.workspace() / "images" / "a-red-fox-1.png"
        assert image.read_bytes().startswith(b"\x89PNG") and str(image) in r.out
        assert "README.md" in r.out and gh.heads["acme/widgets"][:12] in r.out
        assert [t.text for t in x.tweets] == ["hello from the console"]
        assert f"Tweeted: {x.tweets[0].id}" in r.out
