"""`plane-workers consume NAME`: one process runs a consumer's main topic and its retry tiers.

arroyo's StreamProcessor reads one topic, so each retry tier gets its own processor (and group)
on its own thread. SIGTERM/SIGINT ask every processor to stop; each closes its strategy, commits
what is done and leaves the group. If any processor dies, the others are stopped and the process
exits non-zero, so Kubernetes restarts a whole, consistent consumer.

When the broker goes away, librdkafka reconnects forever, and what arroyo does depends on the
traffic: a processor with offsets to commit dies once the group session times out (its commit
fails), an idle one waits forever. Here both end the same way: once no broker has answered for
BROKER_DOWN_EXIT_S the consumer stops and exits 1, with one line saying why.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, cast

from arroyo.backends.kafka import KafkaConsumer, KafkaPayload
from arroyo.commit import ONCE_PER_SECOND
from arroyo.processing import StreamProcessor
from arroyo.processing.strategies import ProcessingStrategy, ProcessingStrategyFactory
from arroyo.types import Commit, Partition, Topic
from confluent_kafka import KafkaException
from sqlalchemy.orm import Session, sessionmaker

from shared import metrics, registry
from shared.db.engine import session_factory
from shared.events.producer import EventProducer
from shared.kafka.config import consumer_config
from shared.kafka.deadletter import DeadLetterLimit, DeadLetters
from shared.kafka.handler import Handler
from shared.kafka.strategy import Clock, EventProcessor, EventStrategyFactory, Hold, describe
from shared.registry import ConsumerSpec
from shared.settings import Settings

log = logging.getLogger(__name__)

JOIN_TIMEOUT_S = 20.0  # inside the chart's 45 s termination grace period
# No broker answering for this long stops the consumer (well before the liveness probe's 60 s);
# the restarted pod rejoins the group once one is back.
BROKER_DOWN_EXIT_S = 30.0
BROKER_PROBE_S = 5.0  # how often the broker is asked for metadata, and how long it may take


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
        down, none works, and the health file is not touched (HeldHealthcheck)."""
        return cast(Hold, self.shared.setdefault("dependency-hold", Hold()))


StrategyBuilder = Callable[[ConsumerDeps], ProcessingStrategyFactory[KafkaPayload]]


@dataclass
class ConsumerRun:
    spec: ConsumerSpec
    processors: list[StreamProcessor]
    producer: EventProducer
    errors: list[BaseException]
    shared: dict[str, Any] = field(default_factory=dict)
    topics: list[str] = field(default_factory=list)  # physical, one per processor

    def shutdown(self) -> None:
        for processor in self.processors:
            processor.signal_shutdown()


def build(spec: ConsumerSpec, settings: Settings, clock: Clock | None = None) -> ConsumerRun:
    producer = EventProducer(settings)
    sessions = session_factory(settings.database_url) if settings.database_url else None
    limit = DeadLetterLimit(settings.dlq_max_consecutive, settings.dlq_max_ratio)
    dead_letters = DeadLetters(producer, settings.topic(spec.dlq_topic), limit)

    processors = []
    tiers: list[tuple[str, str, int | None]] = [(spec.topic, spec.group, None)]
    tiers += [(spec.retry_topic(i), f"{spec.group}-retry-{i}", i) for i in range(len(spec.retry_delays_s))]
    shared: dict[str, Any] = {}
    clock = clock or time.time
    for topic, group, tier in tiers:
        deps = ConsumerDeps(spec, settings, producer, sessions, dead_letters, tier, clock, shared)
        processors.append(
            StreamProcessor(
                KafkaConsumer(consumer_config(settings, settings.group(group), retry_tier=tier is not None)),
                Topic(settings.topic(topic)),
                LoggedAssignments(_strategy_factory(deps), topic),
                commit_policy=ONCE_PER_SECOND,
                join_timeout=JOIN_TIMEOUT_S,
            )
        )
    return ConsumerRun(spec, processors, producer, [], shared, [settings.topic(t) for t, _, _ in tiers])


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
    handler = cast(Handler, registry.load(spec.handler or ""))
    processor = EventProcessor(
        spec,
        handler,
        deps.settings,
        deps.producer,
        deps.sessions,
        deps.dead_letters,
        deps.tier,
        deps.clock,
        deps.hold,
    )
    return EventStrategyFactory(processor, deps.settings.health_file)


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
    watch = BrokerWatch(run.producer, topics[0])
    # Wake up periodically so signals are handled promptly on the main thread.
    while any(t.is_alive() for t in threads):
        stopped.wait(0.5)
        stopped.clear()
        if not run.errors and (down := watch.check()) is not None:
            log.error("%s, stopping the consumer", down)
            run.errors.append(BrokerUnreachable(down))
            run.shutdown()
    run.producer.close()
    for resource in run.shared.values():
        if callable(close := getattr(resource, "close", None)):
            close()
    log.info("consumer %s stopped", run.spec.name)
    return 1 if run.errors else 0


class BrokerUnreachable(RuntimeError):
    pass


class BrokerWatch:
    """Asks a broker for one topic's metadata every BROKER_PROBE_S; says when none has answered
    for BROKER_DOWN_EXIT_S. One warning when the broker goes, one when it is back."""

    def __init__(self, producer: EventProducer, topic: str, clock: Clock = time.monotonic) -> None:
        self._producer = producer
        self._topic = topic
        self._clock = clock
        self._next = clock() + BROKER_PROBE_S
        self._down_since: float | None = None

    def check(self) -> str | None:
        now = self._clock()
        if now < self._next:
            return None
        try:
            self._producer.check_broker(self._topic, BROKER_PROBE_S)
        except KafkaException as exc:
            self._down_since = self._down_since or now
            down_s = self._clock() - self._down_since
            if down_s >= BROKER_DOWN_EXIT_S:
                return f"no broker answered for {down_s:.0f} s: {describe(exc)}"
            if self._down_since == now:
                log.warning("broker unreachable, waiting up to %.0f s: %s", BROKER_DOWN_EXIT_S, describe(exc))
        else:
            if self._down_since is not None:
                log.warning("broker reachable again after %.0f s", now - self._down_since)
            self._down_since = None
        finally:
            self._next = self._clock() + BROKER_PROBE_S
        return None


def consume(name: str, settings: Settings) -> int:
    spec = registry.consumer(name)
    # /tmp survives container restarts within a pod: a file left by the previous incarnation
    # must not vouch for this one before its loop has run.
    Path(settings.health_file).unlink(missing_ok=True)
    metrics.serve(settings.metrics_port)
    return run(build(spec, settings))
