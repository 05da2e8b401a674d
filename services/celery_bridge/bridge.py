"""`celery-bridge`: Plane's Celery queue in, Kafka events out, acked only once written.

One thread, one loop: kombu delivers AMQP messages into a local queue (never handled inside
kombu's callback, which py-amqp may call again while a publish waits for its confirm), each is
routed, produced to Kafka with a delivery callback, and acked when librdkafka reports the write
confirmed. Until then it stays unacked, so a crash, a lost connection or a refused write leaves
it to RabbitMQ to deliver again: nothing is acked unwritten. A refused write is retried with
back-off on the same message; the prefetch bounds what is in flight.

eta/countdown: a message due within CELERY_BRIDGE_HOLD_MAX_S is held unacked until due (the
prefetch is raised by the held count, as Celery's worker does, up to CELERY_BRIDGE_MAX_HELD), so
it stays durable in RabbitMQ meanwhile. One due later goes, unchanged, to a delay queue whose TTL
is the hold window and which dead-letters back into the source queue: it comes back nearer its
eta and is held then. Holding longer would pass RabbitMQ's consumer_timeout (30 min by default),
which closes a channel holding an unacked message that long.
"""

from __future__ import annotations

import collections
import datetime as dt
import heapq
import itertools
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer
from kombu import Connection, Consumer, Exchange, Queue
from kombu import Producer as AmqpProducer
from kombu.message import Message

from services.celery_bridge import metrics as m
from services.celery_bridge.protocol import Malformed, TaskMessage, decode, task_name
from services.celery_bridge.tasks import BY_TASK, Route, scrub
from services.celery_bridge.translate import (
    InvalidArguments,
    Lookups,
    LookupUnavailable,
    Outgoing,
    translate,
)
from shared.health import ProbeFiles
from shared.kafka import headers as h
from shared.kafka.config import max_message_bytes, producer_config
from shared.logs import redact_url
from shared.settings import Settings

log = logging.getLogger(__name__)

DLQ_TOPIC = "celery-bridge.dlq"
ORIGINAL_QUEUE = "original-queue"
AMQP_HEADERS = "amqp-headers"
DEPTH_EVERY_S = 5.0
RETRY_MAX_S = 30.0
DRAIN_BATCH = 256  # messages read per loop turn before serving Kafka's callbacks
HEARTBEAT_S = 30.0  # AMQP heartbeat asked of RabbitMQ (it takes the lower of its own and this)


@dataclass(order=True)
class _Held:
    due: float  # unix time
    seq: int
    message: Message = field(compare=False)
    task: TaskMessage = field(compare=False)
    route: Route = field(compare=False)


@dataclass
class _Pending:
    message: Message
    outgoing: tuple[str, str | None, bytes, list[tuple[str, bytes]]]  # physical topic, key, value, headers
    outcome: str
    task: str
    received: float
    attempts: int = 0


class Bridge:
    def __init__(
        self,
        settings: Settings,
        *,
        stop: threading.Event | None = None,
        lookups: Lookups | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.queue = settings.celery_bridge_queue
        self.stop = stop or threading.Event()
        self._clock = clock
        self._kafka = Producer(producer_config(settings))
        self._max_bytes = max_message_bytes(settings)
        if lookups is None and settings.database_url:
            from shared.db.engine import get_engine

            lookups = Lookups(get_engine(settings.database_url))
        self._lookups = lookups
        self._passthrough = frozenset(settings.celery_bridge_passthrough)
        self._probe = ProbeFiles(settings.health_file)
        self._seq = itertools.count()
        self._generation = 0
        probe = Connection(settings.amqp_url)
        # Lost connections and refused channels (a queue declared with other arguments) alike:
        # log, back off, connect again.
        self._amqp_errors = (OSError, *probe.connection_errors, *probe.channel_errors)
        self._reset_session_state()

    # -- lifecycle ----------------------------------------------------------------------------

    def run(self) -> int:
        """Until `stop` is set: connect, bridge, and reconnect with back-off when the connection
        is lost. Returns the exit code (0)."""
        self._probe.clear()
        backoff = 1.0
        where = redact_url(self.settings.amqp_url)
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                self._session()
            except self._amqp_errors as exc:
                self._probe.set_ready(False)
                m.RECONNECTS.labels(self.queue).inc()
                if time.monotonic() - started > 60:
                    backoff = 1.0  # it ran a while: this is a new outage
                log.warning("AMQP %s: %s; reconnecting in %.0fs", where, exc or type(exc).__name__, backoff)
                self.stop.wait(backoff)
                backoff = min(backoff * 2, RETRY_MAX_S)
        self._probe.set_ready(False)
        self._kafka.flush(10)
        return 0

    def _reset_session_state(self) -> None:
        # Delivery tags belong to a channel: a new connection starts with nothing of the old one.
        self._generation += 1
        self._inbox: collections.deque[Message] = collections.deque()
        self._pending: dict[int, _Pending] = {}
        self._confirmed: list[tuple[int, int, KafkaError | None]] = []
        self._retries: list[tuple[float, int]] = []
        self._held: list[_Held] = []
        self._qos = 0

    def _session(self) -> None:
        self._reset_session_state()
        name = self.queue
        legacy = self.settings.celery_bridge_legacy_queue
        hold_s = max(int(self.settings.celery_bridge_hold_max_s), 1)
        with Connection(
            self.settings.amqp_url, heartbeat=HEARTBEAT_S, transport_options={"confirm_publish": True}
        ) as conn:
            conn.connect()
            channel = conn.channel()
            # Declared as Celery declares them (a direct exchange of the queue's name), so either
            # side may come first and neither redeclaration conflicts.
            source = Queue(name, Exchange(name, "direct"), routing_key=name, durable=True)
            self._legacy = Queue(legacy, Exchange(legacy, "direct"), routing_key=legacy, durable=True)
            # The TTL is in the name: a queue's arguments cannot change once declared.
            self._delay = Queue(
                f"{name}.bridge-delay.{hold_s}s",
                routing_key=f"{name}.bridge-delay.{hold_s}s",
                durable=True,
                queue_arguments={
                    "x-message-ttl": hold_s * 1000,
                    "x-dead-letter-exchange": "",
                    "x-dead-letter-routing-key": name,
                },
            )
            for queue in (source, self._legacy, self._delay):
                queue(channel).declare()
            self._publisher = AmqpProducer(conn.channel())
            self._depth_channel = conn.channel()
            self._set_qos(channel)
            consumer = Consumer(channel, [source], on_message=self._inbox.append, no_ack=False)
            consumer.consume()
            log.info("bridging AMQP queue %s at %s", name, redact_url(self.settings.amqp_url))
            self._probe.set_ready(True)
            next_depth = next_alive = 0.0
            while not self.stop.is_set():
                self._drain(conn)
                self._turn()
                self._set_qos(channel)
                now = time.monotonic()
                if now >= next_alive:
                    # py-amqp sends heartbeats only when asked: an idle bridge would otherwise be
                    # dropped by RabbitMQ after two missed intervals (and its held messages with it).
                    conn.heartbeat_check()
                    self._probe.alive()
                    next_alive = now + min(1.0, HEARTBEAT_S / 4)
                if now >= next_depth:
                    self._measure_depth()
                    next_depth = now + DEPTH_EVERY_S
            consumer.cancel()
            self._finish(conn)

    def _drain(self, conn: Connection) -> None:
        if self._pending or self._retries:
            wait = 0.005  # Kafka's delivery reports are served between reads
        elif self._held:
            wait = min(max(self._held[0].due - self._clock(), 0.0), 0.1)
        else:
            wait = 0.1
        try:
            conn.drain_events(timeout=wait)
            for _ in range(DRAIN_BATCH - 1):
                conn.drain_events(timeout=0)
        except TimeoutError:
            pass

    def _turn(self) -> None:
        """Handle what arrived, what came due, and what Kafka confirmed."""
        while self._inbox:
            self._handle(self._inbox.popleft())
        now = self._clock()
        while self._held and self._held[0].due <= now:
            held = heapq.heappop(self._held)
            self._bridge(held.message, held.task, held.route)
        now_mono = time.monotonic()
        while self._retries and self._retries[0][0] <= now_mono:
            _, seq = heapq.heappop(self._retries)
            if seq in self._pending:
                self._produce(seq)
        self._kafka.poll(0)
        self._settle()
        m.HELD.labels(self.queue).set(len(self._held))
        m.IN_FLIGHT.labels(self.queue).set(len(self._pending))

    def _finish(self, conn: Connection, grace_s: float = 10.0) -> None:
        """Stopping: wait a little for the writes in flight so their messages are acked; the
        rest (and everything held) RabbitMQ delivers again once the connection closes."""
        deadline = time.monotonic() + grace_s
        while self._pending and time.monotonic() < deadline:
            self._kafka.poll(0.05)
            self._settle()
        log.info(
            "stopped: %d unconfirmed and %d held messages left to redelivery",
            len(self._pending),
            len(self._held),
        )

    # -- routing ------------------------------------------------------------------------------

    def _handle(self, message: Message) -> None:
        headers = message.headers or {}
        name = task_name(headers)
        route = BY_TASK.get(name) if name else None
        if name is not None and (
            route is None or name in self._passthrough or (route.needs == "webhook" and self._lookups is None)
        ):
            self._pass_through(message, name, "passed_through")
            return
        try:
            task = decode(headers, message.body, message.content_type)
        except Malformed as exc:
            self._dead_letter(message, name, "malformed", str(exc))
            return
        assert route is not None
        if task.eta is not None:
            due = task.eta.timestamp()
            wait = due - self._clock()
            if wait > self.settings.celery_bridge_hold_max_s:
                self._defer(message, task.name)
                return
            if wait > 0:
                heapq.heappush(self._held, _Held(due, next(self._seq), message, task, route))
                return
        self._bridge(message, task, route)

    def _bridge(self, message: Message, task: TaskMessage, route: Route) -> None:
        try:
            out = translate(task, route, self._lookups)
        except InvalidArguments as exc:
            self._dead_letter(message, task.name, "invalid_arguments", str(exc))
            return
        except LookupUnavailable as exc:
            # Plane's database is down: the message waits unacked and is tried again.
            log.warning("%s %s: database lookup failed, retrying: %s", task.name, task.id, exc)
            heapq.heappush(self._held, _Held(self._clock() + 5, next(self._seq), message, task, route))
            return
        if len(out.value) > (limit := self.settings.event_max_bytes):
            # The consumer would dead-letter it as oversize; Kafka might refuse it outright.
            reason = f"the event is {len(out.value)} bytes, over EVENT_MAX_BYTES={limit}"
            self._dead_letter(message, task.name, "oversize", reason)
            return
        self._start(message, out, task.name, "bridged")

    def _start(self, message: Message, out: Outgoing, task: str, outcome: str) -> None:
        headers = [("celery-task", task.encode()), ("celery-task-id", str(_header(message, "id")).encode())]
        seq = next(self._seq)
        self._pending[seq] = _Pending(
            message,
            (self.settings.topic(out.topic), out.key, out.value, headers),
            outcome,
            task,
            self._clock(),
        )
        self._produce(seq)

    def _produce(self, seq: int) -> None:
        pending = self._pending[seq]
        pending.attempts += 1
        topic, key, value, headers = pending.outgoing
        generation = self._generation

        def on_delivery(err: KafkaError | None, _msg: Any) -> None:
            self._confirmed.append((generation, seq, err))

        while True:
            try:
                self._kafka.produce(topic, value=value, key=key, headers=headers, on_delivery=on_delivery)
                return
            except BufferError:
                self._kafka.poll(0.1)
            except KafkaException as exc:
                # Refused outright (too large, invalid): retrying, or crashing into a redelivery of
                # the same message, would stop the bridge for every task. A dead letter is cut to fit.
                if pending.outcome == "dead_lettered":
                    raise
                del self._pending[seq]
                self._dead_letter(pending.message, pending.task, "refused", str(exc))
                return

    def _settle(self) -> None:
        """Ack what Kafka confirmed; schedule again what it refused (never acked)."""
        confirmed, self._confirmed = self._confirmed, []
        for generation, seq, err in confirmed:
            if generation != self._generation:
                continue  # its connection is gone: RabbitMQ delivers the message again
            pending = self._pending.get(seq)
            if pending is None:
                continue
            if err is not None:
                m.PRODUCE_RETRIES.labels(self.queue).inc()
                delay = min(2.0 ** min(pending.attempts, 5), RETRY_MAX_S)
                log.warning(
                    "Kafka refused a write to %s (%s); retrying in %.0fs", pending.outgoing[0], err, delay
                )
                heapq.heappush(self._retries, (time.monotonic() + delay, seq))
                continue
            del self._pending[seq]
            pending.message.ack()
            self._count(pending.task, pending.outcome)
            m.BRIDGE_SECONDS.labels(self.queue).observe(max(self._clock() - pending.received, 0.0))

    def _pass_through(self, message: Message, name: str, outcome: str) -> None:
        """Re-published unchanged (body, headers, properties) to the legacy queue, confirmed by
        RabbitMQ, then acked. A crash in between leaves it in both: at least once."""
        self._republish(message, self._legacy)
        message.ack()
        self._count(name, outcome)

    def _defer(self, message: Message, name: str) -> None:
        self._republish(message, self._delay)
        message.ack()
        self._count(name, "deferred")

    def _republish(self, message: Message, queue: Queue) -> None:
        props = message.properties or {}
        self._publisher.publish(
            message.body,
            exchange=queue.exchange,
            routing_key=queue.routing_key,
            headers=dict(message.headers or {}),
            content_type=message.content_type,
            content_encoding=message.content_encoding,
            delivery_mode=props.get("delivery_mode", 2),
            priority=props.get("priority"),
            correlation_id=props.get("correlation_id"),
            reply_to=props.get("reply_to"),
            retry=False,
        )

    def _dead_letter(self, message: Message, name: str | None, kind: str, reason: str) -> None:
        log.warning("dead-lettering AMQP message (%s): %s", kind, reason)
        raw = message.body if isinstance(message.body, bytes) else str(message.body).encode()
        clean = self._secret_scrubber(name, raw)  # no secret is kept in a dead letter either
        raw = clean(raw)
        headers = [(k, clean(_header_bytes(v))) for k, v in (message.headers or {}).items()]
        props = message.properties or {}
        headers += [
            # The AMQP headers whole, with their types (ints, nulls, lists), for a replay.
            (AMQP_HEADERS, clean(json.dumps(message.headers or {}, default=str).encode())),
            ("amqp-content-type", (message.content_type or "").encode()),
            ("amqp-content-encoding", (message.content_encoding or "").encode()),
            ("amqp-correlation-id", str(props.get("correlation_id") or "").encode()),
            (ORIGINAL_QUEUE, self.queue.encode()),
            (h.ERROR_CLASS, kind.encode()),
            (h.ERROR_MESSAGE, clean(reason[:1000].encode())),
            (h.ATTEMPTS, b"1"),
            (h.FIRST_FAILED_AT, dt.datetime.now(dt.UTC).isoformat().encode()),
        ]
        room = self._max_bytes - 4096 - sum(len(k) + len(v) for k, v in headers)
        if len(raw) > room:
            import hashlib

            headers += [
                (h.VALUE_TRUNCATED, str(len(raw)).encode()),
                (h.VALUE_SHA256, hashlib.sha256(raw).hexdigest().encode()),
            ]
            raw = raw[: max(room, 0)]
        task_id = _header(message, "id")
        seq = next(self._seq)
        self._pending[seq] = _Pending(
            message,
            (self.settings.topic(DLQ_TOPIC), str(task_id) if task_id else None, raw, headers),
            "dead_lettered",
            name or "",
            self._clock(),
        )
        self._produce(seq)

    @staticmethod
    def _secret_scrubber(name: str | None, raw: bytes) -> Callable[[bytes], bytes]:
        """What a dead letter of this task passes its body and headers through: its route's
        secrets replaced, everything withheld when they cannot be found, unchanged otherwise."""
        route = BY_TASK.get(name or "")
        if route is None or route.secrets is None:
            return lambda value: value
        secrets = route.secrets(raw)
        if secrets is None:
            return lambda value: b""
        return lambda value: scrub(value, secrets)

    # -- bookkeeping --------------------------------------------------------------------------

    def _count(self, task: str, outcome: str) -> None:
        m.MESSAGES.labels(self.queue, task if task in BY_TASK else "other", outcome).inc()

    def _set_qos(self, channel: Any) -> None:
        extra = min(len(self._held), self.settings.celery_bridge_max_held)
        wanted = self.settings.celery_bridge_prefetch + extra
        if wanted != self._qos:
            channel.basic_qos(prefetch_size=0, prefetch_count=min(wanted, 65535), a_global=False)
            self._qos = wanted

    def _measure_depth(self) -> None:
        for queue in (self.queue, self.settings.celery_bridge_legacy_queue, self._delay.name):
            try:
                _, ready, _ = self._depth_channel.queue_declare(queue=queue, passive=True)
            except Exception as exc:  # a passive declare that fails closes only this channel
                log.debug("queue depth of %s: %s", queue, exc)
                continue
            m.QUEUE_DEPTH.labels(queue).set(ready)


def _header(message: Message, name: str) -> Any:
    return (message.headers or {}).get(name)


def _header_bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    return json.dumps(value, default=str).encode()


def run_bridge(settings: Settings) -> int:
    """`plane-workers celery bridge`: metrics, signals, then the bridge until SIGTERM."""
    import signal

    from shared import metrics

    if settings.metrics_port:
        metrics.serve(settings.metrics_port)
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return Bridge(settings, stop=stop).run()
