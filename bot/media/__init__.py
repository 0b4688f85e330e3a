"""Media providers the tools and the chat use: images (`bot.media.images`) and speech both ways
(`bot.media.speech`). Each provider is reached through its maintained client, its base URL set
from the settings; its answers are bounded by MAX_MEDIA_BYTES."""
