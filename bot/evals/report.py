"""What an eval found: each run's result, each challenge's summary over its repeats, the totals
(pydantic models: the JSON report, `--json FILE`), and the same as a table for the terminal."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from bot.models import utcnow

Status = Literal["passed", "failed", "skipped", "error"]

EXIT_PASSED = 0  # every challenge that ran passed in every run (skipped ones do not count)
EXIT_FAILED = 1  # some run failed (or could not be run)
EXIT_CONFIG = 2  # a usage or configuration error: nothing was run


class Counts(BaseModel):
    """What runs cost and how they went. `repairs`: replies that were broken JSON, used after
    json-repair fixed them; `re_asks`: replies that could not be used and were asked again (one
    per re-ask); `invalid_commands`: proposals of an unknown command or bad arguments (the engine
    told the agent, in the step's notes); `loop_guard_pauses`: steps the loop guard held for a
    human (the same command three times in a row)."""

    cycles: float = 0
    llm_calls: float = 0
    prompt_tokens: float = 0
    completion_tokens: float = 0
    cost_usd: float = 0.0
    seconds: float = 0.0
    repairs: float = 0
    re_asks: float = 0
    invalid_commands: float = 0
    loop_guard_pauses: float = 0

    @property
    def tokens(self) -> float:
        return self.prompt_tokens + self.completion_tokens


class RunResult(Counts):
    """One run of one challenge. `state`/`reason`: how the session stood when the agent stopped
    (before the eval stopped it, when it was left waiting or paused)."""

    challenge: str
    suite: str
    run: int
    status: Status
    reasons: list[str] = Field(default_factory=list)  # why it failed, or why it was skipped
    session_id: str | None = None
    state: str | None = None
    reason: str | None = None


class ChallengeSummary(Counts):
    """A challenge over its runs: pass rate, and the mean of each count per run."""

    name: str
    suite: str
    description: str
    runs: int = 0
    passed: int = 0
    pass_rate: float | None = None  # None: skipped
    skipped: str | None = None


class Totals(Counts):
    """Every run added up (sums, not means)."""

    challenges: int = 0
    runs: int = 0
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    pass_rate: float | None = None


class ModelInfo(BaseModel):
    smart_llm: str
    fast_llm: str
    endpoint: str


class EvalReport(BaseModel):
    started_at: datetime = Field(default_factory=utcnow)
    suite: str
    repeat: int
    model: ModelInfo
    challenges: list[ChallengeSummary] = Field(default_factory=list)
    runs: list[RunResult] = Field(default_factory=list)
    totals: Totals = Field(default_factory=Totals)

    @property
    def exit_code(self) -> int:
        return EXIT_FAILED if self.totals.failed else EXIT_PASSED


COUNTED = tuple(Counts.model_fields)


def summarise(
    report: EvalReport, order: Sequence[tuple[str, str, str]], runs: Sequence[RunResult]
) -> EvalReport:
    """Fill the report's summaries and totals from `runs`; `order`: (name, suite, description)
    of each challenge, in the order they ran."""
    report.runs = list(runs)
    summaries = []
    for name, suite, description in order:
        mine = [r for r in runs if r.challenge == name]
        ran = [r for r in mine if r.status != "skipped"]
        summary = ChallengeSummary(name=name, suite=suite, description=description, runs=len(ran))
        if not ran:
            summary.skipped = "; ".join(mine[0].reasons) if mine else "not run"
        else:
            summary.passed = sum(r.status == "passed" for r in ran)
            summary.pass_rate = summary.passed / len(ran)
            for key in COUNTED:
                setattr(summary, key, sum(getattr(r, key) for r in ran) / len(ran))
        summaries.append(summary)
    report.challenges = summaries
    ran = [r for r in runs if r.status != "skipped"]
    totals = Totals(
        challenges=len(order),
        runs=len(ran),
        passed=sum(r.status == "passed" for r in ran),
        failed=sum(r.status in ("failed", "error") for r in ran),
        skipped=sum(1 for s in summaries if s.skipped is not None),
        pass_rate=(sum(r.status == "passed" for r in ran) / len(ran)) if ran else None,
    )
    for key in COUNTED:
        setattr(totals, key, sum(getattr(r, key) for r in ran))
    report.totals = totals
    return report


# ---------------------------------------------------------------------------- the table

HEADERS = (
    "CHALLENGE",
    "PASS",
    "CYCLES",
    "LLM CALLS",
    "TOKENS",
    "COST",
    "TIME",
    "REPAIRS",
    "RE-ASKS",
    "LOOPS",
)


def _num(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def _rate(passed: int, runs: int, rate: float | None) -> str:
    return f"{passed}/{runs} {rate * 100:.0f}%" if rate is not None else "-"


def _cells(name: str, passed: str, c: Counts) -> tuple[str, ...]:
    return (
        name,
        passed,
        _num(c.cycles),
        _num(c.llm_calls),
        _num(c.tokens),
        f"${c.cost_usd:.4f}",
        f"{c.seconds:.1f}s",
        _num(c.repairs),
        _num(c.re_asks),
        _num(c.loop_guard_pauses),
    )


def table(report: EvalReport) -> str:
    """The report as a fixed-width table: a row per challenge (the mean of its runs), skipped ones
    with their reason, and the totals (sums over every run)."""
    rows: list[tuple[str, ...]] = [HEADERS]
    skipped: list[tuple[str, str]] = []
    for s in report.challenges:
        if s.skipped is not None:
            skipped.append((s.name, s.skipped))
            continue
        rows.append(_cells(s.name, _rate(s.passed, s.runs, s.pass_rate), s))
    t = report.totals
    rows.append(_cells("TOTAL", _rate(t.passed, t.runs, t.pass_rate), t))
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADERS))]

    def line(r: tuple[str, ...]) -> str:
        cells = [r[0].ljust(widths[0]), r[1].ljust(widths[1])]
        cells += [c.rjust(w) for c, w in zip(r[2:], widths[2:], strict=True)]
        return "  ".join(cells).rstrip()

    out = [line(rows[0])]
    out += [line(r) for r in rows[1:-1]]
    out.append("-" * len(line(rows[-1])))
    out.append(line(rows[-1]))
    for name, why in skipped:
        out.append(f"{name}: skipped ({why})")
    failed = [r for r in report.runs if r.status in ("failed", "error")]
    for r in failed:
        run = f" run {r.run}" if report.repeat > 1 else ""
        out.append(f"{r.challenge}{run} failed: {'; '.join(r.reasons) or r.status}")
    m = report.model
    out.append(
        f"Model: SMART_LLM={m.smart_llm}, FAST_LLM={m.fast_llm} at {m.endpoint}. Rows: the mean per run "
        f"({report.repeat} run{'s' if report.repeat != 1 else ''} each); TOTAL: the sum of all runs."
    )
    return "\n".join(out)
