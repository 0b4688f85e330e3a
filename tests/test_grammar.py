"""The shared command grammar: every command, its variants and its errors."""

from __future__ import annotations

from typing import get_args

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from bot.grammar import (
    MAX_GOALS,
    SESSION_ID_ALPHABET,
    SESSION_ID_RE,
    USAGE,
    VERBS,
    AllowCommand,
    ApproveCommand,
    Command,
    CommandAdapter,
    FeedbackCommand,
    FileCommand,
    FilesCommand,
    GoalCommand,
    HelpCommand,
    ListCommand,
    PauseCommand,
    ProfileCommand,
    ResumeCommand,
    ScheduleChangeCommand,
    ScheduleCommand,
    SchedulesCommand,
    StatusCommand,
    StopCommand,
    TemplateCommand,
    TemplatesCommand,
    UsageCommand,
    UsageError,
    help_text,
    new_session_id,
    normalize_session_id,
    parse,
)

COMMAND_TYPES = tuple(get_args(get_args(Command)[0]))


def goal(*goals: str, **fields: object) -> GoalCommand:
    return GoalCommand(goals=list(goals), **fields)  # type: ignore[arg-type]


def error_of(text: str, **kwargs: int) -> UsageError:
    with pytest.raises(UsageError) as info:
        parse(text, **kwargs)
    return info.value


# --- valid commands ----------------------------------------------------------------------------

VALID: list[tuple[str, Command]] = [
    # help
    ("", HelpCommand()),
    ("   \n\t ", HelpCommand()),
    ("help", HelpCommand()),
    ("HELP", HelpCommand()),
    ("help goal", HelpCommand(topic="goal")),
    ("help   Approve ", HelpCommand(topic="approve")),
    # list
    ("list", ListCommand()),
    ("  LIST  ", ListCommand()),
    # status
    ("status", StatusCommand()),
    ("status k3f9qa", StatusCommand(session_id="k3f9qa")),
    ("Status #K3F9QA", StatusCommand(session_id="k3f9qa")),
    ("status 123456", StatusCommand(session_id="123456")),
    # stop
    ("stop k3f9qa", StopCommand(session_id="k3f9qa")),
    ("STOP #ab12cd", StopCommand(session_id="ab12cd")),
    ("stop\nab12cd\n", StopCommand(session_id="ab12cd")),
    # approve
    ("approve k3f9qa", ApproveCommand(session_id="k3f9qa")),
    ("approve k3f9qa 1", ApproveCommand(session_id="k3f9qa", count=1)),
    ("approve #k3f9qa 5", ApproveCommand(session_id="k3f9qa", count=5)),
    ("Approve K3F9QA 007", ApproveCommand(session_id="k3f9qa", count=7)),
    # feedback
    ("feedback k3f9qa use the docs", FeedbackCommand(session_id="k3f9qa", text="use the docs")),
    ("feedback #k3f9qa   don't do that  ", FeedbackCommand(session_id="k3f9qa", text="don't do that")),
    (
        "FEEDBACK k3f9qa first line\nsecond; line",
        FeedbackCommand(session_id="k3f9qa", text="first line\nsecond; line"),
    ),
    ('feedback k3f9qa say "hi"', FeedbackCommand(session_id="k3f9qa", text='say "hi"')),
    # goal: plain, split by ; and newlines, apostrophes, bullets
    ("goal research X", goal("research X")),
    ("GOAL research X", goal("research X")),
    ("goal research X; write a summary", goal("research X", "write a summary")),
    ("goal a;b;;  ; c ;", goal("a", "b", "c")),
    ("goal\nresearch X\nwrite Y\n", goal("research X", "write Y")),
    ("goal research X\r\nwrite Y", goal("research X", "write Y")),
    ("goal don't stop; it's Bob's job", goal("don't stop", "it's Bob's job")),
    ('goal find the "best" CRM', goal('find the "best" CRM')),
    ("goal a; b; c; d; e", goal("a", "b", "c", "d", "e")),
    ("goal\n- research X\n- write Y", goal("research X", "write Y")),
    ("goal\n1. research X\n2) write Y\n• ship it", goal("research X", "write Y", "ship it")),
    ("goal -5 degrees is cold", goal("-5 degrees is cold")),
    ("goal -- --weird goal", goal("--weird goal")),
    ("goal — an em dash opener", goal("— an em dash opener")),
    # --continuous
    ("goal --continuous research X", goal("research X", continuous=True)),
    ("goal --continuous 10 research X", goal("research X", continuous=True, continuous_limit=10)),
    ("goal --continuous=3 research X", goal("research X", continuous=True, continuous_limit=3)),
    ("goal --continuous 3ways to win", goal("3ways to win", continuous=True)),
    ("goal --continuous\n5\nresearch X", goal("research X", continuous=True, continuous_limit=5)),
    ("goal --CONTINUOUS research X", goal("research X", continuous=True)),
    ("goal —continuous 2 research X", goal("research X", continuous=True, continuous_limit=2)),
    # --name / --role, quoted, curly, =, any order
    ("goal --name Scout research X", goal("research X", ai_name="Scout")),
    ('goal --name "Scout Bot" research X', goal("research X", ai_name="Scout Bot")),
    ("goal --name 'Scout Bot' research X", goal("research X", ai_name="Scout Bot")),
    ("goal --name “Scout Bot” research X", goal("research X", ai_name="Scout Bot")),
    ("goal --name ‘Scout Bot’ research X", goal("research X", ai_name="Scout Bot")),
    ('goal --name “Scout Bot" research X', goal("research X", ai_name="Scout Bot")),
    ("goal --name O'Brien research X", goal("research X", ai_name="O'Brien")),
    ("goal --name=Scout research X", goal("research X", ai_name="Scout")),
    ('goal --name="Scout Bot" research X', goal("research X", ai_name="Scout Bot")),
    ("goal --role=“a careful analyst” research X", goal("research X", ai_role="a careful analyst")),
    ("goal --role analyst research X", goal("research X", ai_role="analyst")),
    ("goal —name “Scout” research X", goal("research X", ai_name="Scout")),
    (
        'goal --continuous 5 --name "Scout Bot" --role "an analyst" research X; write Y',
        goal(
            "research X",
            "write Y",
            continuous=True,
            continuous_limit=5,
            ai_name="Scout Bot",
            ai_role="an analyst",
        ),
    ),
    (
        'goal --role "an analyst" --continuous --name Scout research X',
        goal("research X", continuous=True, ai_name="Scout", ai_role="an analyst"),
    ),
    (
        "goal --name=Scout --continuous=2 --role='an analyst' research X",
        goal("research X", continuous=True, continuous_limit=2, ai_name="Scout", ai_role="an analyst"),
    ),
    (
        'goal --name "Scout" --continuous 7\n- research X\n- write Y',
        goal("research X", "write Y", continuous=True, continuous_limit=7, ai_name="Scout"),
    ),
    # flags after the goals are goal text
    ("goal research X --continuous", goal("research X --continuous")),
    # invisible and control characters are dropped
    ("\ufeffstop\u200b k3f9qa\x00", StopCommand(session_id="k3f9qa")),
    ("goal a\u00a0b", goal("a\u00a0b")),
]


@pytest.mark.parametrize(("text", "expected"), VALID)
def test_parse_valid(text: str, expected: Command) -> None:
    assert parse(text) == expected


# --- errors ------------------------------------------------------------------------------------

INVALID: list[tuple[str, str]] = [
    # unknown verb
    ("xyz", "Unknown command 'xyz'."),
    ("Hello there", "Unknown command 'Hello'."),
    ("autogpt goal research X", "Unknown command 'autogpt'."),
    ("/autogpt list", "Unknown command '/autogpt'."),
    # goal count
    ("goal", "at least one goal"),
    ("goal   ;  ;\n", "at least one goal"),
    ("goal --continuous 5", "at least one goal"),
    ("goal --name Scout", "at least one goal"),
    ("goal a; b; c; d; e; f", "6 goals"),
    ("goal a\nb\nc\nd\ne\nf\ng", "7 goals"),
    # goal flags
    ("goal --verbose research X", "'--verbose'"),
    ("goal --continuous --fast research X", "'--fast'"),
    ("goal --continuous 0 research X", "at least 1"),
    ("goal --continuous=0 research X", "at least 1"),
    ("goal --continuous=abc research X", "'abc'"),
    ("goal --continuous= research X", "--continuous= needs a number"),
    ("goal --continuous 99999999999 research X", "too large"),
    ("goal --name", "--name needs a value"),
    ("goal --name= research X", "--name needs a value"),
    ('goal --name "" research X', "--name needs a value"),
    ("goal --name --role x research X", "--name needs a value"),
    ("goal --role", "--role needs a value"),
    ('goal --name "Scout research X', "never closed"),
    ("goal --name “Scout research X", "never closed"),
    ("goal --name a --name b research X", "--name was given twice"),
    ("goal --continuous --continuous research X", "--continuous was given twice"),
    ("goal --name " + "n" * 81 + " research X", "limit is 80"),
    # ids
    ("stop", "stop needs a session id"),
    ("stop abc", "'abc' is not a session id (6 letters and digits, e.g. k3f9qa)"),
    ("stop abc1234", "'abc1234' is not a session id"),
    ("stop ab-12c", "'ab-12c' is not a session id"),
    ("stop ##ab12cd", "'##ab12cd' is not a session id"),
    ("stop k3f9qa now", "Unexpected 'now'"),
    ("status k3f9q", "'k3f9q' is not a session id"),
    ("status k3f9qa extra", "Unexpected 'extra'"),
    ("approve", "approve needs a session id"),
    ("approve 5", "'5' is not a session id"),
    ("approve 5 k3f9qa", "'5' is not a session id"),
    ("feedback", "feedback needs a session id"),
    ("feedback hello there", "'hello' is not a session id"),
    # approve N
    ("approve k3f9qa 0", "at least 1"),
    ("approve k3f9qa -1", "'-1'"),
    ("approve k3f9qa 2.5", "'2.5'"),
    ("approve k3f9qa two", "'two'"),
    ("approve k3f9qa 99999999999", "too large"),
    ("approve k3f9qa 3 4", "Unexpected '4'"),
    # feedback text
    ("feedback k3f9qa", "feedback needs text"),
    ("feedback k3f9qa    \n ", "feedback needs text"),
    # list takes nothing
    ("list all", "Unexpected 'all'"),
]


@pytest.mark.parametrize(("text", "fragment"), INVALID)
def test_parse_invalid(text: str, fragment: str) -> None:
    error = error_of(text)
    assert fragment in error.message
    assert str(error) == error.message
    assert error.usage == USAGE
    assert isinstance(error, ValueError)


def test_unknown_verb_message_is_exact() -> None:
    assert error_of("xyz foo bar").message == "Unknown command 'xyz'."


def test_bad_id_message_is_exact() -> None:
    assert error_of("stop xyz").message == "'xyz' is not a session id (6 letters and digits, e.g. k3f9qa)"


def test_command_errors_carry_that_commands_syntax() -> None:
    assert "Usage: approve ID [N]" in error_of("approve k3f9qa 0").message
    assert "Usage: goal [--continuous [N]]" in error_of("goal --bogus x").message


def test_unknown_flag_is_named() -> None:
    message = error_of("goal --contnuous research X").message
    assert "'--contnuous'" in message
    assert "--continuous" in message  # the valid options are listed


def test_long_values_are_shortened_in_messages() -> None:
    message = error_of("x" * 10_000).message
    assert len(message) < 100


# --- goal size limit ---------------------------------------------------------------------------


def test_goal_text_at_the_limit_is_accepted() -> None:
    assert parse("goal " + "a" * 4000) == goal("a" * 4000)


def test_goal_text_over_the_limit_says_limit_and_length() -> None:
    message = error_of("goal " + "a" * 4001).message
    assert "4,000" in message
    assert "4,001" in message


def test_goal_limit_counts_all_goals_together() -> None:
    text = "goal " + "; ".join(["b" * 900] * 5)  # 4,508 characters
    message = error_of(text).message
    assert "4,508" in message


def test_custom_goal_limit() -> None:
    assert parse("goal short", max_goal_chars=5) == goal("short")
    message = error_of("goal longer", max_goal_chars=5).message
    assert "limit is 5" in message
    assert "6 characters" in message


# --- session ids -------------------------------------------------------------------------------


def test_new_session_ids_are_typable_and_valid() -> None:
    ids = {new_session_id() for _ in range(500)}
    assert len(ids) > 490
    for session_id in ids:
        assert SESSION_ID_RE.fullmatch(session_id)
        assert set(session_id) <= set(SESSION_ID_ALPHABET)
        assert parse(f"stop {session_id}") == StopCommand(session_id=session_id)


def test_alphabet_has_no_ambiguous_characters() -> None:
    assert not set("01ilo") & set(SESSION_ID_ALPHABET)
    assert all(SESSION_ID_RE.fullmatch(c * 6) for c in SESSION_ID_ALPHABET)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("k3f9qa", "k3f9qa"),
        ("#K3F9QA", "k3f9qa"),
        ("  ab12cd ", "ab12cd"),
        ("ab12c", None),
        ("ab12cde", None),
        ("ab_12c", None),
        ("", None),
        ("#", None),
        ("k3f9qa\n", "k3f9qa"),
    ],
)
def test_normalize_session_id(text: str, expected: str | None) -> None:
    assert normalize_session_id(text) == expected


# --- models ------------------------------------------------------------------------------------


def test_commands_are_frozen() -> None:
    command = parse("stop k3f9qa")
    with pytest.raises(ValidationError):
        command.session_id = "zzzzzz"  # type: ignore[misc]


def test_models_validate_their_fields() -> None:
    with pytest.raises(ValidationError):
        GoalCommand(goals=[])
    with pytest.raises(ValidationError):
        GoalCommand(goals=["a"] * (MAX_GOALS + 1))
    with pytest.raises(ValidationError):
        ApproveCommand(session_id="k3f9qa", count=0)
    with pytest.raises(ValidationError):
        StopCommand(session_id="nope")


@pytest.mark.parametrize("text", [text for text, _ in VALID])
def test_commands_round_trip_through_the_union(text: str) -> None:
    command = parse(text)
    assert CommandAdapter.validate_json(CommandAdapter.dump_json(command)) == command
    assert CommandAdapter.validate_python(command.model_dump()) == command


def test_discriminator_picks_the_model() -> None:
    assert isinstance(CommandAdapter.validate_python({"kind": "list"}), ListCommand)
    assert CommandAdapter.validate_python({"kind": "approve", "session_id": "k3f9qa", "count": 2}) == (
        ApproveCommand(session_id="k3f9qa", count=2)
    )


# --- usage -------------------------------------------------------------------------------------


def test_usage_lists_every_command_and_is_short() -> None:
    assert len(USAGE) < 2000  # Slack shows it in one section (3,000 characters)
    for verb in VERBS:
        assert any(line.startswith(verb) for line in USAGE.splitlines()), verb
    assert "approve ID [N]" in USAGE
    assert "next N steps" in USAGE
    assert "skip the proposed command" in USAGE
    assert "e.g." in USAGE
    for platform in ("slack", "discord", "console"):
        assert platform not in USAGE.lower()


def test_verbs() -> None:
    assert VERBS == {
        "goal",
        "status",
        "list",
        "stop",
        "approve",
        "allow",
        "feedback",
        "files",
        "file",
        "help",
        "pause",
        "resume",
        "schedule",
        "schedules",
        "unschedule",
        "pause-schedule",
        "resume-schedule",
        "usage",
        "profile",
        "template",
        "templates",
        "goals",
        "retry",
        "fork",
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("allow k3f9qa", AllowCommand(session_id="k3f9qa")),
        ("ALLOW #K3F9QA web_search", AllowCommand(session_id="k3f9qa", tool="web_search")),
    ],
)
def test_allow(text: str, expected: AllowCommand) -> None:
    assert parse(text) == expected


@pytest.mark.parametrize("text", ["allow", "allow nope", "allow k3f9qa web_search extra"])
def test_allow_needs_a_session_and_at_most_one_command(text: str) -> None:
    with pytest.raises(UsageError):
        parse(text)


def test_help_text() -> None:
    assert help_text(None) == USAGE
    assert help_text("nonsense") == USAGE
    assert help_text("Approve").startswith("approve ID [N]")


def test_usage_examples_parse() -> None:
    examples = [line.strip().removeprefix("e.g. ") for line in USAGE.splitlines() if "e.g. " in line]
    examples = [e for e in examples if e.split()[0] in VERBS]
    assert len(examples) >= 6
    for example in examples:
        assert isinstance(parse(example), COMMAND_TYPES), example


# --- properties --------------------------------------------------------------------------------

_tricky = st.sampled_from(
    [
        "goal",
        "status",
        "list",
        "stop",
        "approve",
        "allow",
        "feedback",
        "help",
        "GOAL",
        "--continuous",
        "--continuous=",
        "--name",
        "--name=",
        "--role=",
        "--",
        "—name",
        '"',
        "'",
        "“",
        "”",
        "‘",
        "’",
        "«",
        ";",
        "\n",
        "\r",
        "\x00",
        "\x85",
        "\u2028",
        "#",
        "k3f9qa",
        "#K3F9QA",
        "0",
        "5",
        "99999999999999999999",
        "0" * 5000,
        " ",
        "\t",
        "\u00a0",
        "\u200b",
    ]
)
_texts = st.one_of(
    st.text(),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=300),
    st.lists(st.one_of(_tricky, st.text(max_size=8)), max_size=20).map(" ".join),
    st.lists(st.one_of(_tricky, st.text(max_size=8)), max_size=20).map("".join),
)


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=_texts, max_goal_chars=st.integers(min_value=0, max_value=5000))
def test_parse_returns_a_command_or_raises_usage_error(text: str, max_goal_chars: int) -> None:
    try:
        command = parse(text, max_goal_chars=max_goal_chars)
    except UsageError as error:
        assert error.message
        assert str(error) == error.message
        assert error.usage == USAGE
        return
    assert isinstance(command, COMMAND_TYPES)
    if isinstance(command, GoalCommand):
        assert 1 <= len(command.goals) <= MAX_GOALS
        assert all(g and g == g.strip() for g in command.goals)


@settings(max_examples=30, deadline=None)
@given(chunk=st.one_of(st.text(min_size=1, max_size=50), _tricky), times=st.integers(400, 2000))
def test_parse_handles_very_long_text(chunk: str, times: int) -> None:
    text = chunk * times
    for prefix in ("", "goal ", "goal --name ", "feedback k3f9qa ", "help "):
        try:
            parse(prefix + text)
        except UsageError:
            pass


_goal_text = (
    st.text(
        alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp"), blacklist_characters=";"),
        min_size=1,
        max_size=40,
    )
    .map(str.strip)
    .filter(lambda s: s and not s.startswith(("-", "—", "–", "*", "•", "·", "‣", "◦")))
)


@settings(max_examples=300, deadline=None)
@given(goals=st.lists(_goal_text, min_size=1, max_size=MAX_GOALS), sep=st.sampled_from(["; ", ";", "\n"]))
def test_goals_survive_verbatim(goals: list[str], sep: str) -> None:
    goals = [g for g in goals if not g[:1].isdigit() and "\u200b" not in g and "\ufeff" not in g]
    goals = [g for g in goals if "\u2060" not in g and g.strip() == g]
    if not goals:
        return
    command = parse("goal " + sep.join(goals))
    assert command == GoalCommand(goals=goals)


@settings(max_examples=200, deadline=None)
@given(count=st.integers(min_value=1, max_value=1_000_000))
def test_any_positive_count_parses(count: int) -> None:
    session_id = new_session_id()
    assert parse(f"approve {session_id} {count}") == ApproveCommand(session_id=session_id, count=count)
    assert parse(f"goal --continuous {count} x").continuous_limit == count  # type: ignore[union-attr]


def test_an_unexpected_bug_still_surfaces_as_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from bot import grammar

    def broken(cur: object, ctx: object) -> Command:
        raise KeyError("bug")

    monkeypatch.setitem(grammar._VERBS, "list", grammar._Verb(broken, "list", "list the active sessions"))
    error = error_of("list")
    assert isinstance(error.__cause__, KeyError)


def test_non_text_input_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        parse(None)  # type: ignore[arg-type]


# --- continuous control and schedules ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("pause K3F9QA", PauseCommand(session_id="k3f9qa")),
        ("resume k3f9qa", ResumeCommand(session_id="k3f9qa")),
        ("resume k3f9qa --continuous", ResumeCommand(session_id="k3f9qa", continuous=True)),
        (
            "resume k3f9qa --continuous 7",
            ResumeCommand(session_id="k3f9qa", continuous=True, continuous_limit=7),
        ),
        (
            "resume k3f9qa --continuous=3",
            ResumeCommand(session_id="k3f9qa", continuous=True, continuous_limit=3),
        ),
        (
            'schedule "0 9 * * 1-5" summarise the news; post it',
            ScheduleCommand(when="0 9 * * 1-5", goals=["summarise the news", "post it"]),
        ),
        (
            "schedule --tz Europe/Paris --name Digest “every day at 09:00” don't forget",
            ScheduleCommand(
                when="every day at 09:00", tz="Europe/Paris", ai_name="Digest", goals=["don't forget"]
            ),
        ),
        ("schedules", SchedulesCommand()),
        ("unschedule k3f9qa", ScheduleChangeCommand(action="unschedule", schedule_id="k3f9qa")),
        ("pause-schedule k3f9qa", ScheduleChangeCommand(action="pause", schedule_id="k3f9qa")),
        ("RESUME-SCHEDULE #k3f9qa", ScheduleChangeCommand(action="resume", schedule_id="k3f9qa")),
    ],
)
def test_schedule_and_continuous_commands(text: str, expected: object) -> None:
    assert parse(text) == expected


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("schedule every 2h do it", "Put the time in quotes"),
        ('schedule "every 2h"', "Give the goal to run after the time"),
        ('schedule "" x', "The time is empty"),
        ('schedule --when "x" y', "Unknown option"),
        ("resume k3f9qa --forever", "Unexpected"),
        ("resume k3f9qa --continuous 0", "at least 1"),
        ("pause", "needs a session id"),
        ("unschedule nope!", "is not a session id"),
        ("schedules now", "Unexpected"),
    ],
)
def test_schedule_and_continuous_errors(text: str, needle: str) -> None:
    with pytest.raises(UsageError) as err:
        parse(text)
    assert needle in err.value.message


# --- files and --speak --------------------------------------------------------------------------


def test_speak_flag_and_file_commands() -> None:
    assert parse("goal --speak write a poem") == GoalCommand(goals=["write a poem"], speak=True)
    assert parse("goal --continuous 3 --speak write a poem").speak is True  # type: ignore[union-attr]
    assert parse("goal write a poem").speak is False  # type: ignore[union-attr]
    with pytest.raises(UsageError, match="takes no value"):
        parse("goal --speak=yes write")
    assert parse("files #K3F9QA") == FilesCommand(session_id="k3f9qa")
    named = FileCommand(session_id="k3f9qa", name="images/a cat.png")
    assert parse('file k3f9qa "images/a cat.png"') == named
    with pytest.raises(UsageError, match="file's name"):
        parse("file k3f9qa")
    with pytest.raises(UsageError, match="Unexpected"):
        parse("files k3f9qa extra")


# --- usage, profile, template --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("usage", UsageCommand()),
        ("USAGE --days 7", UsageCommand(days=7)),
        ("usage --user U012AB3CD", UsageCommand(user="U012AB3CD")),
        ("usage --user=<@U012AB3CD|alice> --days=90", UsageCommand(user="U012AB3CD", days=90)),
        ("usage --user <@!200000000000000001>", UsageCommand(user="200000000000000001")),
        ("usage --channel <#C1|general>", UsageCommand(channel="C1")),
        ("usage --channel #C1 --user U2", UsageCommand(channel="C1", user="U2")),
        ("usage --channel here", UsageCommand(here=True)),
        ("profile", ProfileCommand()),
        ("profile show", ProfileCommand()),
        (
            "profile set budget 0.50",
            ProfileCommand(action="set", field="budget_usd", key="budget", value="0.50"),
        ),
        ("profile set NAME Poet", ProfileCommand(action="set", field="ai_name", key="name", value="Poet")),
        (
            'profile set role "a careful poet"',
            ProfileCommand(action="set", field="ai_role", key="role", value="a careful poet"),
        ),
        (
            "profile set tool-policy web_search=allow, *=ask",
            ProfileCommand(
                action="set", field="tool_policy", key="tool_policy", value="web_search=allow, *=ask"
            ),
        ),
        ("profile unset smart", ProfileCommand(action="unset", field="smart_llm", key="smart")),
        ("template save weekly", TemplateCommand(action="save", name="weekly")),
        (
            "template save Weekly-Report #K3F9QA",
            TemplateCommand(action="save", name="weekly-report", session_id="k3f9qa"),
        ),
        ("template run weekly", TemplateCommand(action="run", name="weekly")),
        (
            "template run weekly --continuous 5",
            TemplateCommand(action="run", name="weekly", continuous=True, continuous_limit=5),
        ),
        ("template run weekly --continuous", TemplateCommand(action="run", name="weekly", continuous=True)),
        ("template delete weekly", TemplateCommand(action="delete", name="weekly")),
        ("templates", TemplatesCommand()),
        ('schedule "every 2h" template weekly', ScheduleCommand(when="every 2h", template="weekly")),
        (
            'schedule --template weekly --tz UTC "0 9 * * 1-5"',
            ScheduleCommand(when="0 9 * * 1-5", tz="UTC", template="weekly"),
        ),
    ],
)
def test_usage_profile_and_template_commands(text: str, expected: Command) -> None:
    assert parse(text) == expected
    assert CommandAdapter.validate_json(CommandAdapter.dump_json(expected)) == expected


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("usage --days 0", "at least 1"),
        ("usage --days 9999", "At most 3650 days"),
        ("usage --days many", "not a valid number of days"),
        ("usage --user", "--user needs a value"),
        ("usage --user a/b", "not a user id"),
        ("usage --channel", "--channel needs a value"),
        ("usage --days 1 --days 2", "given twice"),
        ("usage everyone", "Options: --user, --channel, --days"),
        ("profile set", "Give a profile key"),
        ("profile set colour red", "'colour' is not a profile key"),
        ("profile set budget", "needs a value"),
        ("profile unset budget now", "Unexpected"),
        ("profile wipe", "Unknown 'wipe'"),
        ("template", "Say what to do"),
        ("template copy x", "Unknown 'copy'"),
        ("template run", "needs a name"),
        ("template run ../etc", "not a template name"),
        ("template save x notanid", "not a session id"),
        ("template run x --fast", "Unexpected"),
        ("templates all", "Unexpected"),
        ('schedule --template "" "every 2h"', "needs a value"),
        ('schedule "every 2h" template b@d', "not a template name"),
    ],
)
def test_usage_profile_and_template_errors(text: str, says: str) -> None:
    assert says in error_of(text).message


def test_help_on_profile_lists_its_keys() -> None:
    text = help_text("profile")
    assert text.startswith("profile [set KEY VALUE | unset KEY]")
    for key in ("name", "role", "smart_llm", "fast_llm", "budget", "continuous_limit", "memory_scope"):
        assert key in text
    assert "tool_policy" in text and "mcp_servers" in text
    assert "details" not in USAGE and "Keys:" not in USAGE  # the details are for `help profile` only


def test_a_schedule_runs_goals_or_a_template_not_both() -> None:
    with pytest.raises(ValidationError):
        ScheduleCommand(when="every 2h", goals=["a"], template="weekly")
    with pytest.raises(ValidationError):
        ScheduleCommand(when="every 2h")
