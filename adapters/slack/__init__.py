"""The Slack adapter: `/autogpt`, step messages with buttons in a thread per session, a feedback
modal, replies in the thread as feedback, and the App Home tab. README.md here has the set-up;
`adapter.py` is the `ChatAdapter`, `listeners/` what Slack sends, `blocks.py` how views look."""

from adapters.slack.adapter import SlackAdapter, SlackStartError
from adapters.slack.settings import SlackSettings

__all__ = ["SlackAdapter", "SlackSettings", "SlackStartError"]
