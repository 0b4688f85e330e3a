"""Files users share with the bot on Slack (the `files` of a message or a mention), as the core's
`Incoming`: downloaded with the bot token (scope `files:read`) from Slack's own file host only,
streamed and refused past the size the core allows."""

from __future__ import annotations

import logging
from typing import Any, Final
from urllib.parse import urlsplit

import httpx

from adapters.slack.deps import SlackDeps
from bot.inbox import Incoming, IncomingError, Reader
from bot.tools.files import readable

log = logging.getLogger(__name__)

FILE_HOSTS: Final = frozenset({"files.slack.com"})
DOWNLOAD_TIMEOUT_S: Final = 60.0


async def shared_files(deps: SlackDeps, event: dict[str, Any]) -> list[Incoming]:
    """The files of a message event, as the core takes them (none: an empty list). A file Slack
    sent only the id of ("file_access": "check_file_info") is looked up with files.info."""
    found = []
    for f in event.get("files") or []:
        if not isinstance(f, dict) or not f.get("id"):
            continue
        if f.get("file_access") == "check_file_info" or not f.get("name"):
            f = await _info(deps, str(f["id"])) or f
        if f.get("mode") in ("tombstone", "hidden_by_limit"):
            continue
        size = f.get("size")
        found.append(
            Incoming(
                name=str(f.get("name") or f.get("title") or f["id"]),
                mime=str(f.get("mimetype") or ""),
                size=int(size) if isinstance(size, int) else None,
                read=_reader(deps, f),
            )
        )
    return found


async def _info(deps: SlackDeps, file_id: str) -> dict[str, Any] | None:
    try:
        answer = await deps.adapter.client.files_info(file=file_id)
    except Exception as exc:
        log.warning("files.info for %s failed: %s", file_id, type(exc).__name__)
        return None
    file = answer.get("file")
    return file if isinstance(file, dict) else None


def _allowed(deps: SlackDeps, url: str) -> bool:
    """Slack's file host, or the host of SLACK_API_URL (a Slack-compatible server, a test's)."""
    parts = urlsplit(url)
    api = urlsplit(deps.settings.api_url)
    return parts.scheme in ("https", "http") and (
        (parts.scheme == "https" and parts.hostname in FILE_HOSTS)
        or (parts.hostname == api.hostname and parts.port == api.port)
    )


def _reader(deps: SlackDeps, info: dict[str, Any]) -> Reader:
    async def read(limit: int) -> bytes:
        url = info.get("url_private_download") or info.get("url_private")
        if not url or not _allowed(deps, str(url)):
            raise IncomingError("Slack gave no address the bot may download it from")
        token = deps.settings.bot_token.get_secret_value() if deps.settings.bot_token else ""
        try:
            async with (
                httpx.AsyncClient(timeout=DOWNLOAD_TIMEOUT_S, follow_redirects=False) as client,
                client.stream("GET", str(url), headers={"Authorization": f"Bearer {token}"}) as response,
            ):
                if response.status_code != 200:
                    raise IncomingError(
                        f"Slack answered {response.status_code} (does the app have files:read?)"
                    )
                if "text/html" in response.headers.get("content-type", ""):  # a login page, not the file
                    raise IncomingError(
                        "Slack sent a web page instead of the file (add the files:read scope)"
                    )
                data = bytearray()
                async for chunk in response.aiter_bytes():
                    data += chunk
                    if len(data) > limit:
                        raise IncomingError(f"it is larger than {readable(limit)}")
                return bytes(data)
        except httpx.HTTPError as exc:
            log.warning("downloading a Slack file failed: %s", type(exc).__name__)
            raise IncomingError(f"the download failed ({type(exc).__name__})") from None

    return read
