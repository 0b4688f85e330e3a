"""`.env` and AutoGPT's old setting names: which file was read, and a warning for each key
nothing reads, naming the new name of AutoGPT's old ones."""

from __future__ import annotations

from pathlib import Path

from bot.settings import env_file_used, unknown_key_warnings


def test_which_env_file_was_read(tmp_path: Path) -> None:
    assert env_file_used(tmp_path) is None
    (tmp_path / ".env").write_text("OPENAI_API_KEY=sk-x\n")
    assert env_file_used(tmp_path) == (tmp_path / ".env").resolve()


def test_old_and_unknown_keys_are_named(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text(
        "# a comment\nOPENAI_API_KEY=sk-x\nREDIS_HOST=localhost\nexport SMART_LLM_MODEL=gpt-4\n"
        "SLACK_BOT_TOKEN=xoxb\nDISCORD_BOT_TOKEN=x\nMY_OWN_THING=1\n\nnot a line\n"
    )
    lines = unknown_key_warnings({"OPENAI_API_BASE_URL": "http://x", "PATH": "/bin", "HOME": "/root"}, env)
    assert lines == [
        "MY_OWN_THING (in .env) is not a setting of autogpt-bot and is ignored (see .env.template).",
        "OPENAI_API_BASE_URL (in the environment) is AutoGPT's name and is not read here: "
        "use OPENAI_BASE_URL.",
        "REDIS_HOST (in .env) is AutoGPT's name and is not read here: "
        "use REDIS_URL (redis://[:password@]host:port/db).",
        "SMART_LLM_MODEL (in .env) is AutoGPT's name and is not read here: use SMART_LLM.",
    ]
    assert unknown_key_warnings({}, None) == []  # adapters' keys (SLACK_, DISCORD_) are known
