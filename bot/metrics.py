"""The bot's Prometheus metrics, on a registry of their own (one per `Core`, so two cores in one
process, as in tests, never collide; nothing is registered globally).

Counters are incremented where things happen (the engine, the LLM client, the service, the chat
adapters); the sessions-by-state gauge is filled from the store when `/metrics` is scraped
(`bot/ops.py`). Label values are bounded: models from the settings, tool names from the
registry, platform names and API methods from the adapters, states and outcomes from enums.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from bot.models import ACTIVE, Session, SessionState, Usage

PREFIX = "autogpt"
# seconds from a proposal to a human decision: people take seconds to hours
DECISION_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 900.0, 1800.0, 3600.0, 14400.0, 86400.0)
# seconds a kick waits in the work queue: milliseconds when workers keep up, minutes when they do not
QUEUE_WAIT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class Metrics:
    """Every metric of one core. Create one per `Core`; pass it to what records into it."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = r = registry or CollectorRegistry(auto_describe=True)

        def counter(name: str, doc: str, *labels: str) -> Counter:
            return Counter(f"{PREFIX}_{name}", doc, labels, registry=r)

        def gauge(name: str, doc: str, *labels: str) -> Gauge:
            return Gauge(f"{PREFIX}_{name}", doc, labels, registry=r)

        self.sessions = gauge("sessions", "Sessions not yet ended, by state (read from the store)", "state")
        self.sessions_started = counter("sessions_started", "Sessions started by this process")
        self.sessions_ended = counter(
            "sessions_ended", "Sessions that ended in this process, by outcome", "outcome"
        )
        self.cycles = counter("cycles", "Agent cycles (commands proposed)")
        self.llm_calls = counter(
            "llm_calls", "LLM chat requests, by model and result (ok or error)", "model", "result"
        )
        self.llm_tokens = counter(
            "llm_tokens", "LLM tokens, by model and kind (prompt or completion)", "model", "kind"
        )
        self.llm_spend = counter(
            "llm_spend_usd", "Estimated LLM spend in USD (MODEL_PRICES), by model", "model"
        )
        self.tool_errors = counter("tool_errors", "Commands that returned an error, by tool", "tool")
        self.platform_errors = counter(
            "platform_api_errors",
            "Chat platform API calls that failed for good, by platform and method",
            "platform",
            "method",
        )
        self.decision_latency = Histogram(
            f"{PREFIX}_decision_latency_seconds",
            "Seconds from a step's proposal to the human decision on it",
            buckets=DECISION_BUCKETS,
            registry=r,
        )
        self.store_up = gauge("store_up", "1 when the session store answered the last scrape, else 0")
        # the work queue (ROLE=ingress/worker, bot/queue.py): read from Redis at each scrape, so
        # every process shows the same depth; an autoscaler takes any one (or the max)
        self.queue_depth = gauge(
            "queue_depth", "Kicks in the work queue: waiting or being driven (read at scrape)"
        )
        self.queue_pending = gauge(
            "queue_pending", "Kicks taken by a worker and not yet acknowledged (read at scrape)"
        )
        self.queue_oldest_age = gauge(
            "queue_oldest_age_seconds",
            "Age of the oldest kick in the work queue, 0 when empty (read at scrape)",
        )
        self.queue_driving = gauge("queue_driving", "Sessions this worker is driving now (read at scrape)")
        self.queue_wait = Histogram(
            f"{PREFIX}_queue_wait_seconds",
            "Seconds from a kick's enqueueing to the start of its drive, in this worker",
            buckets=QUEUE_WAIT_BUCKETS,
            registry=r,
        )
        self.queue_reclaimed = counter(
            "queue_reclaimed", "Kicks this worker took over from a worker that held them too long (dead)"
        )

    # ------------------------------------------------------------------ recording

    def llm_reply(self, model: str, usage: Usage) -> None:
        """One LLM request answered: its tokens and its price."""
        self.llm_calls.labels(model, "ok").inc()
        self.llm_tokens.labels(model, "prompt").inc(usage.prompt_tokens)
        self.llm_tokens.labels(model, "completion").inc(usage.completion_tokens)
        self.llm_spend.labels(model).inc(usage.cost_usd)

    def embedded(self, model: str, usages: Iterable[Usage]) -> None:
        """Embedding requests made for the memory (a cached embedding costs nothing: not counted)."""
        for usage in usages:
            if usage.calls:
                self.llm_reply(model, usage)

    def llm_failed(self, model: str) -> None:
        self.llm_calls.labels(model, "error").inc()

    def tool_error(self, tool: str) -> None:
        self.tool_errors.labels(tool).inc()

    def platform_error(self, platform: str, method: str) -> None:
        """Called by a chat adapter, which names itself: the core knows no platform names."""
        self.platform_errors.labels(platform, method).inc()

    def decided(self, proposed_at: datetime, decided_at: datetime) -> None:
        self.decision_latency.observe(max(0.0, (decided_at - proposed_at).total_seconds()))

    def ended(self, session: Session) -> None:
        self.sessions_ended.labels(session.state.value).inc()

    def count_sessions(self, states: Iterable[SessionState]) -> None:
        """Set the by-state gauge from the states of the active sessions (every active state is
        shown, at 0 when none is in it)."""
        counts = dict.fromkeys(sorted(ACTIVE), 0)
        for state in states:
            counts[state] = counts.get(state, 0) + 1
        for state, n in counts.items():
            self.sessions.labels(state.value).set(n)

    def render(self) -> bytes:
        """The Prometheus text format of every metric."""
        return generate_latest(self.registry)
