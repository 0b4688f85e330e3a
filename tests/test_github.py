"""clone_repository and the GitHub REST tools against a local fake GitHub (tests/fakes/github_api.py):
the real `git` talking smart HTTP to the real `git http-backend`, and githubkit talking to the fake
REST routes, through the tools as the registry offers them."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from bot.models import Place, Session, StepStatus
from bot.settings import Settings
from bot.tools import ToolContext, ToolError, default_registry, github
from bot.tools.files import safe_path, workspace_of
from tests.conftest import make_settings, started_core
from tests.fakes.github_api import FakeGitHub, content_file, pull
from tests.fakes.llm_server import ScriptedLLM, agent_reply
from tests.fakes.server import Failure
from tests.test_policy import ME, PLACE

TOKEN = "ghp_fake_token_0123456789abcdef"


@pytest.fixture(scope="module")
def gh() -> Iterator[FakeGitHub]:
    with FakeGitHub() as fake:
        fake.token = TOKEN
        fake.make_repo(
            "acme/widgets",
            {"README.md": "# Widgets\n", "src/app.py": "print('hi')\n", "docs/guide.md": "guide\n"},
            symlinks={"escape": "/etc/passwd", "up": "../../.."},
            commits=2,
        )
        fake.make_repo("acme/secret", {"SECRET.md": "classified\n"})
        fake.private["acme/secret"] = ("robot", TOKEN)
        fake.make_repo("acme/big", {"README.md": "big\n"}, big_file_mb=3)
        yield fake


@pytest.fixture
def gh_clean(gh: FakeGitHub) -> Iterator[FakeGitHub]:
    gh.failures.clear()
    gh.git_requests.clear()
    gh.api_requests.clear()
    yield gh
    gh.git_delay = 0.0
    gh.api_delay = 0.0
    gh.failures.clear()


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[list[str], dict[str, str]]]:
    """Every git process clone_repository starts: its argv and environment."""
    seen: list[tuple[list[str], dict[str, str]]] = []
    monkeypatch.setattr(github, "observe", lambda argv, env: seen.append((list(argv), dict(env))))
    return seen


def settings_for(tmp_path: Path, gh: FakeGitHub, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"data_dir": tmp_path, "github_url": gh.origin, "browse_timeout_s": 5.0}
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def context(settings: Settings) -> ToolContext:
    sid = uuid.uuid4().hex[:8]
    session = Session(id=sid, owner="U1", place=Place(platform="test", channel="C1"), goals=["x"])
    workspace = workspace_of(settings.data_dir, sid)
    workspace.mkdir(parents=True, exist_ok=True)
    return ToolContext(session=session, settings=settings, workspace=workspace)


async def run(settings: Settings, tool: str, ctx: ToolContext | None = None, **args: Any) -> str:
    found = default_registry().get(tool, settings)
    assert found is not None, f"{tool} is not offered"
    out = await found.run(ctx or context(settings), found.validate(args))
    assert isinstance(out, str)
    return out


def files_containing(root: Path, needle: str) -> list[Path]:
    found = []
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            path = Path(dirpath) / name
            if not path.is_symlink() and needle.encode() in path.read_bytes():
                found.append(path)
    return found


# ------------------------------------------------------------------------------ clone


async def test_public_clone_lists_the_tree_and_checks_out_symlinks_as_files(
    tmp_path: Path, gh_clean: FakeGitHub, calls: list[tuple[list[str], dict[str, str]]]
) -> None:
    settings = settings_for(tmp_path, gh_clean)
    ctx = context(settings)
    out = await run(
        settings, "clone_repository", ctx, url=f"{gh_clean.origin}/acme/widgets.git", clone_path="w"
    )
    sha = gh_clean.heads["acme/widgets"]
    assert f"Commit: {sha[:12]} on main: Add the files" in out
    assert "Top level of w: HISTORY.txt, README.md, docs/, escape, src/, up" in out
    assert "(6 files," in out
    repo = ctx.workspace / "w"
    assert (repo / "src/app.py").read_text() == "print('hi')\n"
    # a hostile symlink is a plain file holding its target: nothing points outside the workspace
    for name, target in (("escape", "/etc/passwd"), ("up", "../../..")):
        assert not (repo / name).is_symlink() and (repo / name).read_text() == target
        assert safe_path(ctx.workspace, f"w/{name}") == (repo / name).resolve()
    assert "--depth" in calls[0][0] and "core.symlinks=false" in calls[0][0]
    assert calls[0][1]["GIT_ASKPASS"] == "/bin/false"  # no credentials configured: none offered
    config = (repo / ".git/config").read_text()
    assert (
        "curloptResolve" not in config and "credential" not in config and "extraheader" not in config.lower()
    )
    assert "symlinks = false" in config  # a later checkout in the clone makes no symlinks either
    # the owner/repo shorthand clones from GITHUB_URL
    again = await run(settings, "clone_repository", ctx, url="acme/widgets", clone_path="sub/again")
    assert "into sub/again" in again and (ctx.workspace / "sub/again/README.md").is_file()


async def test_private_clone_sends_credentials_only_through_askpass(
    tmp_path: Path, gh_clean: FakeGitHub, calls: list[tuple[list[str], dict[str, str]]]
) -> None:
    settings = settings_for(tmp_path, gh_clean, github_api_key=TOKEN, github_username="robot")
    ctx = context(settings)
    out = await run(settings, "clone_repository", ctx, url=f"{gh_clean.origin}/acme/secret", clone_path="s")
    assert (ctx.workspace / "s/SECRET.md").read_text() == "classified\n"
    assert TOKEN not in out
    assert not files_containing(ctx.workspace, TOKEN)  # not in .git/config nor anywhere in the clone
    assert "robot" not in (ctx.workspace / "s/.git/config").read_text()
    for argv, env in calls:
        assert not any(TOKEN in a for a in argv) and not any(TOKEN in v for v in env.values())
        assert "credential.helper=" in argv
    askpass = Path(calls[0][1]["GIT_ASKPASS"])
    assert not askpass.parent.exists()
    assert not askpass.is_relative_to(ctx.workspace)
    assert any(r["authorization"].startswith("Basic ") for r in gh_clean.git_requests)


async def test_credentials_go_only_to_the_configured_host(
    tmp_path: Path,
    gh_clean: FakeGitHub,
    calls: list[tuple[list[str], dict[str, str]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(github, "resolver", _resolver({"github.com": ["140.82.112.3"]}))
    settings = settings_for(tmp_path, gh_clean, github_api_key=TOKEN)
    clone = github.Clone(
        context(settings), github.parse_source("https://github.com/a/b", settings), tmp_path, "1.2.3.4"
    )
    try:
        assert not clone.credentials and clone.env()["GIT_ASKPASS"] == "/bin/false"
    finally:
        clone.close()


async def test_wrong_or_missing_credentials_are_clear_errors(tmp_path: Path, gh_clean: FakeGitHub) -> None:
    wrong = settings_for(tmp_path, gh_clean, github_api_key="ghp_wrong_token_zzz", github_username="robot")
    ctx = context(wrong)
    with pytest.raises(ToolError, match="refused the configured credentials") as err:
        await run(wrong, "clone_repository", ctx, url="acme/secret", clone_path="s")
    assert "ghp_wrong_token_zzz" not in str(err.value) and str(tmp_path) not in str(err.value)
    assert not (ctx.workspace / "s").exists()
    anonymous = settings_for(tmp_path, gh_clean)
    with pytest.raises(ToolError, match="asks for credentials: it is private or does not exist"):
        await run(anonymous, "clone_repository", url="acme/secret", clone_path="s")
    with pytest.raises(ToolError, match=r"acme/nothing\.git was not found"):
        await run(anonymous, "clone_repository", url="acme/nothing", clone_path="n")


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("https://evil.example.com/acme/widgets", "only from github.com or 127.0.0.1"),
        ("https://gitlab.com/acme/widgets", "only from github.com"),
        ("https://robot:pw@github.com/acme/widgets", "must not carry a user name"),
        ("https://token@github.com/acme/widgets", "must not carry a user name"),
        ("ssh://git@github.com/acme/widgets", "ssh:// URLs are not allowed"),
        ("git@github.com:acme/widgets.git", "ssh URLs are not allowed"),
        ("git://github.com/acme/widgets", "git:// URLs are not allowed"),
        ("file:///etc/passwd", "file:// URLs are not allowed"),
        ("ext::sh -c touch% /tmp/pwned", "remote helpers"),
        ("fd::17", "remote helpers"),
        ("-uhttps://github.com/acme/widgets", "not a repository URL"),
        ("--upload-pack=touch /tmp/x", "not a repository URL"),
        ("http://github.com/acme/widgets", "over https only"),
        ("https://github.com/acme/widgets/tree/main", "without further paths"),
        ("https://github.com/acme/widgets?x=1", "no query string"),
        ("https://github.com/../etc", "without further paths"),
    ],
)
async def test_urls_that_are_refused(
    tmp_path: Path, gh_clean: FakeGitHub, calls: list[tuple[list[str], dict[str, str]]], url: str, why: str
) -> None:
    settings = settings_for(tmp_path, gh_clean, github_api_key=TOKEN)
    with pytest.raises(ToolError, match="Refused") as err:
        await run(settings, "clone_repository", url=url, clone_path="x")
    assert why in str(err.value)
    assert not calls and not gh_clean.git_requests  # git never ran


def _resolver(table: Mapping[str, list[str]]) -> Any:
    async def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise OSError(f"unknown host {host}")
        return list(table[host])

    return resolve


async def test_github_com_resolving_to_an_internal_address_is_refused(
    tmp_path: Path,
    gh_clean: FakeGitHub,
    calls: list[tuple[list[str], dict[str, str]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(github, "resolver", _resolver({"github.com": ["127.0.0.1"]}))
    settings = settings_for(tmp_path, gh_clean)
    with pytest.raises(
        ToolError, match=r"Refused to connect to github\.com: it resolves to 127\.0\.0\.1, a loopback"
    ):
        await run(settings, "clone_repository", url="https://github.com/acme/widgets", clone_path="x")
    monkeypatch.setattr(github, "resolver", _resolver({"github.com": ["140.82.112.3", "169.254.169.254"]}))
    with pytest.raises(ToolError, match="link-local"):
        await run(settings, "clone_repository", url="https://github.com/acme/widgets", clone_path="x")
    assert not calls


async def test_the_enterprise_host_is_trusted_and_git_is_pinned_to_the_checked_address(
    tmp_path: Path,
    gh_clean: FakeGitHub,
    calls: list[tuple[list[str], dict[str, str]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # git.fake.test exists in no DNS: the clone works only because git is pinned to what was checked
    monkeypatch.setattr(github, "resolver", _resolver({"git.fake.test": ["::1", "127.0.0.1"]}))
    settings = settings_for(tmp_path, gh_clean, github_url=f"http://git.fake.test:{gh_clean.port}")
    out = await run(settings, "clone_repository", url="acme/widgets", clone_path="w")
    assert f"Cloned http://git.fake.test:{gh_clean.port}/acme/widgets.git into w" in out
    assert f"http.curloptResolve=git.fake.test:{gh_clean.port}:[::1],127.0.0.1" in calls[0][0]
    assert "http.followRedirects=false" in calls[0][0]


async def test_a_repository_larger_than_clone_max_mb_is_stopped_and_removed(
    tmp_path: Path, gh_clean: FakeGitHub
) -> None:
    settings = settings_for(tmp_path, gh_clean, clone_max_mb=1)
    ctx = context(settings)
    with pytest.raises(ToolError, match=r"acme/big is larger than 1 MB \(CLONE_MAX_MB\)"):
        await run(settings, "clone_repository", ctx, url="acme/big", clone_path="big")
    assert not (ctx.workspace / "big").exists()
    small_quota = settings_for(tmp_path, gh_clean, workspace_quota_mb=1.5)
    ctx = context(small_quota)
    (ctx.workspace / "empty").mkdir()
    with pytest.raises(ToolError, match=r"does not fit in the workspace's quota"):
        await run(small_quota, "clone_repository", ctx, url="acme/big", clone_path="empty")
    assert (ctx.workspace / "empty").is_dir() and not any((ctx.workspace / "empty").iterdir())


async def test_a_slow_clone_is_killed_at_clone_timeout_s(tmp_path: Path, gh_clean: FakeGitHub) -> None:
    gh_clean.git_delay = 10.0
    settings = settings_for(tmp_path, gh_clean, clone_timeout_s=0.8)
    ctx = context(settings)
    started = time.monotonic()
    with pytest.raises(ToolError, match=r"took longer than 0.8 s \(CLONE_TIMEOUT_S\)"):
        await run(settings, "clone_repository", ctx, url="acme/widgets", clone_path="slow")
    assert time.monotonic() - started < 4
    assert not (ctx.workspace / "slow").exists()


async def test_a_cancelled_clone_leaves_nothing_behind(
    tmp_path: Path, gh_clean: FakeGitHub, calls: list[tuple[list[str], dict[str, str]]]
) -> None:
    gh_clean.git_delay = 10.0
    settings = settings_for(tmp_path, gh_clean, github_api_key=TOKEN, github_username="robot")
    ctx = context(settings)
    task = asyncio.create_task(run(settings, "clone_repository", ctx, url="acme/secret", clone_path="s"))
    await asyncio.sleep(0.5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not (ctx.workspace / "s").exists()
    assert not Path(calls[0][1]["GIT_ASKPASS"]).parent.exists()


async def test_clone_path_must_be_a_new_or_empty_folder_in_the_workspace(
    tmp_path: Path, gh_clean: FakeGitHub, calls: list[tuple[list[str], dict[str, str]]]
) -> None:
    settings = settings_for(tmp_path, gh_clean)
    ctx = context(settings)
    (ctx.workspace / "full").mkdir()
    (ctx.workspace / "full/a.txt").write_text("x")
    with pytest.raises(ToolError, match="already exists and is not an empty folder"):
        await run(settings, "clone_repository", ctx, url="acme/widgets", clone_path="full")
    with pytest.raises(ToolError, match="outside the workspace"):
        await run(settings, "clone_repository", ctx, url="acme/widgets", clone_path="../elsewhere")
    with pytest.raises(ToolError, match="new folder name"):
        await run(settings, "clone_repository", ctx, url="acme/widgets", clone_path=".")
    assert not calls


def test_clone_is_off_without_git_and_the_tools_metadata(
    tmp_path: Path, gh: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = default_registry()
    anonymous = settings_for(tmp_path, gh)
    offered = {t.name for t in registry.available(anonymous)}
    assert {"clone_repository", "github_read_issue", "github_list_issues", "github_read_file"} <= offered
    assert not {"github_create_issue", "github_comment"} & offered
    tools = {t.name: t for t in registry.all() if t.section == "GitHub"}
    assert set(tools) == {
        "clone_repository",
        "github_read_issue",
        "github_list_issues",
        "github_read_file",
        "github_create_issue",
        "github_comment",
    }
    assert [n for n, t in tools.items() if t.outside_effects] == ["github_create_issue", "github_comment"]
    assert tools["github_comment"].off(anonymous) == "needs GITHUB_API_KEY"
    assert tools["github_comment"].off(settings_for(tmp_path, gh, github_api_key=TOKEN)) is None
    monkeypatch.setenv("PATH", str(tmp_path))
    assert tools["clone_repository"].off(anonymous) == "git is not installed (not on PATH)"


async def test_an_agent_clones_and_reads_the_tree_in_its_step(
    tmp_path: Path, gh_clean: FakeGitHub, llm: ScriptedLLM
) -> None:
    settings = make_settings(
        tmp_path, llm, github_url=gh_clean.origin, tool_policy={"clone_repository": "allow"}
    )
    async with started_core(settings) as (core, _chat):
        llm.script(
            "execution_reply",
            agent_reply("clone_repository", {"url": "acme/widgets", "clone_path": "widgets"}),
            agent_reply("read_file", {"filename": "widgets/README.md"}),
        )
        outcome = await core.service.handle_text(ME, PLACE, "goal look at the widgets repository")
        assert outcome.ok and outcome.session_id, outcome.message
        await core.runner.idle(15)
        session = await core.store.get(outcome.session_id)
    assert session is not None
    first = session.steps[0]
    assert first.status == StepStatus.DONE, first
    assert first.result is not None and "Top level of widgets: HISTORY.txt, README.md, docs/" in first.result
    assert gh_clean.heads["acme/widgets"][:12] in first.result
    assert session.steps[1].command.name == "read_file"
    assert (workspace_of(settings.data_dir, session.id) / "widgets/README.md").read_text() == "# Widgets\n"


# ------------------------------------------------------------------------------ REST


def test_the_fakes_json_is_what_githubkit_models_accept() -> None:
    from githubkit_schemas.latest.models import ContentFile, Issue, IssueComment, PullRequest

    from tests.fakes.github_api import comment, issue

    assert Issue.model_validate(issue("a/b", 1, "t", labels=["bug"], is_pull=True)).number == 1
    assert IssueComment.model_validate(comment("a/b", 1, 7, "hi")).id == 7
    assert PullRequest.model_validate(pull("a/b", 2, "t", None, head="feature", merged=True)).merged
    assert ContentFile.model_validate(content_file("a/b", "x/y.py", b"print()\n", "main")).size == 8


async def test_read_an_issue_with_its_comments(
    tmp_path: Path, gh_clean: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    gh_clean.add_issue(
        "acme/widgets", 7, "Widgets wobble", "They wobble on Tuesdays.", labels=["bug", "p1"],
        comments=["Seen it too.", "Fixed in main?", "Not yet."],
    )  # fmt: skip
    settings = settings_for(tmp_path, gh_clean)
    out = await run(settings, "github_read_issue", repo="acme/widgets", number=7)
    assert out.startswith("Issue acme/widgets#7: Widgets wobble\nState: open\nAuthor: octocat")
    assert "Labels: bug, p1" in out and "They wobble on Tuesdays." in out
    assert "Comments: 3\n--- hubot at" in out and "Seen it too." in out and "Not yet." in out
    assert all(r["authorization"] == "" for r in gh_clean.api_requests)  # no token: none sent
    monkeypatch.setattr(github, "COMMENTS_SHOWN", 2)
    out = await run(settings, "github_read_issue", repo="https://github.com/acme/widgets", number=7)
    assert "Comments: 3 (the first 2 shown)" in out and "Not yet." not in out
    assert gh_clean.api_requests[-1]["query"]["per_page"] == "2"


async def test_read_a_pull_request(tmp_path: Path, gh_clean: FakeGitHub) -> None:
    gh_clean.add_pull("acme/widgets", 8, "Stop the wobble", "Adds a shim.", head="fix-wobble", merged=True)
    settings = settings_for(tmp_path, gh_clean, github_api_key=TOKEN)
    out = await run(settings, "github_read_issue", repo="acme/widgets", number=8)
    assert out.startswith("Pull request acme/widgets#8: Stop the wobble\nState: closed")
    assert "Branches: acme:fix-wobble -> acme:main (merged; 3 commits, +10 -2 in 4 files)" in out
    assert "No comments." in out
    assert [r["route"] for r in gh_clean.api_requests] == ["issues.get", "pulls.get"]
    assert {r["authorization"].split()[-1] for r in gh_clean.api_requests} == {TOKEN}


async def test_list_issues_by_state_and_labels(tmp_path: Path, gh_clean: FakeGitHub) -> None:
    gh_clean.add_issue("acme/list", 1, "First", labels=["bug"])
    gh_clean.add_issue("acme/list", 2, "Second", labels=["docs"], comments=["a"])
    gh_clean.add_issue("acme/list", 3, "Closed one", state="closed", labels=["bug"])
    gh_clean.add_pull("acme/list", 4, "A change", head="change")
    settings = settings_for(tmp_path, gh_clean)
    out = await run(settings, "github_list_issues", repo="acme/list")
    assert out.splitlines() == [
        "3 issues of acme/list (open):",
        "- PR #4 A change (open, by octocat, 0 comments)",
        "- #2 Second (open, by octocat, 1 comments) [docs]",
        "- #1 First (open, by octocat, 0 comments) [bug]",
    ]
    out = await run(settings, "github_list_issues", repo="acme/list", state="all", labels="bug", limit=1)
    assert "- #3 Closed one (closed" in out and "[showing at most 1;" in out
    assert gh_clean.api_requests[-1]["query"] == {"state": "all", "per_page": "1", "labels": "bug"}
    assert "No closed issues in acme/list with labels docs." == await run(
        settings, "github_list_issues", repo="acme/list", state="closed", labels="docs"
    )


async def test_read_a_file_at_a_ref(
    tmp_path: Path, gh_clean: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    gh_clean.add_file("acme/widgets", "src/app.py", "print('main')\n")
    gh_clean.add_file("acme/widgets", "src/app.py", "print('v1')\n", ref="v1.0")
    gh_clean.add_file("acme/widgets", "logo.png", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" + bytes(300))
    gh_clean.add_file("acme/widgets", "long.txt", "x" * 500)
    gh_clean.add_file("acme/widgets", "docs/my notes?.md", "notes\n")
    settings = settings_for(tmp_path, gh_clean)
    out = await run(settings, "github_read_file", repo="acme/widgets", path="src/app.py")
    assert out.startswith("src/app.py in acme/widgets (14 bytes, sha ") and out.endswith("print('main')\n")
    out = await run(settings, "github_read_file", repo="acme/widgets", path="/src/app.py", ref="v1.0")
    assert out.startswith("src/app.py in acme/widgets at v1.0") and "print('v1')" in out
    assert gh_clean.api_requests[-1]["query"] == {"ref": "v1.0"}
    out = await run(settings, "github_read_file", repo="acme/widgets", path="logo.png")
    assert out == "logo.png in acme/widgets is a binary file of 316 bytes; not shown."
    out = await run(settings, "github_read_file", repo="acme/widgets", path="docs/my notes?.md")
    assert out.endswith("):\nnotes\n")
    monkeypatch.setattr(github, "FILE_CHARS", 100)
    out = await run(settings, "github_read_file", repo="acme/widgets", path="long.txt")
    assert out.endswith("x" * 100 + "\n[... 400 more characters not shown]")
    with pytest.raises(
        ToolError, match=r"Not found while reading nope.txt of acme/widgets \(404: Not Found\)"
    ):
        await run(settings, "github_read_file", repo="acme/widgets", path="nope.txt")
    with pytest.raises(ToolError, match="give a path inside the repository"):
        await run(settings, "github_read_file", repo="acme/widgets", path="../../user")


async def test_create_an_issue_and_comment(tmp_path: Path, gh_clean: FakeGitHub) -> None:
    settings = settings_for(tmp_path, gh_clean, github_api_key=TOKEN)
    out = await run(settings, "github_create_issue", repo="acme/new", title="Bot report", body="All good.")
    assert out == "Created issue acme/new#1: https://github.com/acme/new/issues/1"
    assert gh_clean.issues[("acme/new", 1)]["body"] == "All good."
    out = await run(settings, "github_comment", repo="acme/new", number=1, body="Following up.")
    assert out.startswith("Commented on acme/new#1 (comment ") and "#issuecomment-" in out
    assert gh_clean.comments[("acme/new", 1)][-1]["body"] == "Following up."
    assert all(r["authorization"] in (f"Bearer {TOKEN}", f"token {TOKEN}") for r in gh_clean.api_requests)
    with pytest.raises(ToolError, match=r"Not found while commenting on acme/new#9 \(404"):
        await run(settings, "github_comment", repo="acme/new", number=9, body="x")


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        (
            Failure("issues.get", status=404, message="Not Found"),
            r"Not found while reading acme/err#1 \(404: Not Found\)",
        ),
        (Failure("issues.get", status=403, message="Resource not accessible"), r"forbade reading .*403"),
        (
            Failure("issues.get", status=500, message="Server Error"),
            r"GitHub failed .* \(500: Server Error\); try again",
        ),
        (
            Failure("issues.get", status=429, message="API rate limit exceeded", retry_after=120),
            r"rate limit hit while reading acme/err#1: it resets at \d\d:\d\d:\d\d UTC \(in 1[12]\d s\)",
        ),
        (
            Failure("issues.get", status=403, message="API rate limit exceeded", retry_after=60),
            r"rate limit hit .*: it resets at .* UTC \(in \d+ s\)",
        ),
    ],
)
async def test_rest_errors_are_clear(
    tmp_path: Path, gh_clean: FakeGitHub, failure: Failure, expected: str
) -> None:
    gh_clean.add_issue("acme/err", 1, "x")
    gh_clean.failures.add(failure)
    settings = settings_for(tmp_path, gh_clean, github_api_key=TOKEN)
    with pytest.raises(ToolError, match=expected) as err:
        await run(settings, "github_read_issue", repo="acme/err", number=1)
    assert TOKEN not in str(err.value)
    assert len(gh_clean.api_requests) == 1  # no automatic retries


async def test_bad_token_timeout_and_validation_errors(tmp_path: Path, gh_clean: FakeGitHub) -> None:
    gh_clean.add_issue("acme/err", 1, "x")
    wrong = settings_for(tmp_path, gh_clean, github_api_key="ghp_not_the_token")
    with pytest.raises(
        ToolError, match=r"refused the credentials .*\(401: Bad credentials\); check GITHUB_API_KEY"
    ):
        await run(wrong, "github_create_issue", repo="acme/err", title="x")
    with pytest.raises(ToolError, match=r"401: Bad credentials") as err:
        await run(wrong, "github_read_issue", repo="acme/err", number=1)
    assert "ghp_not_the_token" not in str(err.value)
    gh_clean.api_delay = 3.0
    slow = settings_for(tmp_path, gh_clean, browse_timeout_s=0.3)
    started = time.monotonic()
    with pytest.raises(ToolError, match=r"GitHub did not answer within 0.3 s while reading acme/err#1"):
        await run(slow, "github_read_issue", repo="acme/err", number=1)
    assert time.monotonic() - started < 2
    gh_clean.api_delay = 0.0
    with pytest.raises(ToolError, match="Invalid arguments for github_read_issue: repo"):
        await run(wrong, "github_read_issue", repo="acme/err/../x", number=1)
    gh_clean.failures.add(Failure("issues.create", status=422, message="Validation Failed"))
    with pytest.raises(ToolError, match=r"rejected the request while creating an issue in acme/err \(422"):
        await run(
            settings_for(tmp_path, gh_clean, github_api_key=TOKEN),
            "github_create_issue",
            repo="acme/err",
            title="x",
        )


def test_api_url_follows_github_url() -> None:
    def api(**kw: Any) -> str:
        return github.api_url(Settings(_env_file=None, **kw))  # type: ignore[call-arg]

    assert api() == "https://api.github.com"
    assert api(github_url="https://ghe.example.com/") == "https://ghe.example.com/api/v3"
    assert api(github_url="https://ghe.example.com", github_api_url="https://api.ghe.example.com/") == (
        "https://api.ghe.example.com"
    )
