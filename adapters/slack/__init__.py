"""The Slack adapter: `/autogpt`, step messages with buttons in a thread per session, a feedback
modal, replies in the thread as feedback, and the App Home tab. README.md here has the set-up;
`adapter.py` is the `ChatAdapter` (SlackAdapter), `settings.py` its settings, `listeners/` what
Slack sends, `blocks.py` how views look. Nothing is imported here, so reading the settings does
not load Bolt."""
