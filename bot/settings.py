"""Settings: one pydantic-settings model, read from the environment and `.env`.

Fields are grouped in AutoGPT's `.env.template` sections (`section` in each field's extra).
`.env.template` is generated from this file (`python -m bot.settings --template`), and a test
keeps the two in step.
"""

from __future__ import annotations

import functools
import json
import os
import re
import sys
from collections.abc import Mapping
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, TypeVar, get_origin
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_serializer,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.redact import mask_url, url_credentials

SECTIONS = [
    "LLM provider",
    "LLM models",
    "Budgets and limits",
    "Memory",
    "Image generation",
    "Audio to text",
    "GitHub",
    "Web browsing",
    "Text to speech",
    "Twitter",
    "Code execution",
    "MCP tool servers",
    "Chat platforms",
    "Continuous mode and schedules",
    "General",
]

CommaList = Annotated[list[str], NoDecode]
C = TypeVar("C", bound="BaseConfig")

DEFAULT_PRICES: dict[str, tuple[float, float]] = {
    # USD per million tokens: (input, output)
    "gpt-4o": (2.5, 10.0),
    "gpt-4o-mini": (0.15, 0.6),
    "gpt-4.1": (2.0, 8.0),
    "gpt-4.1-mini": (0.4, 1.6),
    "gpt-4": (30.0, 60.0),
    "gpt-3.5-turbo": (0.5, 1.5),
    "text-embedding-3-small": (0.02, 0.0),
    "text-embedding-ada-002": (0.1, 0.0),
}
Unit = Literal["image", "minute", "1k_chars"]
DEFAULT_UNIT_PRICES: dict[str, dict[str, float]] = {
    # USD per unit: an image made, a minute of audio transcribed, 1,000 characters spoken
    "dall-e-3": {"image": 0.04},
    "dall-e-2": {"image": 0.02},
    "gpt-image-1": {"image": 0.042},
    "whisper-1": {"minute": 0.006},
    "gpt-4o-transcribe": {"minute": 0.006},
    "gpt-4o-mini-transcribe": {"minute": 0.003},
    "tts-1": {"1k_chars": 0.015},
    "tts-1-hd": {"1k_chars": 0.03},
    "gpt-4o-mini-tts": {"1k_chars": 0.015},
    "elevenlabs": {"1k_chars": 0.3},
}


def _f(default: Any, section: str, description: str, **kw: Any) -> Any:
    return Field(default, description=description, json_schema_extra={"section": section}, **kw)


def setting(default: Any, description: str, **kw: Any) -> Any:
    """A setting of an adapter (its section is the adapter's)."""
    return Field(default, description=description, **kw)


class McpServer(BaseModel):
    """One MCP tool server: a command the bot starts and talks to on its stdin and stdout (stdio),
    or the URL of a streamable HTTP server. The values of `env` and `headers` are secrets."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$")
    command: str | None = None
    args: list[str] = []
    env: dict[str, SecretStr] = {}
    cwd: Path | None = None
    url: str | None = None
    headers: dict[str, SecretStr] = {}
    type: str | None = None  # the mcpServers format's: stdio, http or streamable-http
    disabled: bool = False

    @model_validator(mode="after")
    def _one_kind(self) -> McpServer:
        if (self.command is None) == (self.url is None):
            raise ValueError("give either command (a stdio server) or url (a streamable HTTP server)")
        kind = (self.type or "").lower().replace("_", "-")
        if kind == "sse":
            raise ValueError("SSE servers are not supported: use the server's streamable HTTP endpoint")
        if kind not in ("", "stdio", "http", "streamable-http", "streamablehttp"):
            raise ValueError(f"unknown type {self.type!r} (stdio, http or streamable-http)")
        if self.url is not None:
            if kind == "stdio" or self.args or self.env or self.cwd is not None:
                raise ValueError("a url server takes headers, not type stdio, args, env or cwd")
            if urlsplit(self.url).scheme not in ("http", "https"):
                raise ValueError(f"url must be http:// or https://, not {mask_url(self.url)!r}")
        elif self.headers or kind not in ("", "stdio"):
            raise ValueError("a command server takes args, env and cwd, not headers or an HTTP type")
        return self

    @field_serializer("url")
    def _masked_url(self, url: str | None) -> str | None:
        return mask_url(url) if url else url


def read_mcp_config(path: Path) -> list[McpServer]:
    """The servers of a file in the common `mcpServers` format; ValueError says what is wrong."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise ValueError(f"{path} is not JSON: {exc}") from None
    servers = data.get("mcpServers") if isinstance(data, dict) else None
    if not isinstance(servers, dict):
        raise ValueError(f'{path} has no "mcpServers" object')
    found = []
    for name, entry in servers.items():
        if not isinstance(entry, dict):
            raise ValueError(f"{name}: expected an object")
        try:
            found.append(McpServer.model_validate({**entry, "name": name}))
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            raise ValueError(f"{name}: {where + ': ' if where else ''}{err['msg']}") from None
    return found


class BaseConfig(BaseSettings):
    """What every settings class of the bot shares: read from the environment and `.env`, names
    in any case, a comma list (or a JSON list) for a list, an empty value for "not set".
    An adapter's settings subclass it with their own `env_prefix` and `section`."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )
    section: ClassVar[str] = "General"

    @field_validator("*", mode="before")
    @classmethod
    def _from_text(cls, v: Any, info: ValidationInfo) -> Any:
        if not isinstance(v, str) or info.field_name is None:
            return v
        field = cls.model_fields[info.field_name]
        if get_origin(field.annotation) is list or field.annotation is list:
            text = v.strip()
            if text.startswith("["):
                return json.loads(text)
            return [p.strip() for p in text.split(",") if p.strip()]
        if field.default is None and not v.strip():
            return None
        return v

    @classmethod
    def env_name(cls, field: str) -> str:
        return (str(cls.model_config.get("env_prefix") or "") + field).upper()

    @classmethod
    def section_of(cls, field: str) -> str:
        extra = cls.model_fields[field].json_schema_extra
        return str(extra.get("section", cls.section)) if isinstance(extra, dict) else cls.section


class Settings(BaseConfig):
    # --- LLM provider
    openai_api_key: SecretStr | None = _f(None, "LLM provider", "API key for OpenAI or a compatible server")
    openai_base_url: str | None = _f(
        None, "LLM provider", "Base URL of any OpenAI-compatible server (Ollama, vLLM, ...); empty: OpenAI"
    )
    openai_organization: str | None = _f(None, "LLM provider", "OpenAI organization id (optional)")
    use_azure: bool = _f(False, "LLM provider", "Use Azure OpenAI instead (needs the three AZURE_ keys)")
    azure_openai_endpoint: str | None = _f(
        None, "LLM provider", "Azure endpoint, https://NAME.openai.azure.com"
    )
    azure_openai_deployment: str | None = _f(
        None, "LLM provider", "Azure deployment name used for chat calls"
    )
    azure_model_map: Annotated[dict[str, str], NoDecode] = _f(
        {},
        "LLM provider",
        "Azure deployment of each model (AutoGPT's azure.yaml), JSON "
        '{"gpt-4o": "my-gpt4o", "text-embedding-3-small": "my-embed"} or gpt-4o=my-gpt4o,...: SMART_LLM, '
        "FAST_LLM and EMBEDDING_MODEL each go to their own deployment; a chat model missing from it "
        "goes to AZURE_OPENAI_DEPLOYMENT, an embedding model to a deployment named after it",
    )
    azure_openai_api_version: str = _f("2024-10-21", "LLM provider", "Azure OpenAI API version")
    llm_timeout: float = _f(60.0, "LLM provider", "Seconds before one LLM request times out", gt=0)
    llm_max_retries: int = _f(
        3, "LLM provider", "Retries (with backoff) on 429, 5xx and timeouts before a session pauses", ge=0
    )
    max_llm_reply_bytes: int = _f(
        1_000_000,
        "LLM provider",
        "Largest LLM reply read, in bytes; a larger one is treated as malformed (asked again once)",
        ge=10_000,
    )

    # --- LLM models
    smart_llm: str = _f("gpt-4o", "LLM models", "Model that executes: proposes each command")
    fast_llm: str = _f("gpt-4o-mini", "LLM models", "Model that creates and prioritises tasks")
    smart_token_limit: int = _f(8000, "LLM models", "Context window used for SMART_LLM prompts", ge=1000)
    fast_token_limit: int = _f(4000, "LLM models", "Context window used for FAST_LLM prompts", ge=1000)
    max_reply_tokens: int = _f(1000, "LLM models", "Tokens reserved for each reply", ge=100)
    embedding_model: str = _f("text-embedding-3-small", "LLM models", "Embedding model for memory")
    temperature: float = _f(0.0, "LLM models", "Sampling temperature", ge=0.0, le=2.0)
    smart_llm_vision: bool = _f(
        False, "LLM models", "SMART_LLM takes images: pictures posted to a session are shown to it"
    )
    model_prices: dict[str, tuple[float, float] | dict[Unit, float]] = _f(
        {**DEFAULT_PRICES, **DEFAULT_UNIT_PRICES},
        "LLM models",
        'Price table, JSON: {"model": [USD per 1M input tokens, USD per 1M output tokens]}, and for '
        'media {"model": {"image" | "minute" | "1k_chars": USD}} (an image made, a minute transcribed, '
        "1,000 characters spoken); a model missing from it costs DEFAULT_MODEL_PRICE (tokens) or 0 (media)",
    )
    default_model_price: tuple[float, float] = _f(
        (5.0, 15.0), "LLM models", "Price of a model missing from MODEL_PRICES, JSON [input, output]"
    )

    # --- Budgets and limits
    max_cycles: int = _f(50, "Budgets and limits", "Cycles one session may run", ge=1)
    session_budget_usd: float = _f(1.0, "Budgets and limits", "USD one session may spend", ge=0)
    user_daily_budget_usd: float = _f(10.0, "Budgets and limits", "USD one user may spend a day (UTC)", ge=0)
    max_sessions_per_user: int = _f(3, "Budgets and limits", "Sessions one user may have open at once", ge=1)
    continuous_limit: int = _f(25, "Budgets and limits", "Default cycle cap of a continuous run", ge=1)
    approve_next_n: int = _f(5, "Budgets and limits", "N of the 'Approve next N' button", ge=2, le=100)
    max_goal_chars: int = _f(4000, "Budgets and limits", "Longest goal text accepted", ge=10)
    max_result_chars: int = _f(
        8000,
        "Budgets and limits",
        "A command's result is kept in the session up to this many characters; the whole of a longer "
        "one goes to a file in the workspace, which the agent can read",
        ge=200,
    )
    max_args_chars: int = _f(
        16000,
        "Budgets and limits",
        "A command's arguments are kept in the session up to this many characters (as JSON); longer "
        "ones are kept whole in a file in the workspace and used from there",
        ge=200,
    )
    max_file_bytes: int = _f(
        10 * 1024 * 1024,
        "Budgets and limits",
        "Largest file write_to_file, append_to_file or download_file may leave, in bytes",
        ge=1024,
    )
    workspace_quota_mb: float = _f(
        200.0, "Budgets and limits", "Megabytes the files of one session's workspace may take in all", gt=0
    )
    running_notice_s: float = _f(
        1.0,
        "Chat platforms",
        "A step's message says its command is running once it has run this long (0: always)",
        ge=0,
    )

    # --- Memory
    memory_backend: Literal["local", "redis", "milvus", "pinecone", "no_memory"] = _f(
        "local", "Memory", "Long-term memory: local, redis, milvus, pinecone or no_memory"
    )
    memory_index: str = _f("autogpt", "Memory", "Name of the memory index")
    memory_scope: Literal["session", "user", "channel"] = _f(
        "session", "Memory", "Who shares memories: session, user or channel"
    )
    milvus_addr: str | None = _f(None, "Memory", "Milvus server URL or a Milvus Lite file")
    milvus_collection: str = _f("autogpt", "Memory", "Milvus collection")
    wipe_memory_on_start: bool = _f(False, "Memory", "Wipe long-term memory when the bot starts")
    milvus_token: SecretStr | None = _f(
        None, "Memory", "Milvus server credentials: user:password or an API key; empty: none"
    )
    pinecone_api_key: SecretStr | None = _f(None, "Memory", "Pinecone API key (MEMORY_BACKEND=pinecone)")
    pinecone_index_host: str | None = _f(
        None,
        "Memory",
        "Host of the Pinecone index (its URL, https://NAME-PROJECT.svc.ENV.pinecone.io; or Pinecone "
        "Local's http://127.0.0.1:5081); one namespace per memory scope",
    )

    # --- Image generation
    image_provider: Literal["dalle", "huggingface", "sdwebui"] = _f(
        "dalle",
        "Image generation",
        "generate_image's provider: dalle (the OpenAI images API of the configured OpenAI, Azure or "
        "compatible server), huggingface (the Inference API) or sdwebui (a Stable Diffusion WebUI)",
    )
    image_model: str = _f(
        "dall-e-3", "Image generation", "Model of IMAGE_PROVIDER=dalle (gpt-image-1, dall-e-2)"
    )
    image_size: int = _f(
        1024, "Image generation", "Size of generated images in pixels (the agent may ask for another)", ge=64
    )
    huggingface_image_model: str = _f(
        "stabilityai/stable-diffusion-xl-base-1.0", "Image generation", "Hugging Face text-to-image model"
    )
    huggingface_api_token: SecretStr | None = _f(
        None, "Image generation", "Hugging Face token (generate_image and read_audio_from_file)"
    )
    huggingface_api_url: str | None = _f(
        None,
        "Image generation",
        "Base URL of a server with Hugging Face's serverless inference layout (POST <url>/models/<model>); "
        "empty: Hugging Face's router (https://router.huggingface.co/hf-inference)",
    )
    sd_webui_url: str = _f(
        "http://127.0.0.1:7860", "Image generation", "Stable Diffusion WebUI URL (started with --api)"
    )
    sd_webui_auth: SecretStr | None = _f(
        None, "Image generation", "Stable Diffusion WebUI user:password (its --api-auth)"
    )
    media_timeout_s: float = _f(
        120.0,
        "Image generation",
        "Seconds an image, speech or transcription provider may take to answer (a CPU is slow)",
        gt=0,
    )
    max_media_bytes: int = _f(
        10 * 1024 * 1024,
        "Image generation",
        "Largest image or audio a provider may send back, in bytes; a larger one is refused",
        ge=64 * 1024,
    )

    # --- Audio to text
    audio_to_text_provider: Literal["huggingface", "openai"] = _f(
        "openai",
        "Audio to text",
        "read_audio_from_file's provider: openai (the transcriptions API of the configured OpenAI, "
        "Azure or compatible server, which local Whisper servers speak too) or huggingface",
    )
    openai_transcription_model: str = _f(
        "whisper-1", "Audio to text", "Model of AUDIO_TO_TEXT_PROVIDER=openai"
    )
    huggingface_audio_to_text_model: str = _f(
        "openai/whisper-large-v3", "Audio to text", "Hugging Face speech-to-text model"
    )

    # --- GitHub
    github_api_key: SecretStr | None = _f(
        None, "GitHub", "GitHub token: private repositories for clone_repository, and the GitHub tools"
    )
    github_username: str | None = _f(None, "GitHub", "GitHub user name the token belongs to")
    github_url: str = _f(
        "https://github.com",
        "GitHub",
        "GitHub or GitHub Enterprise: clone_repository clones only from this host",
    )
    github_api_url: str | None = _f(
        None, "GitHub", "GitHub REST API URL; empty: api.github.com, or GITHUB_URL/api/v3 for Enterprise"
    )
    clone_max_mb: float = _f(100.0, "GitHub", "Largest repository clone_repository fetches, in MB", gt=0)
    clone_timeout_s: float = _f(120.0, "GitHub", "Seconds one clone may take", gt=0)

    # --- Web browsing
    use_web_browser: Literal["http", "chromium"] = _f(
        "http", "Web browsing", "http (plain fetch) or chromium (headless browser for JavaScript pages)"
    )
    headless_browser: bool = _f(True, "Web browsing", "Run the browser headless")
    browse_chunk_max_length: int = _f(
        3000, "Web browsing", "Characters per chunk a page is split into", ge=200
    )
    browse_allowed_hosts: CommaList = _f(
        [], "Web browsing", "Internal hosts the SSRF guard lets through, comma list"
    )
    allow_downloads: bool = _f(False, "Web browsing", "Enable download_file")
    google_api_key: SecretStr | None = _f(None, "Web browsing", "Google Custom Search API key")
    google_custom_search_engine_id: str | None = _f(None, "Web browsing", "Google Custom Search engine id")
    google_search_api_url: str = _f(
        "https://www.googleapis.com", "Web browsing", "Base URL of the Google Custom Search JSON API"
    )
    web_search_backend: str = _f(
        "duckduckgo",
        "Web browsing",
        "ddgs engines web_search uses without Google keys: duckduckgo, auto (several) or a comma list",
    )
    web_search_timeout_s: float = _f(15.0, "Web browsing", "Seconds one web_search may take", gt=0)
    user_agent: str = _f(
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
        "Web browsing",
        "User agent for web requests",
    )
    browse_max_bytes: int = _f(
        5 * 1024 * 1024, "Web browsing", "Largest page or download fetched, in bytes", ge=1024
    )
    browse_timeout_s: float = _f(
        20.0, "Web browsing", "Seconds one fetch may take in all, redirects included", gt=0
    )
    browse_max_redirects: int = _f(5, "Web browsing", "Redirects one fetch may follow", ge=0, le=30)
    chromium_path: str = _f(
        "/usr/bin/chromium", "Web browsing", "Chromium executable used when USE_WEB_BROWSER=chromium"
    )

    # --- Text to speech
    text_to_speech_provider: Literal["espeak", "streamelements", "elevenlabs", "openai", "gtts", "macos"] = (
        _f(
            "espeak",
            "Text to speech",
            "Voice of --speak: espeak (espeak-ng, local, offline), streamelements, elevenlabs, openai (the "
            "speech API of the configured OpenAI server), gtts (Google Translate's voice) or macos (say)",
        )
    )
    espeak_voice: str = _f("en", "Text to speech", "espeak-ng voice (espeak-ng --voices)")
    streamelements_voice: str = _f("Brian", "Text to speech", "StreamElements voice")
    streamelements_url: str = _f("https://api.streamelements.com", "Text to speech", "StreamElements API URL")
    elevenlabs_api_key: SecretStr | None = _f(None, "Text to speech", "ElevenLabs API key")
    elevenlabs_voice_id: str = _f("21m00Tcm4TlvDq8ikWAM", "Text to speech", "ElevenLabs voice id")
    elevenlabs_url: str = _f("https://api.elevenlabs.io", "Text to speech", "ElevenLabs API URL")
    openai_tts_model: str = _f("tts-1", "Text to speech", "Model of TEXT_TO_SPEECH_PROVIDER=openai")
    openai_tts_voice: str = _f("alloy", "Text to speech", "Voice of TEXT_TO_SPEECH_PROVIDER=openai")
    gtts_tld: str = _f("com", "Text to speech", "Google domain gTTS speaks through (com, co.uk, ...)")

    # --- Twitter
    tw_consumer_key: SecretStr | None = _f(None, "Twitter", "X (Twitter) consumer key, for send_tweet")
    tw_consumer_secret: SecretStr | None = _f(None, "Twitter", "X (Twitter) consumer secret")
    tw_access_token: SecretStr | None = _f(None, "Twitter", "X (Twitter) access token")
    tw_access_token_secret: SecretStr | None = _f(None, "Twitter", "X (Twitter) access token secret")
    twitter_api_url: str = _f("https://api.twitter.com", "Twitter", "X API URL send_tweet posts to")

    # --- Continuous mode and schedules
    scheduler_timezone: str = _f(
        "UTC", "Continuous mode and schedules", "Time zone of schedules without --tz"
    )
    schedule_misfire_grace_s: float = _f(
        300.0,
        "Continuous mode and schedules",
        "A run missed while down still runs within this many seconds",
        ge=0,
    )
    max_schedules_per_user: int = _f(5, "Continuous mode and schedules", "Schedules one user may have", ge=0)
    min_schedule_interval_s: float = _f(
        300.0, "Continuous mode and schedules", "Shortest interval a schedule may repeat at", ge=1
    )
    scheduler_leader_ttl_s: float = _f(
        15.0, "Continuous mode and schedules", "Seconds before another process takes over the schedules", gt=0
    )
    scheduler_sync_s: float = _f(
        5.0, "Continuous mode and schedules", "How often the leader re-reads the stored schedules", gt=0
    )

    # --- Code execution
    execute_local_commands: bool = _f(
        False,
        "Code execution",
        "Offer execute_python_code, execute_python_file and execute_shell (off, as in AutoGPT); they run "
        "in the sandbox SANDBOX names",
    )
    sandbox: Literal["auto", "docker", "bwrap", "none"] = _f(
        "auto",
        "Code execution",
        "Where commands run: docker (a container per command), bwrap (bubblewrap on this machine), "
        "auto (Docker when an engine answers, else bubblewrap when it works, else no execution tools) "
        "or none (directly on this machine as the bot's user: only if you must)",
    )
    sandbox_image: str = _f(
        "python:3.11-slim", "Code execution", "Docker image commands run in (SANDBOX=docker)"
    )
    sandbox_network: bool = _f(
        False,
        "Code execution",
        "Let commands use the network. Docker gives them a bridged network; bubblewrap shares this "
        "machine's, services on 127.0.0.1 (Redis) included",
    )
    sandbox_timeout_s: float = _f(
        60.0, "Code execution", "Seconds one command may run (wall clock; CPU seconds as well)", gt=0, le=240
    )
    sandbox_memory_mb: int = _f(
        1024, "Code execution", "Memory one command may use, in MB (bubblewrap: its address space)", ge=64
    )
    sandbox_max_processes: int = _f(
        256,
        "Code execution",
        "Processes and threads a command may have (bubblewrap counts them per user: the bot's own too "
        "when it does not run as root)",
        ge=8,
    )
    sandbox_cpus: float = _f(1.0, "Code execution", "CPUs a command's container may use (Docker)", gt=0)
    sandbox_docker_data_dir: Path | None = _f(
        None,
        "Code execution",
        "Where DATA_DIR is on the Docker engine's machine, when the bot itself runs in a container "
        "(workspaces are mounted from there); empty: DATA_DIR",
    )
    shell_env_allowlist: CommaList = _f(
        [],
        "Code execution",
        "Environment variables a command the agent runs may see, besides PATH, LANG and HOME (its "
        "workspace), comma list; a setting of the bot is never passed",
    )
    tool_policy: Annotated[dict[str, Literal["allow", "ask", "deny"]], NoDecode] = _f(
        {},
        "Code execution",
        "Which commands need a human, e.g. web_search=allow,execute_shell=ask,send_tweet=deny,*=ask: "
        "allow runs without one, ask waits for an approval (approvals given in advance and continuous "
        "mode cover it, unless it has effects outside the session), deny is never offered",
    )

    # --- MCP tool servers
    mcp_servers: Annotated[list[McpServer], NoDecode] = _f(
        [],
        "MCP tool servers",
        'MCP tool servers, a JSON list: {"name": "demo", "command": "python", "args": ["server.py"], '
        '"env": {}} is started by the bot and spoken to on stdio; {"name": "docs", "url": '
        '"https://host/mcp", "headers": {"Authorization": "Bearer ..."}} is a streamable HTTP server. '
        "Their tools are offered as NAME__TOOL; env and header values are secrets",
    )
    mcp_config: Path | None = _f(
        None,
        "MCP tool servers",
        'A JSON file in the common mcpServers format ({"mcpServers": {"demo": {"command": "python", '
        '"args": ["server.py"]}, "docs": {"url": "https://host/mcp"}}}), added to MCP_SERVERS',
    )
    mcp_timeout_s: float = _f(
        60.0,
        "MCP tool servers",
        "Seconds an MCP server may take to answer a tool call; a call that takes longer is an error "
        "the agent sees (starting a server and listing its tools may take 30 s, or this if longer)",
        gt=0,
        le=290,
    )
    mcp_sandbox: bool = _f(
        False,
        "MCP tool servers",
        "Start stdio MCP servers in bubblewrap: they see /usr and the bot's Python environment "
        "read-only, their own folder DATA_DIR/mcp/NAME (put their files there) writable as their "
        "working directory, the network only with SANDBOX_NETWORK, and the limits of "
        "SANDBOX_MEMORY_MB and SANDBOX_MAX_PROCESSES",
    )

    # --- General
    redis_url: SecretStr | None = _f(
        None,
        "General",
        "redis://host:6379/0; empty (and no REDIS_SENTINEL): SQLite under DATA_DIR (one process only)",
    )
    redis_prefix: str = _f("autogpt:", "General", "Prefix of every Redis key")
    redis_max_connections: int = _f(
        100, "General", "Redis connections one process opens at most; more commands at once wait", ge=1
    )
    # --- Redis Cluster and Sentinel (bot/store/redis_client.py makes every Redis client from these)
    redis_cluster: bool = _f(
        False,
        "General",
        "REDIS_URL is one node of a Redis Cluster (the client finds the others and follows the slots); "
        "database 0 only. On a cluster REDIS_MAX_CONNECTIONS is per node",
    )
    redis_sentinel: str | None = _f(
        None,
        "General",
        "MASTER@host:port,host:port,...: find the Redis master MASTER through these Sentinels (and "
        "follow a failover); REDIS_URL then gives only the password and database (redis://:pw@/0) "
        "and may be empty",
    )
    data_dir: Path = _f(Path("./data"), "General", "Folder for SQLite files, workspaces and the archive")
    allowed_user_ids: CommaList = _f(
        [], "General", "User ids allowed to start sessions, comma list; empty: all"
    )
    admin_user_ids: CommaList = _f([], "General", "User ids who may decide on any session, comma list")
    disabled_commands: CommaList = _f([], "General", "Commands the agent may not use, comma list")
    finished_session_ttl_hours: float = _f(
        24.0, "General", "Hours a finished session stays in the live store (it is archived first)", gt=0
    )
    archive_retention_days: int = _f(90, "General", "Days finished sessions are kept in the archive", ge=1)
    archive_url: SecretStr | None = _f(
        None,
        "General",
        "postgresql://user:password@host:5432/db: finished sessions are archived in PostgreSQL, one "
        "archive for several processes and for reporting (?search_path=SCHEMA for a schema of its "
        "own); empty: SQLite under DATA_DIR",
    )
    lease_seconds: float = _f(
        30.0, "General", "Lease a process holds on a session while it works on it", gt=0
    )
    # --- Scale-out: receiving apart from driving (bot/queue.py, deploy/scaling.md)
    role: Literal["all", "ingress", "worker"] = _f(
        "all",
        "General",
        "What `autogpt-bot run` does (--role wins): all (receive and drive, one kind of process), "
        "ingress (hold the chat connections, ack and enqueue; never drive) or worker (drive queued "
        "sessions, post through the Web APIs; no chat connection); ingress and worker need REDIS_URL",
    )
    worker_concurrency: int = _f(
        200, "General", "Sessions one worker drives at once (ROLE=worker); more wait in the queue", ge=1
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = _f("INFO", "General", "Log level")
    ops_host: str = _f("0.0.0.0", "General", "Address of /healthz and /metrics (autogpt-bot run)")
    ops_port: int = _f(9102, "General", "Port of /healthz and /metrics (0: any free port)", ge=0, le=65535)

    @field_validator("redis_sentinel")
    @classmethod
    def _sentinel_spec(cls, v: str | None) -> str | None:
        if v is None or not v.strip():
            return None
        sentinel_spec(v)  # raises ValueError saying what is wrong
        return v.strip()

    @model_validator(mode="after")
    def _one_redis_topology(self) -> Settings:
        if self.redis_cluster and self.redis_sentinel:
            raise ValueError(
                "REDIS_CLUSTER and REDIS_SENTINEL are exclusive: a Redis Cluster fails over by itself"
            )
        return self

    @property
    def redis_configured(self) -> bool:
        """The session store (and MEMORY_BACKEND=redis) use Redis: REDIS_URL or REDIS_SENTINEL is set."""
        url = self.redis_url.get_secret_value().strip() if self.redis_url is not None else ""
        return bool(url or self.redis_sentinel)

    @field_validator("model_prices")
    @classmethod
    def _known_prices_stay(cls, v: dict[str, Any]) -> dict[str, Any]:
        """An admin's table adds to (or changes) the known prices; it does not drop the others."""
        return {**DEFAULT_PRICES, **DEFAULT_UNIT_PRICES, **v}

    @field_validator("tool_policy", mode="before")
    @classmethod
    def _policy(cls, v: Any) -> Any:
        if not isinstance(v, str):
            return v
        text = v.strip()
        if text.startswith("{"):
            return json.loads(text)
        policy: dict[str, str] = {}
        for item in filter(None, (p.strip() for p in re.split(r"[,\n]", text))):
            name, eq, word = item.partition("=")
            if not eq or not name.strip() or not word.strip():
                raise ValueError(f"{item!r} is not tool=allow|ask|deny")
            policy[name.strip()] = word.strip().lower()
        return policy

    @field_validator("mcp_config")
    @classmethod
    def _mcp_config(cls, v: Path | None, info: ValidationInfo) -> Path | None:
        if v is None:
            return v
        given = {s.name for s in info.data.get("mcp_servers") or []}
        for server in read_mcp_config(v):
            if server.name in given:
                raise ValueError(f"MCP_SERVERS names {server.name!r} too")
            given.add(server.name)
        return v

    @field_validator("mcp_servers")
    @classmethod
    def _mcp_names(cls, v: list[McpServer]) -> list[McpServer]:
        names = [s.name for s in v]
        if twice := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"server names must differ: {', '.join(twice)} is given twice")
        return v

    @field_validator("azure_model_map", mode="before")
    @classmethod
    def _model_map(cls, v: Any) -> Any:
        """model=deployment pairs (a comma list, or a JSON object), each name a non-empty string
        that fits in a URL path."""
        if isinstance(v, str):
            text = v.strip()
            if text.startswith("{"):
                v = json.loads(text)
            else:
                v = {}
                for item in filter(None, (p.strip() for p in re.split(r"[,\n]", text))):
                    model, eq, deployment = item.partition("=")
                    if not eq:
                        raise ValueError(f"{item!r} is not model=deployment")
                    v[model.strip()] = deployment.strip()
        if not isinstance(v, dict):
            raise ValueError("expected a JSON object or model=deployment pairs")
        for model, deployment in v.items():
            if not isinstance(deployment, str) or not deployment.strip():
                raise ValueError(f"the deployment of {model!r} must be a name, not {deployment!r}")
            if not str(model).strip():
                raise ValueError(f"a model name is empty (deployment {deployment!r})")
            if re.search(r"[/?#\s]", deployment.strip()):
                raise ValueError(f"{deployment!r} is not a deployment name")
        return {str(model).strip(): deployment.strip() for model, deployment in v.items()}

    @field_validator("openai_base_url")
    @classmethod
    def _no_credentials_in_base_url(cls, v: str | None) -> str | None:
        if v is not None and "@" in (urlsplit(v).netloc or ""):
            # the client sends the key in an Authorization header, which credentials in the URL
            # would contradict (aiohttp refuses the request)
            raise ValueError("must not hold credentials (user:password@host); put the key in OPENAI_API_KEY")
        return v

    @field_validator("archive_url")
    @classmethod
    def _postgresql_url(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and urlsplit(v.get_secret_value()).scheme not in ("postgresql", "postgres"):
            raise ValueError("must be a postgresql:// URL (postgresql://user:password@host:5432/db)")
        return v

    # --- derived
    def mcp_server_list(self) -> list[McpServer]:
        """The MCP servers of MCP_SERVERS and of the MCP_CONFIG file (read again: it was checked
        when the settings were read)."""
        try:
            from_file = read_mcp_config(self.mcp_config) if self.mcp_config is not None else []
        except ValueError as exc:
            raise ConfigError(f"Invalid setting MCP_CONFIG: {exc}") from None
        return [*self.mcp_servers, *from_file]

    @functools.cached_property
    def mcp_server_names(self) -> tuple[str, ...]:
        """The names of the MCP servers (read once per settings object: a session's settings ask
        each cycle which servers its channel leaves out)."""
        return tuple(server.name for server in self.mcp_server_list())

    def more_secrets(self) -> list[tuple[str, str]]:
        """Secrets inside structured settings (bot/redact.py): the MCP servers' env and header
        values, a header's token without its scheme (`Bearer ...`), and their URLs' credentials."""
        found: list[tuple[str, str]] = []
        for server in self.mcp_server_list():
            name = "MCP_SERVERS" if server in self.mcp_servers else "MCP_CONFIG"
            for value in [*server.env.values(), *server.headers.values()]:
                raw = value.get_secret_value()
                found.append((name, raw))
                if " " in raw.strip():
                    found.append((name, raw.strip().rsplit(" ", 1)[1]))
            if server.url:
                found += [(name, part) for part in url_credentials(server.url)]
        return found

    def price(self, model: str) -> tuple[float, float]:
        price = self.model_prices.get(model)
        return price if isinstance(price, tuple) else self.default_model_price

    def unit_price(self, model: str, unit: Unit) -> float:
        """USD per `unit` of a media model (0 when MODEL_PRICES does not price it)."""
        price = self.model_prices.get(model)
        return float(price.get(unit, 0.0)) if isinstance(price, dict) else 0.0

    def is_admin(self, user_id: str) -> bool:
        return user_id in self.admin_user_ids

    def may_start(self, user_id: str) -> bool:
        return not self.allowed_user_ids or user_id in self.allowed_user_ids

    def llm_configured(self) -> bool:
        if self.use_azure:
            return bool(self.azure_openai_endpoint and self.openai_api_key)
        return self.openai_api_key is not None or self.openai_base_url is not None


class ConfigError(Exception):
    """A setting has a wrong value. The message is one line naming the key."""


def load(cls: type[C], **overrides: Any) -> C:
    """Settings of `cls` from the environment and `.env`; ConfigError names a wrong key."""
    try:
        return cls(**overrides)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = err.get("loc") or ("?",)
        key = cls.env_name(str(loc[0])) + "".join(f"[{part}]" for part in loc[1:])
        got = err.get("input")
        if isinstance(got, str) and "://" in got:
            got = mask_url(got)  # a URL's credentials are not shown
        shown = "" if isinstance(got, dict) or got is None else f" (got {str(got)[:60]!r})"
        raise ConfigError(f"Invalid setting {key}: {err['msg']}{shown}") from None
    except ValueError as exc:  # pydantic-settings could not parse a JSON value (a list or a table)
        match = re.search(r'field "(\w+)"', str(exc))
        key = cls.env_name(match.group(1)) if match else "?"
        raise ConfigError(f"Invalid setting {key}: expected a JSON value, see .env.template") from None


def load_settings(**overrides: Any) -> Settings:
    return load(Settings, **overrides)


SETTINGS_ENTRY_POINTS = "autogpt_bot.settings"


def settings_classes() -> list[type[BaseConfig]]:
    """The core's settings and every installed adapter's, found by their entry points (group
    `autogpt_bot.settings`) without importing the adapters themselves."""
    found: list[type[BaseConfig]] = [Settings]
    for point in sorted(entry_points(group=SETTINGS_ENTRY_POINTS), key=lambda p: p.name):
        cls = point.load()
        if isinstance(cls, type) and issubclass(cls, BaseConfig) and cls not in found:
            found.append(cls)
    return found


def adapter_settings() -> list[BaseConfig]:
    """Every installed adapter's settings, read from the environment and `.env` (ConfigError
    names a wrong key)."""
    return [load(cls) for cls in settings_classes()[1:]]


@cache
def setting_names() -> frozenset[str]:
    """The environment names of every setting of the bot and its adapters."""
    return frozenset(cls.env_name(name) for cls in settings_classes() for name in cls.model_fields)


def shown(value: Any) -> str:
    """A setting's value as text for an admin: secrets masked, and the credentials inside URLs
    too (the host is shown, so an admin can see which server it will use)."""
    if isinstance(value, SecretStr):
        raw = value.get_secret_value()
        return mask_url(raw) if "://" in raw else "********" if raw else ""
    if isinstance(value, str) and "://" in value:
        return mask_url(value)
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        if all(isinstance(x, str) for x in value):
            return ",".join(value)
        dump = {"mode": "json", "exclude_defaults": True, "exclude_none": True}
        return json.dumps([x.model_dump(**dump) if isinstance(x, BaseModel) else x for x in value])
    if isinstance(value, dict):
        return json.dumps(value)
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def masked(*configs: BaseConfig) -> dict[str, str]:
    """The effective settings of each of `configs` as text, by environment name, secrets masked."""
    return {type(c).env_name(name): shown(getattr(c, name)) for c in configs for name in type(c).model_fields}


def env_template() -> str:
    """`.env.template`: every setting of the core and of each adapter, with its default."""
    lines = [
        "# autogpt-bot settings. Copy to .env and fill in what you use.",
        "# Every key is optional; the value shown is the default.",
        "",
    ]
    classes = settings_classes()
    defaults = {cls: cls.model_construct() for cls in classes}
    sections = [*SECTIONS, *[c.section for c in classes if c.section not in SECTIONS]]
    for section in sections:
        lines.append(f"################ {section.upper()} ################")
        for cls in classes:
            for name, field in cls.model_fields.items():
                if cls.section_of(name) == section:
                    lines.append(f"## {field.description}")
                    lines.append(f"# {cls.env_name(name)}={shown(getattr(defaults[cls], name))}")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    if sys.argv[1:] == ["--template"]:
        # through the imported module: the adapters' settings subclass its BaseConfig, not this
        # __main__ copy's
        from bot import settings as imported

        print(imported.env_template(), end="")


# --------------------------------------------------------------------------- .env and old names

ENV_FILE = ".env"

#: AutoGPT's settings that have another name here (or no equivalent), and what to use instead.
LEGACY_KEYS: dict[str, str] = {
    "OPENAI_API_BASE_URL": "OPENAI_BASE_URL",
    "OPENAI_API_BASE": "OPENAI_BASE_URL",
    "SMART_LLM_MODEL": "SMART_LLM",
    "FAST_LLM_MODEL": "FAST_LLM",
    "REDIS_HOST": "REDIS_URL (redis://[:password@]host:port/db)",
    "REDIS_PORT": "REDIS_URL (redis://[:password@]host:port/db)",
    "REDIS_PASSWORD": "REDIS_URL (redis://[:password@]host:port/db)",
    "WIPE_REDIS_ON_START": "WIPE_MEMORY_ON_START",
    "PINECONE_ENV": "PINECONE_INDEX_HOST (the index's host)",
    "MILVUS_COLLECTION": "MEMORY_INDEX",
    "MILVUS_USERNAME": "MILVUS_TOKEN (user:password)",
    "MILVUS_PASSWORD": "MILVUS_TOKEN (user:password)",
    "HEADLESS_BROWSER": "USE_WEB_BROWSER (http or chromium; chromium is always headless)",
    "AI_SETTINGS_FILE": "autogpt-bot console --ai-settings FILE",
    "RESTRICT_TO_WORKSPACE": "nothing: files are always restricted to the session's workspace",
    "DENY_COMMANDS": "TOOL_POLICY (command=deny)",
    "ALLOW_COMMANDS": "TOOL_POLICY (command=allow)",
    "DISABLED_COMMAND_CATEGORIES": "DISABLED_COMMANDS or TOOL_POLICY",
    "SHELL_DENYLIST": "SANDBOX (commands run sandboxed) and TOOL_POLICY",
    "SHELL_ALLOWLIST": "SANDBOX (commands run sandboxed) and TOOL_POLICY",
    "SHELL_COMMAND_CONTROL": "SANDBOX and TOOL_POLICY",
    "USE_MAC_OS_TTS": "TEXT_TO_SPEECH_PROVIDER=macos",
    "USE_BRIAN_TTS": "TEXT_TO_SPEECH_PROVIDER=streamelements",
    "ELEVENLABS_VOICE_1_ID": "ELEVENLABS_VOICE_ID",
    "ELEVENLABS_VOICE_2_ID": "ELEVENLABS_VOICE_ID",
}


def sentinel_spec(text: str) -> tuple[str, list[tuple[str, int]]]:
    """REDIS_SENTINEL's `MASTER@host:port,host:port` as (master name, [(host, port), ...]); a
    sentinel without a port is on 26379. ValueError says what is wrong."""
    master, at, nodes = text.strip().partition("@")
    if not at or not master.strip():
        raise ValueError("give MASTER@host:port,host:port (the master's name, then the Sentinels)")
    found: list[tuple[str, int]] = []
    for item in filter(None, (n.strip() for n in nodes.split(","))):
        host, _, port = item.rpartition(":") if ":" in item else (item, "", "26379")
        host = host.strip("[]")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{item!r} is not a Sentinel's host:port")
        found.append((host, int(port)))
    if not found:
        raise ValueError("no Sentinel given after the master's name (MASTER@host:port,host:port)")
    return master.strip(), found


def env_file_used(cwd: Path | None = None) -> Path | None:
    """The `.env` file the settings were read from (the one in the working directory), if any."""
    path = (cwd or Path.cwd()) / ENV_FILE
    return path.resolve() if path.is_file() else None


def _env_file_keys(path: Path) -> list[str]:
    keys = []
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key = line.split("=", 1)[0].removeprefix("export ").strip()
        if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            keys.append(key.upper())
    return keys


def unknown_key_warnings(environ: Mapping[str, str] | None = None, env_file: Path | None = None) -> list[str]:
    """One line per setting-like key nothing reads: in the `.env` file, any key no settings class
    knows; in the environment, AutoGPT's old names. Each names what to use instead when it is an
    old name."""
    environ = os.environ if environ is None else environ
    known = {cls.env_name(name) for cls in settings_classes() for name in cls.model_fields}
    found: dict[str, str] = {}
    if env_file is not None:
        for key in _env_file_keys(env_file):
            if key not in known:
                found.setdefault(key, f"{env_file.name}")
    for key in environ:
        if key.upper() in LEGACY_KEYS and key.upper() not in known:
            found.setdefault(key.upper(), "the environment")
    lines = []
    for key, where in sorted(found.items()):
        instead = LEGACY_KEYS.get(key)
        if instead:
            lines.append(f"{key} (in {where}) is AutoGPT's name and is not read here: use {instead}.")
        else:
            lines.append(
                f"{key} (in {where}) is not a setting of autogpt-bot and is ignored (see .env.template)."
            )
    return lines
