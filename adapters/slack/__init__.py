"""The Slack adapter: `/autogpt`, step messages with buttons in a thread per session, a feedback
modal, replies in the thread as feedback, and the App Home tab. See README.md here for the set-up,
`serve.py` for running it and `listeners/` for what Slack sends."""
