"""The batch handler form (shared/kafka/batch.py) on the real broker and PostgreSQL.

A test-only consumer writes one `batch_effects` row per event with one multi-row insert per
call. The rows carry the id of the transaction that wrote them, and an application order, so
the tests can count transactions and see which event was applied when. Its events borrow the
issue-description-version envelope (a schema every stack has): `updated_issue` holds their
key and sequence number. An event fails transiently while a `batch_gates` row names it, and
violates a CHECK constraint (a data error: dead letter) when its sequence number is negative.

Run as `python -m tests.integration.test_batch_handler` it is a consumer process of its own
(settings from the environment), for the kill -9 test.
"""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import replace

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Engine,
    Identity,
    Integer,
    MetaData,
    Table,
    Text,
    delete,
    event,
    func,
    insert,
    select,
    text,
    tuple_,
)
from sqlalchemy.dialects.postgresql import UUID

from shared.embedded.postgres import EmbeddedPostgres
from shared.embedded.stack import env_for
from shared.events import Event, new_event
from shared.events.producer import EventProducer
from shared.kafka import headers as h
from shared.kafka import runtime
from shared.kafka.config import client_config, consumer_config
from shared.kafka.handler import HandlerContext
from shared.registry import Batching, ConsumerSpec
from shared.settings import Settings
from tests.helpers import IDV_TYPE, consumer_thread, dead_letters, processed, wait_until
from tests.reliability.test_database_outage import offsets

metadata = MetaData()
EFFECTS = Table(
    "batch_effects",
    metadata,
    Column("event_id", UUID(as_uuid=True), nullable=False),  # not unique: a duplicate would show
    Column("key", Text, nullable=False),
    Column("seq", Integer, CheckConstraint("seq >= 0"), nullable=False),
    Column("txid", BigInteger, server_default=text("txid_current()"), nullable=False),
    Column("applied", BigInteger, Identity(), nullable=False),  # the order rows were written in
)
GATES = Table(
    "batch_gates", metadata, Column("key", Text, primary_key=True), Column("seq", Integer, primary_key=True)
)

# Calls that found a gate closed, per (key, seq): the consumer threads of this process only.
REFUSED: Counter[tuple[str, int]] = Counter()

SPEC = ConsumerSpec(
    name="batch-test",
    topic="batch-test",
    handler="tests.integration.test_batch_handler:handle_batch",
    event_types=(IDV_TYPE,),
    description="Test-only batch consumer.",
    retry_delays_s=(1.0, 1.0, 1.0, 1.0),
    partitions=3,
    batch=Batching(max_wait_ms=100),
)


class GateClosed(RuntimeError):
    """Transient: retried (retry tier, or the key held in place)."""


def handle_batch(events: Sequence[Event], ctx: HandlerContext) -> None:
    session = ctx.session
    assert session is not None
    rows = [{"event_id": uuid.UUID(e.id), **json.loads(e.data["updated_issue"])} for e in events]
    closed = session.execute(
        select(GATES.c.key, GATES.c.seq).where(
            tuple_(GATES.c.key, GATES.c.seq).in_([(r["key"], r["seq"]) for r in rows])
        )
    ).all()
    if closed:
        REFUSED.update((k, s) for k, s in closed)
        raise GateClosed(f"gate closed for {sorted(closed)}")
    session.execute(insert(EFFECTS).values(rows))
    if sleep_ms := int(os.environ.get("BATCH_TEST_SLEEP_MS", "0")):
        session.execute(select(func.pg_sleep(sleep_ms / 1000)))  # a window for kill -9 mid-batch


def item(key: str, seq: int) -> tuple[str, Event]:
    data = {
        "updated_issue": json.dumps({"key": key, "seq": seq}),
        "issue_id": str(uuid.uuid5(uuid.NAMESPACE_URL, key)),
        "user_id": str(uuid.uuid4()),
    }
    return key, new_event(IDV_TYPE, data)


def spread(n: int, keys: int = 20) -> list[tuple[str, Event]]:
    return [item(f"k{i % keys}", i // keys) for i in range(n)]


@pytest.fixture
def world(settings: Settings, engine: Engine) -> Iterator[Settings]:
    """The effect tables, and the test consumer's topics (it is not in the registry)."""
    metadata.create_all(engine)
    create_topics(settings, SPEC)
    yield settings
    REFUSED.clear()


def create_topics(settings: Settings, spec: ConsumerSpec) -> None:
    admin = AdminClient(client_config(settings))
    new = [NewTopic(settings.topic(t), spec.partitions, 1) for t in spec.topics]
    for future in admin.create_topics(new).values():
        future.result(timeout=30)


def effects(engine: Engine) -> list[tuple[str, int, int, int]]:
    """(key, seq, txid, applied) of every row, in the order they were applied."""
    with engine.connect() as conn:
        query = select(EFFECTS.c.key, EFFECTS.c.seq, EFFECTS.c.txid, EFFECTS.c.applied).order_by(
            EFFECTS.c.applied
        )
        return [tuple(row) for row in conn.execute(query)]


def applied_once(engine: Engine, events: Sequence[tuple[str, Event]]) -> bool:
    with engine.connect() as conn:
        counts = Counter(conn.scalars(select(EFFECTS.c.event_id)))
    return counts == Counter(uuid.UUID(e.id) for _, e in events)


def close_gate(engine: Engine, key: str, seq: int) -> None:
    with engine.begin() as conn:
        conn.execute(insert(GATES).values(key=key, seq=seq))


def open_gate(engine: Engine, key: str, seq: int) -> None:
    with engine.begin() as conn:
        conn.execute(delete(GATES).where(GATES.c.key == key, GATES.c.seq == seq))


def used(settings: Settings, topics: Sequence[str]) -> bool:
    return any(sum(offsets(settings, t).values()) for t in topics)


def test_many_events_are_written_in_few_transactions_and_statements(world, engine) -> None:  # type: ignore[no-untyped-def]
    events = spread(2000)
    EventProducer(world).send_many(SPEC.topic, events)
    statements, commits = Counter[str](), Counter[str]()

    def ours() -> bool:
        return threading.current_thread().name.startswith(SPEC.name)

    def on_statement(*_args: object) -> None:
        statements["n"] += ours()

    def on_commit(*_args: object) -> None:
        commits["n"] += ours()

    event.listen(engine, "before_cursor_execute", on_statement)
    event.listen(engine, "commit", on_commit)
    try:
        with consumer_thread(replace(SPEC, batch=Batching(max_events=500, max_wait_ms=200)), world):
            wait_until(lambda: processed(engine, SPEC.name) == len(events), timeout_s=120)
    finally:
        event.remove(engine, "before_cursor_execute", on_statement)
        event.remove(engine, "commit", on_commit)
    assert applied_once(engine, events)
    transactions = len({txid for _, _, txid, _ in effects(engine)})
    measured = f"{transactions} transactions, {statements['n']} statements, {commits['n']} commits"
    print(f"\n{len(events)} events: {measured}")
    assert transactions <= len(events) / 100
    assert commits["n"] <= len(events) / 100
    assert statements["n"] <= len(events) / 50  # claim, gate check, insert (and pool pings) per batch


def test_a_poison_event_among_200_is_dead_lettered_alone_and_the_rest_applied_once(world, engine) -> None:  # type: ignore[no-untyped-def]
    events = spread(200)
    poison = item("k7", -1)  # seq < 0 breaks the CHECK constraint: a data error
    events.insert(123, poison)
    EventProducer(world).send_many(SPEC.topic, events)
    with consumer_thread(replace(SPEC, batch=Batching(max_events=500, max_wait_ms=500)), world):
        wait_until(lambda: processed(engine, SPEC.name) == 200, timeout_s=60)
        letters = wait_until(lambda: dead_letters(world, SPEC.topic), timeout_s=30)
    assert [letter["key"] for letter in letters] == ["k7"]
    assert letters[0]["value"]["id"] == poison[1].id
    assert letters[0]["headers"][h.ERROR_CLASS] == "sqlalchemy.exc.IntegrityError"
    assert "batch_effects_seq_check" in letters[0]["headers"][h.ERROR_MESSAGE]
    assert letters[0]["headers"][h.ATTEMPTS] == "1"  # a data error is never retried
    good = [e for e in events if e is not poison]
    assert applied_once(engine, good)
    assert processed(engine, SPEC.name) == 200  # the poison's claim went with its savepoint
    assert len({txid for _, _, txid, _ in effects(engine)}) <= 6  # far fewer than 200
    assert not used(world, SPEC.retry_topics)


def test_a_transient_failure_is_retried_alone_through_the_tiers(world, engine) -> None:  # type: ignore[no-untyped-def]
    events = spread(100)
    key, stuck = events[42]
    seq = json.loads(stuck.data["updated_issue"])["seq"]
    close_gate(engine, key, seq)
    EventProducer(world).send_many(SPEC.topic, events)
    with consumer_thread(SPEC, world):
        wait_until(lambda: processed(engine, SPEC.name) == 99, timeout_s=60)
        wait_until(lambda: used(world, SPEC.retry_topics), timeout_s=30)
        open_gate(engine, key, seq)
        wait_until(lambda: processed(engine, SPEC.name) == 100, timeout_s=60)
    assert applied_once(engine, events)
    assert REFUSED[(key, seq)] >= 2  # the batch's call, then the event alone
    assert dead_letters(world, SPEC.topic) == []


def test_keep_key_order_holds_only_the_failing_key_and_never_commits_past_it(world, engine) -> None:  # type: ignore[no-untyped-def]
    ordered = replace(
        SPEC,
        name="batch-ordered",
        topic="batch-ordered",
        partitions=1,  # every key shares the partition: the others must flow past the held one
        retry_delays_s=(0.3,) * 100,
        batch=Batching(max_events=20, max_wait_ms=50, keep_key_order=True),
    )
    create_topics(world, ordered)
    close_gate(engine, "held", 1)
    first = [item("held", 0), item("held", 1), item("held", 2)]
    others = [item(f"other{i % 4}", i) for i in range(40)]
    later = [item("held", n) for n in range(3, 10)]
    producer = EventProducer(world)
    producer.send_many(ordered.topic, first + others[:20] + later[:3] + others[20:] + later[3:])
    position = offsets_of(world, ordered.topic, 50)
    group = world.group(ordered.group)

    def seen() -> set[tuple[str, int]]:
        return {(k, s) for k, s, _, _ in effects(engine)}

    with consumer_thread(ordered, world):
        wait_until(lambda: seen() >= {("held", 0)} | keys_of(others))
        wait_until(lambda: REFUSED[("held", 1)] >= 3)  # retried in place, again and again
        time.sleep(1.5)  # more than a commit interval
        assert {(k, s) for k, s in seen() if k == "held"} == {("held", 0)}
        # Committed up to the held event, not past it: a restart reads it again, first.
        assert offsets(world, ordered.topic, group) == {0: position[first[1][1].id]}
        assert not used(world, ordered.retry_topics)

        late = item("other9", 0)
        producer.send_many(ordered.topic, [late])  # other keys still flow
        wait_until(lambda: ("other9", 0) in seen())
        open_gate(engine, "held", 1)
        wait_until(lambda: processed(engine, ordered.name) == 51)
        end = max(offsets_of(world, ordered.topic, 51).values()) + 1
        wait_until(lambda: offsets(world, ordered.topic, group) == {0: end}, timeout_s=10)
    assert [s for k, s, _, _ in effects(engine) if k == "held"] == list(range(10))
    assert applied_once(engine, [*first, *others, *later, late])
    assert dead_letters(world, ordered.topic) == []


def keys_of(events: Sequence[tuple[str, Event]]) -> set[tuple[str, int]]:
    return {(key, json.loads(e.data["updated_issue"])["seq"]) for key, e in events}


def offsets_of(settings: Settings, topic: str, n: int) -> dict[str, int]:
    """Each event id's offset on a one-partition topic, read back from the broker."""
    consumer = Consumer(consumer_config(settings, f"probe-{uuid.uuid4().hex[:8]}"))
    consumer.assign([TopicPartition(settings.topic(topic), 0, OFFSET_BEGINNING)])
    found: dict[str, int] = {}
    try:
        deadline = time.monotonic() + 30
        while len(found) < n and time.monotonic() < deadline:
            if (message := consumer.poll(0.5)) is not None and message.error() is None:
                found[json.loads(message.value())["id"]] = message.offset()
    finally:
        consumer.close()
    assert len(found) == n
    return found


def test_a_database_outage_holds_the_batch_and_it_resumes(
    world, engine, embedded_postgres: EmbeddedPostgres
) -> None:  # type: ignore[no-untyped-def]
    events = spread(400)
    producer = EventProducer(world)
    producer.send_many(SPEC.topic, events[:200])
    with consumer_thread(SPEC, world) as run:
        wait_until(lambda: processed(engine, SPEC.name) == 200, timeout_s=60)
        hold = runtime.process_hold(run.shared)
        embedded_postgres.pause()
        try:
            producer.send_many(SPEC.topic, events[200:])
            wait_until(lambda: hold.holding, timeout_s=30)
            time.sleep(3)  # several hold periods: nothing may spend a retry meanwhile
            assert hold.holding and not run.errors
            assert not used(world, SPEC.retry_topics)
        finally:
            embedded_postgres.resume()
        wait_until(lambda: processed(engine, SPEC.name) == 400, timeout_s=60)
        wait_until(lambda: not hold.holding, timeout_s=10)
    assert applied_once(engine, events)
    assert not used(world, SPEC.retry_topics)
    assert dead_letters(world, SPEC.topic) == []


def test_stopping_while_held_leaves_the_batch_to_the_next_consumer(world, engine, embedded_postgres) -> None:  # type: ignore[no-untyped-def]
    events = spread(100)
    producer = EventProducer(world)
    producer.send_many(SPEC.topic, events[:50])
    with consumer_thread(SPEC, world) as run:
        wait_until(lambda: processed(engine, SPEC.name) == 50, timeout_s=60)
        embedded_postgres.pause()
        try:
            producer.send_many(SPEC.topic, events[50:])
            wait_until(lambda: runtime.process_hold(run.shared).holding, timeout_s=30)
            stopping = time.monotonic()
            run.shutdown()
            wait_until(lambda: not any(t.name.startswith(SPEC.name) for t in threading.enumerate()), 15)
            # Not the join timeout (20 s) spent refusing the batch: it is left for whoever is next.
            assert time.monotonic() - stopping < 10
        finally:
            embedded_postgres.resume()
    assert not run.errors
    with consumer_thread(SPEC, world):
        wait_until(lambda: processed(engine, SPEC.name) == 100, timeout_s=60)
    assert applied_once(engine, events)
    assert not used(world, SPEC.retry_topics)


def in_transaction(engine: Engine) -> bool:
    """A consumer's batch is inside its transaction: effects written, not committed."""
    with engine.connect() as conn:
        return bool(
            conn.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND pid <> pg_backend_pid() AND query LIKE '%pg_sleep%' AND state = 'active'"
                )
            )
        )


def test_kill_minus_9_mid_batch_applies_nothing_twice(world, engine, tmp_path) -> None:  # type: ignore[no-untyped-def]
    events = spread(1500, keys=50)
    EventProducer(world).send_many(SPEC.topic, events)
    env = {"BATCH_TEST_SLEEP_MS": "300", "BATCH_MAX_EVENTS": "50"}
    rng = random.Random(14)
    mid_stream = 0
    with (tmp_path / "stderr").open("wb") as stderr:
        for _ in range(3):
            before = processed(engine, SPEC.name)
            consumer = spawn(world, stderr, **env)
            try:
                # This incarnation committed a batch, and is inside the next one's transaction.
                wait_until(lambda b=before: processed(engine, SPEC.name) > b, timeout_s=90)
                wait_until(lambda: in_transaction(engine), timeout_s=30, interval_s=0.02)
                time.sleep(rng.uniform(0.0, 0.2))
            finally:
                consumer.send_signal(signal.SIGKILL)
                consumer.wait()
            wait_until(lambda: not in_transaction(engine), timeout_s=10)  # its backend rolled back
            done = processed(engine, SPEC.name)
            assert len(effects(engine)) == done  # claims and effects committed together, or neither
            mid_stream += 0 < done < len(events)
        assert mid_stream == 3, "a kill did not land while events were flowing"
        consumer = spawn(world, stderr, **env)
        try:
            wait_until(lambda: processed(engine, SPEC.name) == len(events), timeout_s=120, interval_s=0.5)
        finally:
            consumer.send_signal(signal.SIGTERM)
            assert consumer.wait(timeout=60) == 0, (tmp_path / "stderr").read_text()[-2000:]
    assert applied_once(engine, events)
    assert dead_letters(world, SPEC.topic) == []


def spawn(settings: Settings, stderr: object, **env: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.integration.test_batch_handler"],
        env=env_for(settings) | {"LOG_LEVEL": "WARNING"} | env,
        stdout=subprocess.DEVNULL,
        stderr=stderr,  # type: ignore[arg-type]
    )


def main() -> int:
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "WARNING"))
    return runtime.run(runtime.build(SPEC, Settings.from_env()))


if __name__ == "__main__":
    sys.exit(main())
