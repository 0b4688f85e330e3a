"""A fake GitHub on 127.0.0.1: git's smart HTTP protocol (the real `git http-backend`, run as a
CGI program for bare repositories the test makes) and the REST routes the GitHub tools use,
under /api/v3 as on GitHub Enterprise, so `GITHUB_URL=fake.origin` serves both.

Git: `make_repo("acme/widgets", {...})` makes a bare repository at ROOT/acme/widgets.git with
the given files (and optionally a symbolic link, a big incompressible file, more commits).
`private["acme/secret"] = (user, password)` makes a repository answer 401 with a Basic
challenge unless the request carries those credentials; `git_delay` slows every git answer.

REST: `add_issue`, `add_pull`, `add_file` fill the data; answers are GitHub's JSON shapes with
every field githubkit's models require (`user()`, `issue()`, `comment()`, `pull()`,
`content_file()`, `repository()`). Write routes need `Authorization: Bearer|token <token>`;
a read with a wrong token is refused as GitHub does (401 Bad credentials). Scripted failures
(`failures.add(Failure("issues.get", status=404))`): route names are `issues.get`,
`issues.list_comments`, `pulls.get`, `issues.list_for_repo`, `repos.get_content`,
`issues.create`, `issues.create_comment`; a 429 carries X-RateLimit-Remaining: 0 and
X-RateLimit-Reset (now + `retry_after`). `api_delay` slows every REST answer.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import itertools
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from aiohttp import web

from tests.fakes.server import Failures, ThreadServer

NOW = "2026-01-02T03:04:05Z"
GIT_ENV = {
    "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_AUTHOR_NAME": "Fake Author",
    "GIT_AUTHOR_EMAIL": "author@example.com",
    "GIT_COMMITTER_NAME": "Fake Author",
    "GIT_COMMITTER_EMAIL": "author@example.com",
    "GIT_AUTHOR_DATE": "2026-01-02T03:04:05Z",
    "GIT_COMMITTER_DATE": "2026-01-02T03:04:05Z",
    "LANG": "C",
}


def _git(*args: str, cwd: Path | None = None) -> str:
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=GIT_ENV | {"HOME": str(cwd or "/")}, capture_output=True, check=True
    )
    return done.stdout.decode().strip()


# ------------------------------------------------------------------------------ JSON shapes


def user(login: str = "octocat", uid: int = 1) -> dict[str, Any]:
    api = f"https://api.github.com/users/{login}"
    return {
        "login": login,
        "id": uid,
        "node_id": f"U_{uid}",
        "avatar_url": f"https://avatars.githubusercontent.com/u/{uid}",
        "gravatar_id": "",
        "url": api,
        "html_url": f"https://github.com/{login}",
        "followers_url": f"{api}/followers",
        "following_url": f"{api}/following{{/other_user}}",
        "gists_url": f"{api}/gists{{/gist_id}}",
        "starred_url": f"{api}/starred{{/owner}}{{/repo}}",
        "subscriptions_url": f"{api}/subscriptions",
        "organizations_url": f"{api}/orgs",
        "repos_url": f"{api}/repos",
        "events_url": f"{api}/events{{/privacy}}",
        "received_events_url": f"{api}/received_events",
        "type": "User",
        "site_admin": False,
    }


def label(name: str, lid: int = 1) -> dict[str, Any]:
    return {
        "id": lid,
        "node_id": f"L_{lid}",
        "url": f"https://api.github.com/labels/{name}",
        "name": name,
        "description": None,
        "color": "ededed",
        "default": False,
        "archived_by": None,
    }


def issue(
    repo: str, number: int, title: str, body: str | None = "", *, author: str = "octocat",
    labels: Sequence[str] = (), state: str = "open", comments: int = 0, is_pull: bool = False,
) -> dict[str, Any]:  # fmt: skip
    api = f"https://api.github.com/repos/{repo}"
    data: dict[str, Any] = {
        "id": 1000 + number,
        "node_id": f"I_{number}",
        "url": f"{api}/issues/{number}",
        "repository_url": api,
        "labels_url": f"{api}/issues/{number}/labels{{/name}}",
        "comments_url": f"{api}/issues/{number}/comments",
        "events_url": f"{api}/issues/{number}/events",
        "html_url": f"https://github.com/{repo}/{'pull' if is_pull else 'issues'}/{number}",
        "number": number,
        "state": state,
        "state_reason": None,
        "title": title,
        "body": body,
        "user": user(author),
        "labels": [label(n, i) for i, n in enumerate(labels, 1)],
        "assignee": None,
        "assignees": [],
        "milestone": None,
        "locked": False,
        "active_lock_reason": None,
        "comments": comments,
        "closed_at": None,
        "created_at": NOW,
        "updated_at": NOW,
        "author_association": "OWNER",
    }
    if is_pull:
        data["pull_request"] = {
            "url": f"{api}/pulls/{number}",
            "html_url": f"https://github.com/{repo}/pull/{number}",
            "diff_url": f"https://github.com/{repo}/pull/{number}.diff",
            "patch_url": f"https://github.com/{repo}/pull/{number}.patch",
            "merged_at": None,
        }
    return data


def comment(repo: str, number: int, cid: int, body: str, author: str = "hubot") -> dict[str, Any]:
    api = f"https://api.github.com/repos/{repo}"
    return {
        "id": cid,
        "node_id": f"IC_{cid}",
        "url": f"{api}/issues/comments/{cid}",
        "html_url": f"https://github.com/{repo}/issues/{number}#issuecomment-{cid}",
        "body": body,
        "user": user(author, 2),
        "created_at": NOW,
        "updated_at": NOW,
        "issue_url": f"{api}/issues/{number}",
        "author_association": "CONTRIBUTOR",
    }


def repository(repo: str) -> dict[str, Any]:
    owner, name = repo.split("/")
    api = f"https://api.github.com/repos/{repo}"
    data: dict[str, Any] = {
        "id": 42,
        "node_id": "R_42",
        "name": name,
        "full_name": repo,
        "license": None,
        "forks": 0,
        "owner": user(owner),
        "private": False,
        "html_url": f"https://github.com/{repo}",
        "description": None,
        "fork": False,
        "url": api,
        "git_url": f"git://github.com/{repo}.git",
        "ssh_url": f"git@github.com:{repo}.git",
        "clone_url": f"https://github.com/{repo}.git",
        "svn_url": f"https://github.com/{repo}",
        "mirror_url": None,
        "homepage": None,
        "language": "Python",
        "forks_count": 0,
        "stargazers_count": 0,
        "watchers_count": 0,
        "size": 1,
        "default_branch": "main",
        "open_issues_count": 0,
        "has_pages": False,
        "disabled": False,
        "pushed_at": NOW,
        "created_at": NOW,
        "updated_at": NOW,
        "open_issues": 0,
        "watchers": 0,
    }
    for key in (
        "archive", "assignees", "blobs", "branches", "collaborators", "comments", "commits", "compare",
        "contents", "contributors", "deployments", "downloads", "events", "forks", "git_commits",
        "git_refs", "git_tags", "issue_comment", "issue_events", "issues", "keys", "labels", "languages",
        "merges", "milestones", "notifications", "pulls", "releases", "stargazers", "statuses",
        "subscribers", "subscription", "tags", "teams", "trees", "hooks",
    ):  # fmt: skip
        data[f"{key}_url"] = f"{api}/{key}"
    return data


def pull(
    repo: str, number: int, title: str, body: str | None, *, head: str, base: str = "main",
    merged: bool = False, author: str = "octocat",
) -> dict[str, Any]:  # fmt: skip
    api = f"https://api.github.com/repos/{repo}"
    owner = repo.split("/")[0]

    def end(ref: str, sha: str) -> dict[str, Any]:
        return {
            "label": f"{owner}:{ref}",
            "ref": ref,
            "repo": repository(repo),
            "sha": sha,
            "user": user(owner),
        }

    def link(href: str) -> dict[str, str]:
        return {"href": href}

    return {
        "url": f"{api}/pulls/{number}",
        "id": 5000 + number,
        "node_id": f"PR_{number}",
        "html_url": f"https://github.com/{repo}/pull/{number}",
        "diff_url": f"https://github.com/{repo}/pull/{number}.diff",
        "patch_url": f"https://github.com/{repo}/pull/{number}.patch",
        "issue_url": f"{api}/issues/{number}",
        "commits_url": f"{api}/pulls/{number}/commits",
        "review_comments_url": f"{api}/pulls/{number}/comments",
        "review_comment_url": f"{api}/pulls/comments{{/number}}",
        "comments_url": f"{api}/issues/{number}/comments",
        "statuses_url": f"{api}/statuses/{'a' * 40}",
        "number": number,
        "state": "closed" if merged else "open",
        "locked": False,
        "title": title,
        "user": user(author),
        "body": body,
        "labels": [],
        "milestone": None,
        "created_at": NOW,
        "updated_at": NOW,
        "closed_at": NOW if merged else None,
        "merged_at": NOW if merged else None,
        "head": end(head, "b" * 40),
        "base": end(base, "a" * 40),
        "_links": {
            "comments": link(f"{api}/issues/{number}/comments"),
            "commits": link(f"{api}/pulls/{number}/commits"),
            "statuses": link(f"{api}/statuses/{'b' * 40}"),
            "html": link(f"https://github.com/{repo}/pull/{number}"),
            "issue": link(f"{api}/issues/{number}"),
            "review_comments": link(f"{api}/pulls/{number}/comments"),
            "review_comment": link(f"{api}/pulls/comments{{/number}}"),
            "self": link(f"{api}/pulls/{number}"),
        },
        "author_association": "OWNER",
        "auto_merge": None,
        "draft": False,
        "merged": merged,
        "mergeable": None if merged else True,
        "mergeable_state": "clean",
        "merged_by": user(owner) if merged else None,
        "comments": 0,
        "review_comments": 0,
        "maintainer_can_modify": False,
        "commits": 3,
        "additions": 10,
        "deletions": 2,
        "changed_files": 4,
    }


def content_file(repo: str, path: str, data: bytes, ref: str) -> dict[str, Any]:
    sha = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
    api = f"https://api.github.com/repos/{repo}/contents/{path}?ref={ref}"
    html = f"https://github.com/{repo}/blob/{ref}/{path}"
    git = f"https://api.github.com/repos/{repo}/git/blobs/{sha}"
    encoded = base64.encodebytes(data).decode()  # GitHub wraps base64 at 60 columns with newlines
    return {
        "type": "file",
        "encoding": "base64",
        "size": len(data),
        "name": path.rsplit("/", 1)[-1],
        "path": path,
        "content": encoded,
        "sha": sha,
        "url": api,
        "git_url": git,
        "html_url": html,
        "download_url": f"https://raw.githubusercontent.com/{repo}/{ref}/{path}",
        "_links": {"git": git, "html": html, "self": api},
    }


# ---------------------------------------------------------------------------------- server


class FakeGitHub(ThreadServer):
    client_max_size: ClassVar[int] = 256 * 1024**2

    def __init__(self, root: Path | None = None) -> None:
        super().__init__()
        self._tmp = None if root is not None else tempfile.mkdtemp(prefix="fake-github-")
        self.root = Path(root or self._tmp or ".")
        self.root.mkdir(parents=True, exist_ok=True)
        self.failures = Failures()
        self.token = "ghp_fake_token_0123456789abcdef"
        self.private: dict[str, tuple[str, str]] = {}  # "owner/repo" -> (user, password)
        self.git_delay = 0.0
        self.api_delay = 0.0
        self.git_requests: list[dict[str, str]] = []
        self.api_requests: list[dict[str, Any]] = []
        self.issues: dict[tuple[str, int], dict[str, Any]] = {}
        self.comments: dict[tuple[str, int], list[dict[str, Any]]] = {}
        self.pulls: dict[tuple[str, int], dict[str, Any]] = {}
        self.files: dict[tuple[str, str, str], bytes] = {}  # (repo, ref, path) -> content
        self.default_branch = "main"
        self.heads: dict[str, str] = {}  # "owner/repo" -> the sha of its last commit
        self._ids = itertools.count(900)

    def stop(self) -> None:
        super().stop()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)

    @property
    def api_url(self) -> str:
        return self.url("/api/v3")

    # -- repositories

    def make_repo(
        self,
        repo: str,
        files: dict[str, str | bytes],
        *,
        symlinks: dict[str, str] | None = None,
        big_file_mb: float = 0,
        commits: int = 1,
    ) -> str:
        """A bare repository ROOT/<repo>.git with `files` (and `symlinks`: name -> target, and a
        `big.bin` of `big_file_mb` random bytes) in its last commit; the sha of that commit."""
        work = Path(tempfile.mkdtemp(prefix="fake-repo-"))
        try:
            _git("init", "-q", "-b", self.default_branch, str(work), cwd=work)
            for n in range(commits):
                (work / "HISTORY.txt").write_text(f"commit {n}\n" * (n + 1))
                if n == commits - 1:
                    for name, content in files.items():
                        path = work / name
                        path.parent.mkdir(parents=True, exist_ok=True)
                        path.write_bytes(content.encode() if isinstance(content, str) else content)
                    for name, target in (symlinks or {}).items():
                        os.symlink(target, work / name)
                    if big_file_mb:
                        (work / "big.bin").write_bytes(os.urandom(int(big_file_mb * 1024 * 1024)))
                _git("add", "-A", cwd=work)
                _git("commit", "-q", "-m", f"commit {n}" if n < commits - 1 else "Add the files", cwd=work)
            sha = _git("rev-parse", "HEAD", cwd=work)
            bare = self.root / f"{repo}.git"
            bare.parent.mkdir(parents=True, exist_ok=True)
            _git("clone", "-q", "--bare", str(work), str(bare), cwd=work)
            self.heads[repo] = sha
            return sha
        finally:
            shutil.rmtree(work, ignore_errors=True)

    # -- REST data

    def add_issue(
        self, repo: str, number: int, title: str, body: str = "", *, labels: Sequence[str] = (),
        comments: Sequence[str] = (), state: str = "open", author: str = "octocat",
    ) -> dict[str, Any]:  # fmt: skip
        data = issue(repo, number, title, body, labels=list(labels), state=state, comments=len(comments),
                     author=author)  # fmt: skip
        self.issues[(repo, number)] = data
        self.comments[(repo, number)] = [comment(repo, number, next(self._ids), c) for c in comments]
        return data

    def add_pull(
        self, repo: str, number: int, title: str, body: str = "", *, head: str, base: str = "main",
        merged: bool = False, comments: Sequence[str] = (),
    ) -> dict[str, Any]:  # fmt: skip
        data = issue(repo, number, title, body, comments=len(comments), is_pull=True,
                     state="closed" if merged else "open")  # fmt: skip
        self.issues[(repo, number)] = data
        self.comments[(repo, number)] = [comment(repo, number, next(self._ids), c) for c in comments]
        self.pulls[(repo, number)] = pull(repo, number, title, body, head=head, base=base, merged=merged)
        return data

    def add_file(self, repo: str, path: str, content: str | bytes, ref: str = "main") -> None:
        self.files[(repo, ref, path)] = content.encode() if isinstance(content, str) else content

    # -- routes

    def add_routes(self, app: web.Application) -> None:
        api = "/api/v3/repos/{owner}/{repo}"
        app.router.add_get(api + "/issues/{number:\\d+}", self._get_issue)
        app.router.add_get(api + "/issues/{number:\\d+}/comments", self._list_comments)
        app.router.add_post(api + "/issues/{number:\\d+}/comments", self._create_comment)
        app.router.add_get(api + "/issues", self._list_issues)
        app.router.add_post(api + "/issues", self._create_issue)
        app.router.add_get(api + "/pulls/{number:\\d+}", self._get_pull)
        app.router.add_get(api + "/contents/{path:.+}", self._get_content)
        app.router.add_route("*", "/api/{tail:.*}", self._api_unknown)
        app.router.add_route("*", "/{tail:.*}", self._git)

    # -- git smart HTTP, through git http-backend

    async def _git(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        auth = request.headers.get("Authorization", "")
        self.git_requests.append({"method": request.method, "path": path, "authorization": auth})
        await self.sleep(self.git_delay)
        repo = path.lstrip("/").split(".git/", 1)[0].removesuffix(".git")
        if repo in self.private:
            username, password = self.private[repo]
            expected = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
            if auth != expected:
                return web.Response(
                    status=401,
                    text="Unauthorized",
                    headers={"WWW-Authenticate": 'Basic realm="GitHub"'},
                )
        body = await request.read()
        if request.headers.get("Content-Encoding", "").lower() == "gzip" and body[:2] == b"\x1f\x8b":
            body = gzip.decompress(body)
        env = {
            "PATH": GIT_ENV["PATH"],
            "HOME": str(self.root),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": "/dev/null",
            "GIT_PROJECT_ROOT": str(self.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "PATH_INFO": path,
            "QUERY_STRING": request.query_string,
            "REQUEST_METHOD": request.method,
            "CONTENT_TYPE": request.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_ADDR": request.remote or "127.0.0.1",
            "REMOTE_USER": self.private[repo][0] if repo in self.private else "",
            "SERVER_PROTOCOL": "HTTP/1.1",
        }
        if proto := request.headers.get("Git-Protocol"):
            env["GIT_PROTOCOL"] = proto
        proc = await asyncio.create_subprocess_exec(
            "git",
            "http-backend",
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        out, _err = await proc.communicate(body)
        head, _, payload = out.partition(b"\r\n\r\n")
        if not _:
            head, _, payload = out.partition(b"\n\n")
        status = 200
        headers: dict[str, str] = {}
        for line in head.decode("latin-1").splitlines():
            key, _, value = line.partition(":")
            if key.lower() == "status":
                status = int(value.strip().split()[0])
            elif key:
                headers[key.strip()] = value.strip()
        headers.pop("Content-Length", None)
        return web.Response(status=status, body=payload, headers=headers)

    # -- REST

    def _repo(self, request: web.Request) -> str:
        return f"{request.match_info['owner']}/{request.match_info['repo']}"

    def _token_ok(self, request: web.Request) -> bool | None:
        """True: the right token; False: a wrong one; None: none sent."""
        auth = request.headers.get("Authorization", "")
        if not auth:
            return None
        scheme, _, value = auth.partition(" ")
        return scheme.lower() in ("bearer", "token") and value == self.token

    async def _prelude(self, request: web.Request, route: str, *, write: bool = False) -> web.Response | None:
        """Record the request; a scripted failure, a token refusal or None (go on)."""
        self.api_requests.append(
            {
                "route": route,
                "method": request.method,
                "path": request.path,
                "query": dict(request.query),
                "authorization": request.headers.get("Authorization", ""),
            }
        )
        await self.sleep(self.api_delay)
        failure = self.failures.take(route, dict(request.query), request.method)
        if failure is not None:
            headers = {"X-GitHub-Request-Id": "FAKE:1"}
            if failure.status in (403, 429) and failure.retry_after is not None:
                headers |= {
                    "X-RateLimit-Limit": "60",
                    "X-RateLimit-Remaining": "0",
                    "X-RateLimit-Used": "60",
                    "X-RateLimit-Reset": str(int(time.time() + failure.retry_after)),
                }
            return web.json_response(
                {"message": failure.message, "documentation_url": "https://docs.github.com/rest"},
                status=failure.status,
                headers=headers,
            )
        ok = self._token_ok(request)
        if ok is False or (write and ok is None):
            if ok is None:
                return web.json_response(
                    {
                        "message": "Requires authentication",
                        "documentation_url": "https://docs.github.com/rest",
                    },
                    status=401,
                )
            return web.json_response(
                {"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"},
                status=401,
            )
        return None

    @staticmethod
    def _not_found() -> web.Response:
        return web.json_response(
            {"message": "Not Found", "documentation_url": "https://docs.github.com/rest", "status": "404"},
            status=404,
        )

    async def _get_issue(self, request: web.Request) -> web.Response:
        if (refused := await self._prelude(request, "issues.get")) is not None:
            return refused
        found = self.issues.get((self._repo(request), int(request.match_info["number"])))
        return web.json_response(found) if found else self._not_found()

    async def _list_comments(self, request: web.Request) -> web.Response:
        if (refused := await self._prelude(request, "issues.list_comments")) is not None:
            return refused
        key = (self._repo(request), int(request.match_info["number"]))
        if key not in self.issues:
            return self._not_found()
        per_page = int(request.query.get("per_page", "30"))
        return web.json_response(self.comments.get(key, [])[:per_page])

    async def _get_pull(self, request: web.Request) -> web.Response:
        if (refused := await self._prelude(request, "pulls.get")) is not None:
            return refused
        found = self.pulls.get((self._repo(request), int(request.match_info["number"])))
        return web.json_response(found) if found else self._not_found()

    async def _list_issues(self, request: web.Request) -> web.Response:
        if (refused := await self._prelude(request, "issues.list_for_repo")) is not None:
            return refused
        repo = self._repo(request)
        state = request.query.get("state", "open")
        wanted = {lb for lb in request.query.get("labels", "").split(",") if lb}
        per_page = int(request.query.get("per_page", "30"))
        found = [
            data
            for (r, _n), data in sorted(self.issues.items(), key=lambda kv: -kv[0][1])
            if r == repo
            and (state == "all" or data["state"] == state)
            and wanted <= {lb["name"] for lb in data["labels"]}
        ]
        return web.json_response(found[:per_page])

    async def _get_content(self, request: web.Request) -> web.Response:
        if (refused := await self._prelude(request, "repos.get_content")) is not None:
            return refused
        repo, path = self._repo(request), request.match_info["path"]
        ref = request.query.get("ref", self.default_branch)
        data = self.files.get((repo, ref, path))
        if data is None:
            return self._not_found()
        return web.json_response(content_file(repo, path, data, ref))

    async def _create_issue(self, request: web.Request) -> web.Response:
        if (refused := await self._prelude(request, "issues.create", write=True)) is not None:
            return refused
        repo = self._repo(request)
        payload = await request.json()
        if not payload.get("title"):
            return web.json_response(
                {
                    "message": "Validation Failed",
                    "errors": [{"resource": "Issue", "code": "missing_field", "field": "title"}],
                    "documentation_url": "https://docs.github.com/rest/issues/issues#create-an-issue",
                },
                status=422,
            )
        number = max([n for (r, n) in self.issues if r == repo] or [0]) + 1
        data = self.add_issue(repo, number, payload["title"], payload.get("body") or "", author="bot-user")
        return web.json_response(data, status=201)

    async def _create_comment(self, request: web.Request) -> web.Response:
        if (refused := await self._prelude(request, "issues.create_comment", write=True)) is not None:
            return refused
        key = (self._repo(request), int(request.match_info["number"]))
        if key not in self.issues:
            return self._not_found()
        payload = await request.json()
        made = comment(key[0], key[1], next(self._ids), payload.get("body", ""), author="bot-user")
        self.comments.setdefault(key, []).append(made)
        self.issues[key]["comments"] += 1
        return web.json_response(made, status=201)

    async def _api_unknown(self, request: web.Request) -> web.Response:
        self.api_requests.append({"route": "unknown", "method": request.method, "path": request.path})
        return self._not_found()
