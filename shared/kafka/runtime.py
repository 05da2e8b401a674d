"""`plane-workers consume NAME`: one process runs a consumer's main topic and its retry tiers.

arroyo's StreamProcessor reads one topic, so each retry tier gets its own processor (and group)
on its own thread. SIGTERM/SIGINT ask every processor to stop; each closes its strategy, commits
what is done and leaves the group. If any processor dies, the others are stopped and the process
exits non-zero, so Kubernetes restarts a whole, consistent consumer.

When the broker goes away, librdkafka reconnects forever, and what arroyo does depends on the
traffic: a processor with offsets to commit dies once the group session times out (its commit
fails), an idle one waits forever. Here both end the same way: once no broker has answered for
KAFKA_BROKER_DOWN_EXIT_S the consumer stops and exits 1, with one line saying why.

Topics missing (a first install whose topics hook has not run, a topic deleted): the consumer
does not subscribe until every topic it uses exists (main, retry tiers, DLQ). It waits, alive and
not ready, says so once (then once every TOPIC_WAIT_LOG_S), and starts when they are there; a
processor that fails while one of them has gone sends it back to that wait instead of exiting.

Probes (shared/health.py): HEALTH_FILE carries the time the stalest poll loop last polled
(liveness: stays fresh while the consumer holds on an outage), HEALTH_FILE + ".ready" exists while
the consumer is ready (topics there, partitions assigned, not holding, a broker answers).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, cast

from arroyo.backends.kafka import KafkaConsumer, KafkaPayload
from arroyo.commit import ONCE_PER_SECOND
from arroyo.processing import StreamProcessor
from arroyo.processing.strategies import ProcessingStrategy, ProcessingStrategyFactory
from arroyo.types import BrokerValue, Commit, Partition, Topic
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from sqlalchemy.orm import Session, sessionmaker

from shared import consumer_health, metrics, registry
from shared.db.engine import session_factory
from shared.events.producer import EventProducer
from shared.health import ProbeFiles
from shared.kafka import lag_metrics
from shared.kafka.batch import BatchStrategyFactory
from shared.kafka.config import client_config, consumer_config
from shared.kafka.deadletter import DeadLetterLimit, DeadLetters
from shared.kafka.handler import Handler
from shared.kafka.strategy import Clock, EventProcessor, EventStrategyFactory, Hold, describe
from shared.registry import ConsumerSpec
from shared.settings import Settings

log = logging.getLogger(__name__)

JOIN_TIMEOUT_S = 20.0  # inside the chart's 45 s termination grace period
# No broker answering for KAFKA_BROKER_DOWN_EXIT_S (30 s: well before the liveness probe's 60 s)
# stops the consumer; the restarted pod rejoins the group once one is back.
BROKER_PROBE_S = 5.0  # how often the broker is asked for metadata, and how long it may take
TOPIC_PROBE_S = 2.0  # how often a consumer waiting for its topics looks for them
TOPIC_WAIT_LOG_S = 60.0  # and how often it says that it still waits
TICK_S = 0.5  # the main thread's loop: signals, probe files, broker watch


@dataclass(frozen=True)
class ConsumerDeps:
    """What a consumer's own strategy (ConsumerSpec.strategy) gets to build itself from."""

    spec: ConsumerSpec
    settings: Settings
    producer: EventProducer
    sessions: sessionmaker[Session] | None
    dead_letters: DeadLetters
    tier: int | None  # None on the main topic, i on retry tier i
    clock: Clock
    # One dict per process, the same for the main topic and every retry tier: where a strategy
    # keeps what must span them (webhook-deliveries: one per-endpoint limit for all tiers).
    # Values with a close() method are closed once every processor has stopped.
    shared: dict[str, Any] = field(default_factory=dict)

    @property
    def hold(self) -> Hold:
        """One per process, for the main topic and every tier: while one finds a dependency
        down, none works, and the process is not ready."""
        return process_hold(self.shared)

    def event_processor(self, handler: Handler) -> EventProcessor:
        """The runtime's per-event processing (claim, handler, retry tiers, DLQ) around `handler`."""
        return EventProcessor(
            self.spec,
            handler,
            self.settings,
            self.producer,
            self.sessions,
            self.dead_letters,
            self.tier,
            self.clock,
            self.hold,
        )


def process_hold(shared: dict[str, Any]) -> Hold:
    return cast(Hold, shared.setdefault("dependency-hold", Hold()))


StrategyBuilder = Callable[[ConsumerDeps], ProcessingStrategyFactory[KafkaPayload]]


class PolledConsumer(KafkaConsumer):
    """arroyo's KafkaConsumer, noting when its processor's loop last polled it (arroyo polls
    while partitions are paused too, so this keeps going while the process holds) and whether
    the group has assigned it its partitions yet (none is a valid share)."""

    def __init__(self, configuration: Mapping[str, Any]) -> None:
        super().__init__(configuration)
        self.polled_at = time.time()
        self.assigned = False

    def poll(self, timeout: float | None = None) -> BrokerValue[KafkaPayload] | None:
        self.polled_at = time.time()
        return super().poll(timeout)

    def subscribe(
        self,
        topics: Sequence[Topic],
        on_assign: Callable[[Mapping[Partition, int]], None] | None = None,
        on_revoke: Callable[[Sequence[Partition]], None] | None = None,
    ) -> None:
        def assigned(partitions: Mapping[Partition, int]) -> None:
            self.assigned = True
            if on_assign is not None:
                on_assign(partitions)

        super().subscribe(topics, on_assign=assigned, on_revoke=on_revoke)


@dataclass
class ConsumerRun:
    spec: ConsumerSpec
    processors: list[StreamProcessor]
    producer: EventProducer
    errors: list[BaseException]
    shared: dict[str, Any] = field(default_factory=dict)
    topics: list[str] = field(default_factory=list)  # physical, one per processor
    consumers: list[PolledConsumer] = field(default_factory=list)  # one per processor
    health_file: str = ""  # empty: no probe files
    stopping: bool = False
    broker_down_exit_s: float = 30.0  # KAFKA_BROKER_DOWN_EXIT_S

    def shutdown(self) -> None:
        self.stopping = True
        for processor in self.processors:
            processor.signal_shutdown()


def build(spec: ConsumerSpec, settings: Settings, clock: Clock | None = None) -> ConsumerRun:
    producer = EventProducer(settings)
    sessions = session_factory(settings.database_url) if settings.database_url else None
    limit = DeadLetterLimit(settings.dlq_max_consecutive, settings.dlq_max_ratio)
    dead_letters = DeadLetters(producer, settings.topic(spec.dlq_topic), limit)

    processors = []
    consumers = []
    tiers: list[tuple[str, str, int | None]] = [(spec.topic, spec.group, None)]
    tiers += [(spec.retry_topic(i), f"{spec.group}-retry-{i}", i) for i in range(len(spec.retry_delays_s))]
    shared: dict[str, Any] = {}
    clock = clock or time.time
    for topic, group, tier in tiers:
        deps = ConsumerDeps(spec, settings, producer, sessions, dead_letters, tier, clock, shared)
        config = consumer_config(settings, settings.group(group), retry_tier=tier is not None)
        consumer = PolledConsumer(lag_metrics.with_lag_stats(config))
        consumers.append(consumer)
        processors.append(
            StreamProcessor(
                consumer,
                Topic(settings.topic(topic)),
                LoggedAssignments(_strategy_factory(deps), topic),
                commit_policy=ONCE_PER_SECOND,
                join_timeout=JOIN_TIMEOUT_S,
            )
        )
    topics = [settings.topic(t) for t, _, _ in tiers]
    return ConsumerRun(
        spec, processors, producer, [], shared, topics, consumers, settings.health_file,
        broker_down_exit_s=settings.kafka_broker_down_exit_s,
    )  # fmt: skip


class LoggedAssignments(ProcessingStrategyFactory[KafkaPayload]):
    """Logs each assignment at INFO (arroyo's own rebalance chatter is kept at WARNING)."""

    def __init__(self, inner: ProcessingStrategyFactory[KafkaPayload], topic: str) -> None:
        self._inner = inner
        self._topic = topic

    def create_with_partitions(
        self, commit: Commit, partitions: Mapping[Partition, int]
    ) -> ProcessingStrategy[KafkaPayload]:
        log.info("%s: partitions assigned: %s", self._topic, sorted(p.index for p in partitions))
        return self._inner.create_with_partitions(commit, partitions)


def _strategy_factory(deps: ConsumerDeps) -> ProcessingStrategyFactory[KafkaPayload]:
    spec = deps.spec
    if spec.strategy is not None:
        build_own = cast(StrategyBuilder, registry.load(spec.strategy))
        return build_own(deps)
    if spec.batch is not None:
        return BatchStrategyFactory(deps)
    handler = cast(Handler, registry.load(spec.handler or ""))
    return EventStrategyFactory(deps.event_processor(handler))


def run(run: ConsumerRun, install_signals: bool = True) -> int:
    """Run until signalled or until a processor fails. Returns the process exit code."""
    stopped = threading.Event()

    def target(processor: StreamProcessor, topic: str) -> None:
        try:
            processor.run()
        except BaseException as exc:  # a dead processor must take the consumer down with it
            log.error("processor for %s failed: %s", topic, describe(exc), exc_info=exc)
            run.errors.append(exc)
            run.shutdown()
        finally:
            stopped.set()

    if install_signals:

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            log.info("received %s, shutting down", signal.Signals(signum).name)
            run.shutdown()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)

    topics = run.topics or [run.spec.name] * len(run.processors)
    threads = [
        threading.Thread(target=target, args=(p, topic), name=f"{run.spec.name}-{i}", daemon=True)
        for i, (p, topic) in enumerate(zip(run.processors, topics, strict=True))
    ]
    for thread in threads:
        thread.start()
    log.info("consumer %s started (%d processors)", run.spec.name, len(threads))
    watch = BrokerWatch(
        lambda timeout_s: run.producer.check_broker(topics[0], timeout_s), down_exit_s=run.broker_down_exit_s
    )
    probes = ProbeFiles(run.health_file) if run.health_file else None
    hold = process_hold(run.shared)
    # Wake up periodically so signals are handled promptly on the main thread.
    while any(t.is_alive() for t in threads):
        stopped.wait(TICK_S)
        stopped.clear()
        if not run.errors and (down := watch.check()) is not None:
            log.error("%s, stopping the consumer", down)
            run.errors.append(BrokerUnreachable(down))
            run.shutdown()
        if probes is not None:
            if run.consumers:
                probes.alive(min(c.polled_at for c in run.consumers))
            ready = run.consumers and all(c.assigned for c in run.consumers)
            probes.set_ready(bool(ready) and not (run.stopping or hold.holding or watch.down))
    if probes is not None:
        probes.set_ready(False)
    run.producer.close()
    for resource in run.shared.values():
        if callable(close := getattr(resource, "close", None)):
            close()
    log.info("consumer %s stopped", run.spec.name)
    return 1 if run.errors else 0


class BrokerUnreachable(RuntimeError):
    pass


class BrokerWatch:
    """Calls `probe(timeout_s)` (a metadata request) every `every_s`; says when no broker has
    answered for `down_exit_s`. One warning when the broker goes, one when it is back.
    `answer` is what the last probe returned (None before the first answer and while down)."""

    def __init__(
        self,
        probe: Callable[[float], Any],
        clock: Clock = time.monotonic,
        every_s: float = BROKER_PROBE_S,
        first_after_s: float | None = None,
        *,
        down_exit_s: float,
    ) -> None:
        self._probe = probe
        self._down_exit_s = down_exit_s
        self._clock = clock
        self._every_s = every_s
        self._next = clock() + (every_s if first_after_s is None else first_after_s)
        self._down_since: float | None = None
        self.answer: Any = None

    @property
    def down(self) -> bool:
        return self._down_since is not None

    def check(self) -> str | None:
        now = self._clock()
        if now < self._next:
            return None
        try:
            self.answer = self._probe(BROKER_PROBE_S)
        except KafkaException as exc:
            self.answer = None
            self._down_since = self._down_since or now
            down_s = self._clock() - self._down_since
            if down_s >= self._down_exit_s:
                return f"no broker answered for {down_s:.0f} s: {describe(exc)}"
            if self._down_since == now:
                log.warning("broker unreachable, waiting up to %.0f s: %s", self._down_exit_s, describe(exc))
        else:
            if self._down_since is not None:
                log.warning("broker reachable again after %.0f s", now - self._down_since)
            self._down_since = None
        finally:
            self._next = self._clock() + self._every_s
        return None


def missing_topics(admin: AdminClient, topics: Sequence[str], timeout_s: float) -> list[str]:
    """The topics the cluster does not have (or reports an error for, as it may while a topic is
    being created). Lists all topics: asking for given ones may auto-create them on a broker
    that allows it. Raises KafkaException when no broker answers in `timeout_s`."""
    known = admin.list_topics(timeout=timeout_s).topics
    return [t for t in topics if t not in known or known[t].error is not None]


def wait_for_topics(
    admin: AdminClient,
    topics: Sequence[str],
    stopping: threading.Event,
    probes: ProbeFiles,
    clock: Clock = time.monotonic,
    *,
    down_exit_s: float,
) -> int | None:
    """Until every topic exists: None then. Meanwhile alive and not ready; 0 when signalled,
    1 when no broker answered for `down_exit_s`."""
    started = clock()
    logged_at: float | None = None
    watch = BrokerWatch(
        lambda timeout_s: missing_topics(admin, topics, timeout_s), clock, TOPIC_PROBE_S, 0.0,
        down_exit_s=down_exit_s,
    )  # fmt: skip
    while not stopping.is_set():
        probes.alive()
        probes.set_ready(False)
        if (down := watch.check()) is not None:
            log.error("%s, stopping the consumer", down)
            return 1
        missing = watch.answer
        if missing == []:
            if logged_at is not None:
                log.warning("topic(s) present after %.0f s, starting", clock() - started)
            return None
        if missing and (logged_at is None or clock() - logged_at >= TOPIC_WAIT_LOG_S):
            first = logged_at is None
            logged_at = clock()
            log.warning(
                "%s for topic(s) to be created (`plane-workers topics create`, or the chart's "
                "topics hook): %s; not ready meanwhile",
                "waiting" if first else f"still waiting after {logged_at - started:.0f} s",
                ", ".join(missing),
            )
        stopping.wait(TICK_S)
    return 0


def consume(name: str, settings: Settings) -> int:
    spec = registry.consumer(name)
    probes = ProbeFiles(settings.health_file)
    probes.clear()
    metrics.serve(settings.metrics_port, consumer_health.for_consumer(name, settings))
    stopping = threading.Event()
    current: list[ConsumerRun] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s, shutting down", signal.Signals(signum).name)
        stopping.set()
        for consumer_run in current:
            consumer_run.shutdown()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    topics = [settings.topic(t) for t in spec.topics]
    admin = AdminClient(client_config(settings))
    if spec.warm_up:
        # Before joining: a member that loads a model after its assignment would hold its
        # partitions unprocessed meanwhile. The health file is first touched once it returns, so
        # the chart's startup probe (not liveness) covers the load.
        cast(Callable[[Settings], None], registry.load(spec.warm_up))(settings)
    while True:
        down_exit_s = settings.kafka_broker_down_exit_s
        if (code := wait_for_topics(admin, topics, stopping, probes, down_exit_s=down_exit_s)) is not None:
            return code
        consumer_run = build(spec, settings)
        current[:] = [consumer_run]
        if stopping.is_set():  # signalled while it was being built
            consumer_run.shutdown()
        code = run(consumer_run, install_signals=False)
        broker_gone = any(isinstance(e, BrokerUnreachable) for e in consumer_run.errors)
        if code == 0 or stopping.is_set() or broker_gone:
            return code
        try:
            gone = missing_topics(admin, topics, BROKER_PROBE_S)
        except KafkaException:
            gone = []
        if not gone:
            return code
        log.warning("topic(s) gone while consuming: %s; waiting for them again", ", ".join(gone))
