"""`autogpt-bot eval`: every challenge's checker proved both ways against the scripted LLM (a
transcript that solves it passes, one that does not fails), a tool that is off skips its
challenge with the tool's reason, the counts (repairs, re-asks, loop-guard pauses), and the
command itself run as a subprocess: 100 % and exit 0 with the solving transcripts, 0 % and exit 1
with the failing ones, 2 for a configuration error."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.evals.challenges import CHALLENGES, by_name, select
from bot.evals.report import EvalReport
from bot.evals.runner import run_challenge, run_eval, tool_off
from bot.evals.site import EvalSite
from bot.settings import Settings
from tests.conftest import make_settings
from tests.fakes.eval_transcripts import FAILING, SOLVING, Transcript, route
from tests.fakes.llm_server import Raw, ScriptedLLM, agent_reply
from tests.test_console_e2e import clean_environ

REPO = Path(__file__).resolve().parent.parent
BASIC = [c.name for c in select("basic")]
TOOLS = [c.name for c in select("tools")]


@pytest.fixture
async def site() -> AsyncIterator[EvalSite]:
    async with EvalSite() as s:
        yield s


def eval_settings(tmp_path: Path, llm: ScriptedLLM, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"audio_to_text_provider": "openai", "memory_backend": "local"}
    values.update(overrides)
    return make_settings(tmp_path, llm, **values)


def sandbox_settings(tmp_path: Path, llm: ScriptedLLM) -> Settings | None:
    """Settings with the execution tools on, when a sandbox works here (else None)."""
    s = eval_settings(tmp_path, llm, execute_local_commands=True)
    return s if tool_off("execute_python_code", s) is None else None


def test_the_suites_and_their_markers() -> None:
    assert BASIC == [
        "write_file",
        "sort_lines",
        "sum_numbers",
        "web_qa",
        "remember",
        "three_steps",
        "finish_when_done",
        "prompt_injection",
    ]
    assert TOOLS == ["code_execution", "image_generation", "speech_to_text", "github_issue"]
    assert [c.name for c in select("all")] == BASIC + TOOLS
    assert [c.name for c in select("basic", ["github_issue"])] == ["github_issue"]
    with pytest.raises(ValueError, match="unknown challenge nope"):
        select("basic", ["nope"])
    site = EvalSite(port=1234)
    goals = {c.name: " ".join(c.goals(site)) for c in CHALLENGES}
    for c in CHALLENGES:  # each marker is in its own goals and in no other challenge's
        assert [n for n, g in goals.items() if c.marker in g] == [c.name]
    assert set(SOLVING) == set(FAILING) == set(by_name())


@pytest.mark.parametrize("name", BASIC + TOOLS)
@pytest.mark.parametrize("way", ["solving", "failing"])
async def test_each_checker_both_ways(
    tmp_path: Path, llm: ScriptedLLM, site: EvalSite, name: str, way: str
) -> None:
    settings: Settings | None = eval_settings(tmp_path, llm)
    if name == "code_execution":
        settings = sandbox_settings(tmp_path, llm)
        if settings is None:
            pytest.skip("no sandbox works here for the execution tools")
    assert settings is not None
    transcript = (SOLVING if way == "solving" else FAILING)[name]
    route(llm, {name: transcript})
    result = await run_challenge(settings, by_name()[name], site, timeout_s=60)
    expected = "passed" if way == "solving" else "failed"
    assert result.status == expected, result.reasons
    assert (result.reasons == []) == (way == "solving")
    assert result.cycles >= 1 and result.llm_calls >= 1 and result.cost_usd > 0
    assert result.session_id is not None and llm.unscripted == []


async def test_the_failures_say_why(tmp_path: Path, llm: ScriptedLLM, site: EvalSite) -> None:
    route(llm, FAILING)
    settings = eval_settings(tmp_path, llm)
    why = {}
    for name in ("remember", "three_steps", "finish_when_done", "prompt_injection", "web_qa"):
        result = await run_challenge(settings, by_name()[name], site, timeout_s=60)
        why[name] = " / ".join(result.reasons)
        if name == "finish_when_done":
            assert result.loop_guard_pauses == 1 and result.state == "awaiting_approval"
    assert "instructions_1.txt was read 2 times" in why["remember"]
    assert (
        "written out of order: one.txt at step 2, two.txt at step 3, three.txt at step 1"
        in why["three_steps"]
    )
    assert "the loop guard paused it" in why["finish_when_done"]
    assert "it did not finish: it was left waiting for a human" in why["finish_when_done"]
    assert "notes.txt was deleted or changed" in why["prompt_injection"]
    assert "hacked.txt was written" in why["prompt_injection"]
    assert "lighthouse was first lit in 1873" in why["web_qa"]


async def test_a_tool_that_is_off_skips_its_challenge_with_its_reason(
    tmp_path: Path, llm: ScriptedLLM, site: EvalSite
) -> None:
    settings = eval_settings(
        tmp_path, llm, execute_local_commands=False, audio_to_text_provider="huggingface"
    )
    for name, why in (
        ("code_execution", "execute_python_code is off: EXECUTE_LOCAL_COMMANDS is off"),
        ("speech_to_text", "read_audio_from_file is off: AUDIO_TO_TEXT_PROVIDER=huggingface needs"),
    ):
        result = await run_challenge(settings, by_name()[name], site)
        assert result.status == "skipped"
        assert result.reasons[0].startswith(why)
    assert llm.requests == []  # nothing was asked of the LLM


async def test_repairs_and_re_asks_are_counted(tmp_path: Path, llm: ScriptedLLM, site: EvalSite) -> None:
    route(llm, {"write_file": SOLVING["write_file"]})
    good = json.dumps(agent_reply("write_to_file", {"filename": "capital.txt", "text": "x"}))
    # the first proposal is broken JSON that json-repair fixes (a repair); the next is not JSON at
    # all (asked again: a re-ask), and the answer to the re-ask comes from the transcript
    llm.script("execution_reply", Raw(good[:-2]), Raw("I will write the file now."))
    report = await run_eval(eval_settings(tmp_path, llm), [by_name()["write_file"]], timeout_s=60)
    run = report.runs[0]
    assert run.status == "passed", run.reasons
    assert (run.repairs, run.re_asks, run.invalid_commands) == (1, 1, 0)
    assert run.cycles == 3  # three proposals, one of them asked twice: four execution requests
    assert len(llm.requests_of("execution_reply")) == 4
    chat = [x for x in llm.requests if x.kind != "embeddings"]
    assert run.llm_calls == len(chat)  # the task list's requests too


def run_cli(
    tmp_path: Path, llm: ScriptedLLM, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environ = clean_environ()
    environ.update(
        OPENAI_API_KEY="sk-test-secret",
        OPENAI_BASE_URL=llm.base_url,
        LLM_MAX_RETRIES="1",
        LLM_TIMEOUT="10",
        SMART_LLM="gpt-4o",
        FAST_LLM="gpt-4o-mini",
        DATA_DIR=str(tmp_path / "data"),
    )
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "adapters.cli", "eval", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=environ,
    )


@pytest.mark.parametrize("way", ["solving", "failing"])
def test_the_basic_suite_as_a_subprocess(tmp_path: Path, llm: ScriptedLLM, way: str) -> None:
    transcripts: dict[str, Transcript] = SOLVING if way == "solving" else FAILING
    route(llm, transcripts)
    out = tmp_path / "report.json"
    proc = run_cli(tmp_path, llm, "--suite", "basic", "--json", str(out))
    assert "Traceback" not in proc.stderr, proc.stderr
    report = EvalReport.model_validate_json(out.read_text())
    assert [c.name for c in report.challenges] == BASIC
    lines = proc.stdout.splitlines()
    assert (
        lines[0].split() == "CHALLENGE PASS CYCLES LLM CALLS TOKENS COST TIME REPAIRS RE-ASKS LOOPS".split()
    )
    total = next(line for line in lines if line.startswith("TOTAL"))
    assert "\x1b" not in proc.stdout  # no progress line: stdout is not a terminal
    assert f"JSON report: {out}" in proc.stdout
    if way == "solving":
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert report.totals.pass_rate == 1.0 and report.totals.passed == 8
        assert total.split()[1:3] == ["8/8", "100%"]
        assert "failed" not in proc.stdout
    else:
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert report.totals.pass_rate == 0.0 and report.totals.failed == 8
        assert total.split()[1:3] == ["0/8", "0%"]
        assert "finish_when_done failed: the loop guard paused it" in proc.stdout
    assert report.totals.llm_calls > 0 and report.totals.cost_usd > 0 and report.totals.cycles > 0
    assert report.model.endpoint == llm.base_url
    print(proc.stdout)


def test_configuration_errors_exit_2(tmp_path: Path, llm: ScriptedLLM) -> None:
    proc = run_cli(tmp_path, llm, "--only", "nope")
    assert proc.returncode == 2 and "unknown challenge nope" in proc.stderr
    proc = run_cli(tmp_path, llm, "--repeat", "0")
    assert proc.returncode == 2 and "--repeat must be at least 1" in proc.stderr
    proc = run_cli(tmp_path, llm, env={"OPENAI_API_KEY": "", "OPENAI_BASE_URL": ""})
    assert proc.returncode == 2 and "no LLM is configured" in proc.stderr
    assert llm.requests == []
