"""`clone_repository(url, clone_path)` (AutoGPT's command) and the GitHub REST tools.

clone_repository clones only from github.com (https) or the host of GITHUB_URL (GitHub
Enterprise, with the scheme configured there) into the session's workspace:

- The URL is `https://github.com/owner/repo(.git)`, the same on GITHUB_URL's host, or the
  `owner/repo` shorthand (on GITHUB_URL). Userinfo, ssh, scp-like `git@host:`, file://, `ext::`
  and other remote helpers, query strings and anything starting with `-` are refused.
- The host is resolved once and checked by the SSRF guard (bot/net.py); git is then pinned to
  the checked address with `http.curloptResolve`, so a DNS answer that changes between the check
  and git's connection cannot redirect it, and redirects are not followed. GITHUB_URL is the
  admin's trusted configuration: its host may resolve to an internal address; github.com may not.
- Credentials (GITHUB_USERNAME / GITHUB_API_KEY) go only to GITHUB_URL's host, and only through
  a one-shot GIT_ASKPASS helper that reads them from 0600 files in a private temporary folder
  outside the workspace, deleted after the clone: never in argv, the URL, the environment or
  the clone's .git/config (`credential.helper` is emptied so nothing stores them).
- git runs with a clean environment (no system or global config, HOME a temporary folder, no
  terminal prompts), without hooks, fsmonitor, symlinks (checked out as plain files holding the
  link text), tags or other branches (`--depth 1`), and only the URL's protocol allowed.
- Caps: CLONE_TIMEOUT_S (the git process group is killed), CLONE_MAX_MB and the workspace's
  WORKSPACE_QUOTA_MB (the clone folder is watched while git runs and checked after; a partial
  clone is removed).

The REST tools (`github_*`) use githubkit (imported lazily: its import is heavy) against
GITHUB_API_URL (api.github.com, or GITHUB_URL/api/v3 for Enterprise). Reading works without a
token (public repositories); writing needs GITHUB_API_KEY.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ipaddress
import os
import re
import shutil
import signal
import stat
import subprocess
import tempfile
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from bot.net import FetchError, HostPolicy, Resolver, parse_ip, resolve_checked
from bot.settings import Settings
from bot.tools.base import ToolContext, ToolError, ToolRegistry
from bot.tools.files import readable, relative, safe_path, without_server_paths, workspace_bytes

SECTION = "GitHub"
GITHUB_HOST = "github.com"
WATCH_INTERVAL_S = 0.1  # how often a running clone's size is checked
TOP_LEVEL_SHOWN = 40  # top-level entries a clone's result lists
COMMENTS_SHOWN = 30  # comments github_read_issue shows
BODY_CHARS = 4000  # characters of an issue's body shown
COMMENT_CHARS = 1500  # characters of one comment shown
FILE_CHARS = 20_000  # characters of a file github_read_file shows
LIST_MAX = 100

# Test hooks. `resolver`: how clone_repository resolves the host (None: the system resolver).
# `observe`: called with the argv and environment of every git process clone_repository starts.
resolver: Resolver | None = None
observe: Callable[[list[str], Mapping[str, str]], None] | None = None

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
_SCHEME_LIKE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_SCP_LIKE = re.compile(r"^[^/:]+@[^/:]+:")


# ------------------------------------------------------------------------------------ arguments


def _repo_name(value: str) -> str:
    value = value.strip().removeprefix("https://github.com/").strip("/")
    value = value.removesuffix(".git")
    owner, _, name = value.partition("/")
    if not (_NAME.fullmatch(owner) and _NAME.fullmatch(name)) or {owner, name} & {".", ".."}:
        raise ValueError("give the repository as owner/name, e.g. octocat/hello-world")
    return f"{owner}/{name}"


class CloneArgs(BaseModel):
    url: str = Field(min_length=1, max_length=500)
    clone_path: str = Field(min_length=1, max_length=300)


class RepoArgs(BaseModel):
    repo: str = Field(min_length=3, max_length=201, description="owner/name")

    @field_validator("repo")
    @classmethod
    def _repo(cls, v: str) -> str:
        return _repo_name(v)


class IssueArgs(RepoArgs):
    number: int = Field(ge=1)


class ListIssuesArgs(RepoArgs):
    state: Literal["open", "closed", "all"] = "open"
    labels: str = ""
    limit: int = Field(default=20, ge=1, le=LIST_MAX)

    @field_validator("labels", mode="before")
    @classmethod
    def _labels(cls, v: Any) -> Any:
        if v is None:
            return ""
        return ",".join(str(x) for x in v) if isinstance(v, list) else v


class ReadFileArgs(RepoArgs):
    path: str = Field(min_length=1, max_length=1000)
    ref: str = Field(default="", max_length=250)

    @field_validator("path")
    @classmethod
    def _path(cls, v: str) -> str:
        v = v.strip().strip("/")
        parts = v.split("/")
        if not v or any(p in ("", ".", "..") for p in parts) or any(c in v for c in "\\\0"):
            raise ValueError("give a path inside the repository, e.g. src/main.py")
        return v


class CreateIssueArgs(RepoArgs):
    title: str = Field(min_length=1, max_length=256)
    body: str = Field(default="", max_length=65_000)


class CommentArgs(IssueArgs):
    body: str = Field(min_length=1, max_length=65_000)


# ------------------------------------------------------------------------------- clone: sources


@dataclass(frozen=True)
class Source:
    scheme: str
    host: str  # lower case; an IPv6 literal without brackets
    port: int
    owner: str
    name: str
    configured: bool  # GITHUB_URL's host: trusted, and the one credentials are for

    @property
    def netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = {"http": 80, "https": 443}[self.scheme]
        return host if self.port == default else f"{host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.netloc}/{self.owner}/{self.name}.git"

    @property
    def shown(self) -> str:
        return f"{self.owner}/{self.name}"


def _configured(settings: Settings) -> tuple[str, str, int]:
    """GITHUB_URL's scheme, host and port."""
    parts = urllib.parse.urlsplit(settings.github_url.strip())
    scheme = (parts.scheme or "https").lower()
    host = (parts.hostname or GITHUB_HOST).lower().rstrip(".")
    port = parts.port or (443 if scheme == "https" else 80)
    return scheme, host, port


def parse_source(url: str, settings: Settings) -> Source:
    """The repository `url` names, if clone_repository may clone it; else a ToolError."""
    text = url.strip()
    c_scheme, c_host, c_port = _configured(settings)
    allowed = f"{GITHUB_HOST}" + (f" or {c_host}" if c_host != GITHUB_HOST else "")
    if not text or text.startswith("-"):
        raise ToolError("Refused: that is not a repository URL. Give https://github.com/owner/repo.")
    if "::" in text.split("/", 1)[0] or (_SCHEME_LIKE.match(text) and "://" not in text):
        raise ToolError("Refused: git transports and remote helpers (such as ext::) are not allowed.")
    if any(ch.isspace() or ord(ch) < 32 or ch == "\\" for ch in text):
        raise ToolError("Refused: that is not a repository URL. Give https://github.com/owner/repo.")
    if _SCP_LIKE.match(text):
        raise ToolError("Refused: ssh URLs are not allowed; give the https URL of the repository.")
    if "://" not in text:
        owner, _, name = text.strip("/").partition("/")
        name = name.removesuffix(".git")
        if not _valid(owner, name):
            raise ToolError("Refused: give the repository as https://github.com/owner/repo or owner/repo.")
        return Source(c_scheme, c_host, c_port, owner, name, configured=True)
    try:
        parts = urllib.parse.urlsplit(text)
        port = parts.port
    except ValueError:
        raise ToolError("Refused: that URL cannot be parsed.") from None
    scheme = parts.scheme.lower()
    if scheme in ("ssh", "git+ssh", "ssh+git", "git"):
        raise ToolError(f"Refused: {scheme}:// URLs are not allowed; give the https URL of the repository.")
    if scheme not in ("http", "https"):
        raise ToolError(f"Refused: {scheme}:// URLs are not allowed; only https URLs of {allowed}.")
    if "@" in parts.netloc:
        raise ToolError(
            "Refused: the URL must not carry a user name or password; an admin sets the GitHub "
            "credentials (GITHUB_USERNAME, GITHUB_API_KEY)."
        )
    if parts.query or parts.fragment:
        raise ToolError("Refused: a repository URL has no query string or fragment.")
    host = (parts.hostname or "").lower().rstrip(".")
    port = port or (443 if scheme == "https" else 80)
    if host == c_host and scheme == c_scheme and port == c_port:
        configured = True
    elif host == GITHUB_HOST and scheme == "https" and port == 443:
        configured = False
    elif host == GITHUB_HOST:
        raise ToolError("Refused: github.com is cloned over https only.")
    else:
        raise ToolError(
            f"Refused: repositories are cloned only from {allowed}, not from {host or 'that URL'}."
        )
    segments = [s for s in parts.path.split("/") if s]
    if len(segments) != 2 or not _valid(segments[0], segments[1].removesuffix(".git")):
        raise ToolError(
            f"Refused: give the URL of a repository, {scheme}://{host}/owner/repo, without further paths."
        )
    return Source(scheme, host, port, segments[0], segments[1].removesuffix(".git"), configured)


def _valid(owner: str, name: str) -> bool:
    return bool(_NAME.fullmatch(owner) and _NAME.fullmatch(name)) and not {owner, name} & {".", ".."}


async def pin(source: Source, settings: Settings) -> str:
    """The checked addresses git connects to (for `http.curloptResolve`); a ToolError when the
    SSRF guard refuses the host. GITHUB_URL's own host (Enterprise) may be internal."""
    trusted = source.configured and source.host != GITHUB_HOST
    allowed = [*settings.browse_allowed_hosts, *([source.host] if trusted else [])]
    try:
        addresses = await resolve_checked(source.host, source.port, HostPolicy(allowed), resolver)
    except FetchError as exc:
        raise ToolError(f"Not cloned: {exc.message}") from None
    # every address was checked: curl may try them all (CURLOPT_RESOLVE takes a comma list)
    return ",".join(f"[{ip}]" if isinstance(ip, ipaddress.IPv6Address) else str(ip) for ip in addresses)


# --------------------------------------------------------------------------------- clone: git


def git_off(_settings: Settings) -> str | None:
    return None if shutil.which("git") else "git is not installed (not on PATH)"


def _token(settings: Settings) -> str:
    key = settings.github_api_key
    return key.get_secret_value().strip() if key is not None else ""


ASKPASS = """#!/bin/sh
case "$1" in
  Username*) cat '{dir}/user' ;;
  *) cat '{dir}/password' ;;
esac
"""


@dataclass
class GitRun:
    code: int | None  # None: stopped by a cap
    stderr: str
    stopped: str = ""  # why it was stopped


class Clone:
    """One clone: its private folder (HOME, askpass helper), its git environment and argv."""

    def __init__(self, ctx: ToolContext, source: Source, target: Path, address: str) -> None:
        self.ctx = ctx
        self.settings = ctx.settings
        self.source = source
        self.target = target
        self.address = address
        self.before = 0  # bytes the workspace held before the clone
        self.private = Path(tempfile.mkdtemp(prefix="bot-clone-"))  # 0700, outside the workspace
        self.home = self.private / "home"
        self.home.mkdir(mode=0o700)
        token = _token(self.settings)
        self.credentials = bool(token) and source.configured
        if self.credentials:
            self._secret("user", (self.settings.github_username or "x-access-token").strip())
            self._secret("password", token)
            helper = self.private / "askpass.sh"
            helper.write_text(ASKPASS.format(dir=self.private), encoding="utf-8")
            helper.chmod(stat.S_IRWXU)

    def _secret(self, name: str, value: str) -> None:
        fd = os.open(self.private / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(value + "\n")

    def close(self) -> None:
        shutil.rmtree(self.private, ignore_errors=True)

    def env(self) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH") or "/usr/local/bin:/usr/bin:/bin",
            "HOME": str(self.home),
            "LANG": "C.UTF-8",
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": "/dev/null",
            "GIT_ASKPASS": str(self.private / "askpass.sh") if self.credentials else "/bin/false",
            "SSH_ASKPASS": "/bin/false",
            "GIT_PROTOCOL_FROM_USER": "0",
        }
        return env

    def config(self) -> list[str]:
        """`git -c` options: for this git process only, never written to the clone's config."""
        s = self.source
        options = [
            "credential.helper=",
            "core.hooksPath=/dev/null",
            "core.fsmonitor=false",
            "core.symlinks=false",
            "init.templateDir=",
            "protocol.allow=never",
            f"protocol.{s.scheme}.allow=always",
            "http.followRedirects=false",
            "http.proxy=",
            "submodule.recurse=false",
        ]
        if parse_ip(s.host) is None:
            options.append(f"http.curloptResolve={s.host}:{s.port}:{self.address}")
        argv: list[str] = []
        for option in options:
            argv += ["-c", option]
        return argv

    def clone_argv(self) -> list[str]:
        return [
            "git",
            *self.config(),
            "clone",
            "--quiet",
            "--depth",
            "1",
            "--single-branch",
            "--no-tags",
            "--no-recurse-submodules",
            "--template=",
            "--config",
            "core.symlinks=false",  # kept in the clone's config: a later checkout makes no symlinks either
            "--",
            self.source.url,
            str(self.target),
        ]

    async def run(self, argv: list[str], *, watch: bool = False) -> GitRun:
        env = self.env()
        if observe is not None:
            observe(list(argv), dict(env))
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=str(self.private),
            start_new_session=True,
        )
        stopped = ""
        communicate = asyncio.ensure_future(proc.communicate())
        watcher = asyncio.ensure_future(self._watch()) if watch else None
        waiting: set[asyncio.Future[Any]] = {communicate} | ({watcher} if watcher else set())
        try:
            done, _ = await asyncio.wait(
                waiting, timeout=self.settings.clone_timeout_s, return_when=asyncio.FIRST_COMPLETED
            )
            if communicate not in done:
                stopped = watcher.result() if watcher is not None and watcher in done else "timeout"
                _kill(proc)
        finally:
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
            if proc.returncode is None:
                _kill(proc)
        _out, err = await communicate
        if stopped:
            return GitRun(None, "", stopped)
        return GitRun(proc.returncode, err.decode("utf-8", errors="replace"))

    async def _watch(self) -> str:
        """Ends with why the clone must stop: too big for CLONE_MAX_MB or the workspace quota."""
        while True:
            await asyncio.sleep(WATCH_INTERVAL_S)
            if reason := await asyncio.to_thread(self.over_caps):
                return reason

    def over_caps(self) -> str:
        size = workspace_bytes(self.target) if self.target.exists() else 0
        if size > self.settings.clone_max_mb * 1024 * 1024:
            return "too big"
        if self.before + size > self.settings.workspace_quota_mb * 1024 * 1024:
            return "quota"
        return ""


def _kill(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def _git_error(stderr: str, clone: Clone) -> str:
    """A failed clone's reason, for the agent: no credentials, no server paths."""
    s = clone.source
    low = stderr.lower()
    if "authentication failed" in low or "could not read username" in low or " 401" in low:
        if clone.credentials:
            return (
                f"Not cloned: {s.netloc} refused the configured credentials for {s.shown} "
                "(GITHUB_USERNAME / GITHUB_API_KEY are wrong or lack access)."
            )
        hint = (
            "an admin can set GITHUB_API_KEY for private repositories"
            if s.configured
            else "only public repositories can be cloned from github.com here"
        )
        return f"Not cloned: {s.url} asks for credentials: it is private or does not exist ({hint})."
    if "not found" in low or " 404" in low or "does not appear to be a git repository" in low:
        return f"Not cloned: repository {s.url} was not found."
    if " 403" in low:
        return f"Not cloned: {s.netloc} refused access to {s.shown} (403)."
    if "redirect" in low or " 301" in low or " 302" in low:
        return f"Not cloned: {s.url} redirects elsewhere (renamed or moved?); redirects are not followed."
    if "could not resolve host" in low or "failed to connect" in low or "couldn't connect" in low:
        return f"Not cloned: could not connect to {s.netloc}."
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    last = lines[-1] if lines else "git failed"
    last = without_server_paths(last.replace(str(clone.private), "<tmp>"), clone.ctx.workspace)
    token = _token(clone.settings)
    if token:
        last = last.replace(token, "***")
    return f"Not cloned: git failed: {last[:300]}"


def _tree_summary(target: Path) -> tuple[list[str], int, int]:
    """Top-level entries (folders with a slash), files and bytes of a clone, .git left out."""
    top = sorted(
        (p.name + ("/" if p.is_dir() and not p.is_symlink() else ""))
        for p in target.iterdir()
        if p.name != ".git"
    )
    count = 0
    for root, dirs, names in os.walk(target):
        if root == str(target):
            dirs[:] = [d for d in dirs if d != ".git"]
        count += len(names)
    return top, count, workspace_bytes(target)


def _remove(target: Path, existed: bool) -> None:
    shutil.rmtree(target, ignore_errors=True)
    if existed:
        target.mkdir(parents=True, exist_ok=True)


async def clone_repository(ctx: ToolContext, args: CloneArgs) -> str:
    settings = ctx.settings
    if git_off(settings):
        raise ToolError("Not cloned: git is not installed here.")
    source = parse_source(args.url, settings)
    target = safe_path(ctx.workspace, args.clone_path)
    name = relative(target, ctx.workspace)
    if target == ctx.workspace.resolve():
        raise ToolError("Give clone_path a new folder name inside the workspace, e.g. repo.")
    existed = target.exists()
    if existed and (not target.is_dir() or any(target.iterdir())):
        raise ToolError(f"Not cloned: {name} already exists and is not an empty folder.")
    used = await asyncio.to_thread(workspace_bytes, ctx.workspace)
    quota = settings.workspace_quota_mb * 1024 * 1024
    if used >= quota:
        raise ToolError(
            f"Not cloned: the workspace holds {readable(used)}, its quota is {readable(quota)} "
            "(WORKSPACE_QUOTA_MB). Delete files first."
        )
    address = await pin(source, settings)
    await asyncio.to_thread(ctx.workspace.mkdir, parents=True, exist_ok=True)
    await asyncio.to_thread(target.parent.mkdir, parents=True, exist_ok=True)
    clone = Clone(ctx, source, target, address)
    clone.before = used
    try:
        try:
            run = await clone.run(clone.clone_argv(), watch=True)
        except BaseException:  # cancelled (the session stopped): git is killed, its partial clone goes
            await asyncio.shield(asyncio.to_thread(_remove, target, existed))
            raise
        reason = run.stopped or ("" if run.code else await asyncio.to_thread(clone.over_caps))
        if reason or run.code:
            await asyncio.to_thread(_remove, target, existed)
        if reason == "timeout":
            raise ToolError(
                f"Not cloned: cloning {source.shown} took longer than {settings.clone_timeout_s:g} s "
                "(CLONE_TIMEOUT_S); the partial clone was removed."
            )
        if reason == "too big":
            raise ToolError(
                f"Not cloned: {source.shown} is larger than {settings.clone_max_mb:g} MB (CLONE_MAX_MB); "
                "the partial clone was removed."
            )
        if reason == "quota":
            raise ToolError(
                f"Not cloned: {source.shown} does not fit in the workspace's quota of {readable(quota)} "
                "(WORKSPACE_QUOTA_MB); the partial clone was removed. Delete files first."
            )
        if run.code:
            raise ToolError(_git_error(run.stderr, clone))
        commit = await _head(target, clone)
    finally:
        await asyncio.to_thread(clone.close)
    top, files, size = await asyncio.to_thread(_tree_summary, target)
    shown = ", ".join(top[:TOP_LEVEL_SHOWN]) + (
        f", ... ({len(top) - TOP_LEVEL_SHOWN} more)" if len(top) > TOP_LEVEL_SHOWN else ""
    )
    return (
        f"Cloned {source.url} into {name} ({files} files, {readable(size)}; shallow: latest commit only).\n"
        f"Commit: {commit}\n"
        f"Top level of {name}: {shown or '(empty)'}\n"
        "Symbolic links in it are plain files holding the link target."
    )


async def _head(target: Path, clone: Clone) -> str:
    """The commit checked out: sha, branch and subject, read from the clone's own files."""
    git_dir = target / ".git"
    try:
        ref = (git_dir / "HEAD").read_text(encoding="utf-8").strip()
        branch = ref.removeprefix("ref: refs/heads/") if ref.startswith("ref: ") else ""
        env = clone.env() | {"GIT_ASKPASS": "/bin/false"}
        proc = await asyncio.create_subprocess_exec(
            "git",
            "-c",
            "core.fsmonitor=false",
            "-c",
            "core.hooksPath=/dev/null",
            "-C",
            str(target),
            "log",
            "-1",
            "--format=%H %s",
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), timeout=10)
    except (OSError, TimeoutError):
        return "(unknown)"
    line = out.decode("utf-8", errors="replace").strip()
    sha, _, subject = line.partition(" ")
    return f"{sha[:12]} on {branch or 'a detached HEAD'}: {subject[:200]}" if sha else "(unknown)"


# ------------------------------------------------------------------------------------- REST


def api_url(settings: Settings) -> str:
    if settings.github_api_url:
        return settings.github_api_url.rstrip("/")
    _scheme, host, _port = _configured(settings)
    if host == GITHUB_HOST:
        return "https://api.github.com"
    return settings.github_url.strip().rstrip("/") + "/api/v3"


def write_off(settings: Settings) -> str | None:
    return None if _token(settings) else "needs GITHUB_API_KEY"


def _client(settings: Settings) -> Any:
    from githubkit import GitHub, TokenAuthStrategy, UnauthAuthStrategy

    token = _token(settings)
    auth: Any = TokenAuthStrategy(token) if token else UnauthAuthStrategy()
    return GitHub(
        auth,
        base_url=api_url(settings) + "/",
        user_agent=settings.user_agent,
        timeout=settings.browse_timeout_s,
        http_cache=False,
        auto_retry=False,
        trust_env=False,
    )


async def _call(settings: Settings, what: str, fn: Callable[[Any], Awaitable[Any]]) -> Any:
    """Run `fn(github)`; GitHub's errors as ToolErrors with the status and GitHub's message."""
    from githubkit.exception import RateLimitExceeded, RequestError, RequestFailed, RequestTimeout

    token = _token(settings)

    def clean(text: str) -> str:
        return text.replace(token, "***") if token else text

    try:
        async with _client(settings) as gh:
            return await fn(gh)
    except RateLimitExceeded as exc:
        raise ToolError(
            clean(f"GitHub rate limit hit while {what}: {_reset(exc.response.headers)}")
        ) from None
    except RequestFailed as exc:
        raise ToolError(clean(_failed(what, exc.response.status_code, exc.response))) from None
    except RequestTimeout:
        raise ToolError(
            f"GitHub did not answer within {settings.browse_timeout_s:g} s while {what}; try again later."
        ) from None
    except RequestError as exc:
        inner = getattr(exc, "exc", exc)
        raise ToolError(
            clean(f"Could not reach the GitHub API while {what}: {type(inner).__name__}.")
        ) from None


def _message(response: Any) -> str:
    try:
        data = response.raw_response.json()
    except Exception:
        return ""
    if not isinstance(data, dict):
        return ""
    message = str(data.get("message") or "")
    errors = data.get("errors")
    if isinstance(errors, list) and errors:
        details = [
            str(e.get("message") or f"{e.get('field', '')} {e.get('code', '')}".strip())
            if isinstance(e, dict)
            else str(e)
            for e in errors[:5]
        ]
        message += " (" + "; ".join(d for d in details if d) + ")"
    return message[:500]


def _reset(headers: Mapping[str, str]) -> str:
    reset = headers.get("x-ratelimit-reset", "")
    retry = headers.get("retry-after", "")
    if reset.isdigit():
        at = datetime.fromtimestamp(int(reset), tz=UTC)
        wait = max(0, int(int(reset) - time.time()))
        return f"it resets at {at:%H:%M:%S} UTC (in {wait} s)."
    if retry.isdigit():
        return f"retry after {retry} s."
    return "try again in a minute."


def _failed(what: str, status: int, response: Any) -> str:
    message = _message(response)
    said = f": {message}" if message else ""
    if status == 401:
        return f"GitHub refused the credentials while {what} (401{said}); check GITHUB_API_KEY."
    if status == 403:
        return f"GitHub forbade {what} (403{said})."
    if status == 404:
        return f"Not found while {what} (404{said}): it does not exist, or it is private to this token."
    if status == 410:
        return f"Gone while {what} (410{said}): it was deleted or transferred."
    if status == 422:
        return f"GitHub rejected the request while {what} (422{said})."
    if status == 429:
        return f"GitHub rate limit hit while {what} (429{said}): {_reset(response.headers)}"
    if status >= 500:
        return f"GitHub failed while {what} ({status}{said}); try again later."
    return f"GitHub answered {status} while {what}{said}."


def _cut(text: str | None, limit: int) -> str:
    text = (text or "").strip()
    return text if len(text) <= limit else text[:limit] + f"\n[... {len(text) - limit} more characters]"


def _login(user: Any) -> str:
    return str(user.get("login")) if isinstance(user, dict) and user.get("login") else "(unknown)"


def _labels(item: Mapping[str, Any]) -> str:
    names = [lb.get("name", "") if isinstance(lb, dict) else str(lb) for lb in item.get("labels") or []]
    return ", ".join(n for n in names if n)


def _split(repo: str) -> tuple[str, str]:
    owner, _, name = repo.partition("/")
    return owner, name


async def read_issue(ctx: ToolContext, args: IssueArgs) -> str:
    owner, name = _split(args.repo)
    where = f"reading {args.repo}#{args.number}"

    async def fetch(gh: Any) -> tuple[dict[str, Any], dict[str, Any] | None, list[dict[str, Any]]]:
        issue = (await gh.rest.issues.async_get(owner, name, args.number)).json()
        pull = None
        if issue.get("pull_request"):
            pull = (await gh.rest.pulls.async_get(owner, name, args.number)).json()
        comments: list[dict[str, Any]] = []
        if issue.get("comments"):
            comments = (
                await gh.rest.issues.async_list_comments(owner, name, args.number, per_page=COMMENTS_SHOWN)
            ).json()
        return issue, pull, comments

    issue, pull, comments = await _call(ctx.settings, where, fetch)
    kind = "Pull request" if pull is not None else "Issue"
    lines = [
        f"{kind} {args.repo}#{issue.get('number')}: {issue.get('title', '')}",
        f"State: {issue.get('state')}"
        + (f" ({issue.get('state_reason')})" if issue.get("state_reason") else ""),
        f"Author: {_login(issue.get('user'))}, opened {issue.get('created_at', '')}",
        f"URL: {issue.get('html_url', '')}",
    ]
    if labels := _labels(issue):
        lines.append(f"Labels: {labels}")
    if pull is not None:
        head, base = pull.get("head") or {}, pull.get("base") or {}
        merged = "merged" if pull.get("merged") else "not merged"
        if pull.get("draft"):
            merged += ", draft"
        lines.append(
            f"Branches: {head.get('label') or head.get('ref')} -> {base.get('label') or base.get('ref')} "
            f"({merged}; {pull.get('commits', '?')} commits, +{pull.get('additions', '?')} "
            f"-{pull.get('deletions', '?')} in {pull.get('changed_files', '?')} files)"
        )
    lines += ["", _cut(issue.get("body"), BODY_CHARS) or "(no description)"]
    total = int(issue.get("comments") or 0)
    if total:
        shown = comments[:COMMENTS_SHOWN]
        note = f" (the first {len(shown)} shown)" if total > len(shown) else ""
        lines += ["", f"Comments: {total}{note}"]
        for c in shown:
            lines.append(f"--- {_login(c.get('user'))} at {c.get('created_at', '')}:")
            lines.append(_cut(c.get("body"), COMMENT_CHARS))
    else:
        lines += ["", "No comments."]
    return "\n".join(lines)


async def list_issues(ctx: ToolContext, args: ListIssuesArgs) -> str:
    owner, name = _split(args.repo)
    labels = ",".join(lb.strip() for lb in args.labels.split(",") if lb.strip())

    async def fetch(gh: Any) -> list[dict[str, Any]]:
        extra: dict[str, Any] = {"labels": labels} if labels else {}
        response = await gh.rest.issues.async_list_for_repo(
            owner, name, state=args.state, per_page=args.limit, **extra
        )
        return list(response.json())

    items = await _call(ctx.settings, f"listing the issues of {args.repo}", fetch)
    items = items[: args.limit]
    if not items:
        return f"No {args.state if args.state != 'all' else ''} issues in {args.repo}".replace("  ", " ") + (
            f" with labels {labels}." if labels else "."
        )
    lines = [f"{len(items)} issues of {args.repo} ({args.state}{', labels ' + labels if labels else ''}):"]
    for it in items:
        kind = "PR " if it.get("pull_request") else ""
        extra = f" [{lb}]" if (lb := _labels(it)) else ""
        lines.append(
            f"- {kind}#{it.get('number')} {it.get('title', '')} ({it.get('state')}, "
            f"by {_login(it.get('user'))}, {it.get('comments', 0)} comments){extra}"
        )
    if len(items) == args.limit:
        lines.append(f"[showing at most {args.limit}; raise limit (max {LIST_MAX}) to see more]")
    return "\n".join(lines)


async def read_file(ctx: ToolContext, args: ReadFileArgs) -> str:
    owner, name = _split(args.repo)
    path = urllib.parse.quote(args.path, safe="/")
    at = f" at {args.ref}" if args.ref else ""

    async def fetch(gh: Any) -> Any:
        extra: dict[str, Any] = {"ref": args.ref} if args.ref else {}
        return (await gh.rest.repos.async_get_content(owner, name, path, **extra)).json()

    data = await _call(ctx.settings, f"reading {args.path} of {args.repo}{at}", fetch)
    if isinstance(data, list):
        entries = [
            f"{e.get('name')}{'/' if e.get('type') == 'dir' else ''}" for e in data if isinstance(e, dict)
        ]
        return f"{args.path} in {args.repo}{at} is a folder: " + ", ".join(entries[:200])
    kind = data.get("type")
    if kind == "symlink":
        return f"{args.path} in {args.repo}{at} is a symbolic link to {data.get('target')}."
    if kind == "submodule":
        url = data.get("submodule_git_url")
        return f"{args.path} in {args.repo}{at} is a submodule: {url} at {data.get('sha')}."
    size = int(data.get("size") or 0)
    if data.get("encoding") != "base64":
        return (
            f"{args.path} in {args.repo}{at} has {readable(size)}: too large for GitHub's contents API "
            "(clone the repository with clone_repository to read it)."
        )
    try:
        raw = base64.b64decode(data.get("content") or "", validate=False)
    except ValueError:
        raise ToolError(f"GitHub sent {args.path} in a form that cannot be decoded.") from None
    try:
        if b"\0" in raw[:8000]:
            raise UnicodeDecodeError("utf-8", raw, 0, 1, "NUL byte")
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return f"{args.path} in {args.repo}{at} is a binary file of {readable(len(raw))}; not shown."
    head = f"{args.path} in {args.repo}{at} ({readable(len(raw))}, sha {str(data.get('sha', ''))[:12]}):\n"
    if len(text) > FILE_CHARS:
        return head + text[:FILE_CHARS] + f"\n[... {len(text) - FILE_CHARS} more characters not shown]"
    return head + text


async def create_issue(ctx: ToolContext, args: CreateIssueArgs) -> str:
    owner, name = _split(args.repo)

    async def send(gh: Any) -> dict[str, Any]:
        extra: dict[str, Any] = {"body": args.body} if args.body else {}
        return dict((await gh.rest.issues.async_create(owner, name, title=args.title, **extra)).json())

    issue = await _call(ctx.settings, f"creating an issue in {args.repo}", send)
    return f"Created issue {args.repo}#{issue.get('number')}: {issue.get('html_url')}"


async def comment(ctx: ToolContext, args: CommentArgs) -> str:
    owner, name = _split(args.repo)

    async def send(gh: Any) -> dict[str, Any]:
        return dict(
            (await gh.rest.issues.async_create_comment(owner, name, args.number, body=args.body)).json()
        )

    made = await _call(ctx.settings, f"commenting on {args.repo}#{args.number}", send)
    return f"Commented on {args.repo}#{args.number} (comment {made.get('id')}): {made.get('html_url')}"


# ------------------------------------------------------------------------------------ register


def register(registry: ToolRegistry) -> None:
    registry.tool(
        "clone_repository",
        "Clone a GitHub repository (https://github.com/owner/repo or owner/repo) into a new workspace folder",
        CloneArgs,
        off=git_off,
        section=SECTION,
    )(clone_repository)
    registry.tool(
        "github_read_issue",
        "Read a GitHub issue or pull request with its comments (repo: owner/name)",
        IssueArgs,
        section=SECTION,
    )(read_issue)
    registry.tool(
        "github_list_issues",
        "List a GitHub repository's issues (state: open, closed or all; labels: comma list)",
        ListIssuesArgs,
        section=SECTION,
    )(list_issues)
    registry.tool(
        "github_read_file",
        "Read a file of a GitHub repository at a branch, tag or commit (ref; empty: the default branch)",
        ReadFileArgs,
        section=SECTION,
    )(read_file)
    registry.tool(
        "github_create_issue",
        "Open an issue in a GitHub repository",
        CreateIssueArgs,
        outside_effects=True,
        off=write_off,
        section=SECTION,
    )(create_issue)
    registry.tool(
        "github_comment",
        "Comment on a GitHub issue or pull request",
        CommentArgs,
        outside_effects=True,
        off=write_off,
        section=SECTION,
    )(comment)
