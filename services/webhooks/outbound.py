"""What the webhook-deliveries pipelines of one process share: the HTTP event loop and client,
the per-endpoint limit and the attempt journal (`Outbound`); and the process's collector
settings (`tune_gc`)."""

from __future__ import annotations

import contextlib
import gc
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from services.webhooks import attempt
from services.webhooks.journal import AttemptJournal
from services.webhooks.limiter import EndpointLimiter
from shared.http import Allowlist
from shared.http.aio import AsyncSafeHttpClient, LoopThread
from shared.kafka.runtime import ConsumerDeps

GC_YOUNG_THRESHOLD = 10_000  # net container allocations between young collections (default 700)


@dataclass(frozen=True)
class Outbound:
    """What the main topic's and every retry tier's pipelines of one process share: the HTTP
    event loop and client (its connection pools outlive partition assignments), the per-endpoint
    limit, so a failing endpoint gets WEBHOOK_ENDPOINT_CONCURRENCY attempts at once, not that
    many per tier, and the attempt journal, whose groups are larger for it."""

    loop: LoopThread
    client: AsyncSafeHttpClient
    limiter: EndpointLimiter
    journal: AttemptJournal

    @classmethod
    def of_process(cls, deps: ConsumerDeps, sessions: sessionmaker[Session]) -> Outbound:
        if "webhook-outbound" not in deps.shared:
            tune_gc()
            settings = deps.settings
            client = AsyncSafeHttpClient(
                Allowlist.from_settings(settings),
                # Per host: many webhooks can share one receiver host. The per-webhook limit is
                # the EndpointLimiter's; a pool this small would let one webhook starve the rest.
                max_connections_per_endpoint=settings.webhook_concurrency,
                max_request_bytes=max(settings.webhook_payload_max_bytes, settings.event_max_bytes),
                user_agent=attempt.USER_AGENT,
            )
            # Never stopped by a pipeline: it serves every tier for the life of the process.
            loop = LoopThread("webhook-http")
            limiter = EndpointLimiter(
                loop.loop, settings.webhook_concurrency, settings.webhook_endpoint_concurrency
            )
            journal = AttemptJournal(sessions, deps.hold, loop.loop)
            deps.shared["webhook-outbound"] = cls(loop, client, limiter, journal)
        return deps.shared["webhook-outbound"]

    def close(self) -> None:
        self.journal.close()  # first: the attempts waiting on it are let go without sending
        self.limiter.close()
        with contextlib.suppress(Exception):
            self.loop.submit(self.client.aclose()).result(5)
        self.loop.close()


def tune_gc() -> None:
    """A delivery allocates a few hundred containers, nearly all freed by reference counting within
    milliseconds, while the process holds some 10^5 long-lived objects (modules, SQLAlchemy's
    metadata, compiled schemas). With the collector's defaults, each of the two webhook-deliveries
    processes of profile_webhooks' failing scenario (10,000 deliveries, start-up included) ran
    about 170 young, 16 middle and 2 full collections: about 0.8 s of CPU, the full ones about
    140 ms each with every thread stopped. (bench_webhooks' open-loop p99 by 2 s of events had
    slices of 121 and 138 ms before this, none over 53 ms after; one run each.) Frozen, what
    exists at start is never traversed again; a higher young threshold collects the rare cycles
    a delivery leaves (an exception's traceback) in bulk."""
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 10, 10)
