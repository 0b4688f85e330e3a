"""A local fake Discord for end-to-end tests with the real discord.py client.

`FakeDiscord` serves, on 127.0.0.1, the gateway websocket (HELLO, IDENTIFY -> READY and
GUILD_CREATE, heartbeats, dispatches; zlib-stream transport compression when the client asks for
it in the URL query, as discord.py does) and the REST routes the bot calls (login, application,
command sync, channel messages as JSON or multipart, threads, interaction callbacks, follow-up
and `@original` webhooks). Replies are `application/json` exactly, as discord.py wants.

It acts as Discord does where the bot depends on it: without the Message Content intent a
message that does not mention the bot arrives with empty content; a privileged intent that is not
enabled closes the gateway with 4014; an interaction answered twice, late (after 3 s) or not at
all is an error; a follow-up before the answer is refused. Every message, embed, component and
modal the bot sends is checked against Discord's limits: a violation is recorded in
`violations` and refused with 400 (50035) like Discord would.

Tests drive it as users: `say` (a MESSAGE_CREATE), `click` (a component INTERACTION_CREATE built
from the buttons the bot actually sent), `submit_modal` (from the modal the bot actually sent)
and `slash` (from the command the bot actually registered).

Modules: `state` (the guild, channels, threads, messages and their JSON), `limits` (Discord's
limits and the checks), `gateway`, `rest`, `interactions`, and `fake` (`FakeDiscord`, all of them).
The bot under test, run against it, is in tests/fakes/discord_bot.py.
"""

from tests.fakes.discord.fake import FakeDiscord
from tests.fakes.discord.gateway import (
    INTENT_DIRECT_MESSAGES,
    INTENT_GUILD_MESSAGES,
    INTENT_MESSAGE_CONTENT,
    PRIVILEGED,
    Connection,
)
from tests.fakes.discord.interactions import ANSWER_WITHIN_S, Interaction
from tests.fakes.discord.limits import LIMITS, check_components, check_embed, check_message, check_modal
from tests.fakes.discord.state import (
    ADMIN,
    APP_ID,
    BOT_ID,
    CHANNEL_ID,
    DISCORD_EPOCH_MS,
    EPHEMERAL,
    GUILD_ID,
    HAS_THREAD,
    LOADING,
    OWNER,
    STRANGER,
    TOKEN,
    USERS,
    Message,
    Request,
    iso,
    member_json,
    user_json,
)

__all__ = [
    "ADMIN",
    "ANSWER_WITHIN_S",
    "APP_ID",
    "BOT_ID",
    "CHANNEL_ID",
    "DISCORD_EPOCH_MS",
    "EPHEMERAL",
    "GUILD_ID",
    "HAS_THREAD",
    "INTENT_DIRECT_MESSAGES",
    "INTENT_GUILD_MESSAGES",
    "INTENT_MESSAGE_CONTENT",
    "LIMITS",
    "LOADING",
    "OWNER",
    "PRIVILEGED",
    "STRANGER",
    "TOKEN",
    "USERS",
    "Connection",
    "FakeDiscord",
    "Interaction",
    "Message",
    "Request",
    "check_components",
    "check_embed",
    "check_message",
    "check_modal",
    "iso",
    "member_json",
    "user_json",
]
