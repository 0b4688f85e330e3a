"""`autogpt-bot eval`: an evaluation suite any LLM can be measured on, as AutoGPT measured itself
with agbenchmark. Platform-neutral: challenges (challenges.py), the site they browse (site.py),
the in-process chat platform (platform.py), the runner (runner.py) and the report (report.py)."""
