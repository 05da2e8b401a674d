"""webhook-deliveries when things go wrong: retries kept to their due times across partitions,
every attempt logged through kill -9, one delivery the database refuses set aside alone, and an
outage that does not duplicate retries. Real broker, real PostgreSQL, loopback receivers."""

from __future__ import annotations

import json
import random
import signal
import threading
import time
from collections import Counter, defaultdict
from dataclasses import replace
from datetime import UTC, datetime

from confluent_kafka import Producer
from sqlalchemy import Engine, create_engine, text

from services.webhooks import store
from services.webhooks.attempt import Delivery
from shared import registry
from shared.db.engine import normalise_url
from shared.embedded.postgres import EmbeddedPostgres
from shared.kafka import headers as h
from shared.kafka.config import producer_config
from shared.settings import Settings
from shared.testing.topics import read_topic
from tests.helpers import consumer_thread, dead_letters, set_database_up, spawn_consumer, wait_until
from tests.integration.http_servers import HttpServer, send
from tests.integration.webhook_world import count, deliveries_for, produce

DELIVERIES = registry.consumer("webhook-deliveries")


def test_a_tier_sends_each_retry_when_due_whatever_the_other_partitions_hold(hook_settings, world) -> None:
    """Tier 3 holds a retry due in 60 s at the head of partition 0, and behind it, and on
    partition 1, retries due in 6 to 7 s. Those two go out on time: the tier used to refuse its
    head until due, and arroyo then paused every partition, so they waited for the 60 s one.

    "On time" allows 10 s: a loaded 2-core CI machine once took 3.2 s to start the consumer and
    send, and the defect this guards against is a wait of 53 s or more."""
    arrived: dict[str, float] = {}

    def record(request) -> None:  # type: ignore[no-untyped-def]
        arrived.setdefault(request.headers["webhook-id"], time.time())
        send(request, 200, b"ok")

    receiver = HttpServer(routes={"/r": record})
    hook, _ = world.add_webhook(receiver.url("/r"))
    late, behind, beside = deliveries_for(world, hook, 3)
    tier = 3
    topic = hook_settings.topic(DELIVERIES.retry_topic(tier))
    now = time.time()
    plan = [(0, late, now + 60), (0, behind, now + 7), (1, beside, now + 6)]
    producer = Producer(producer_config(hook_settings))
    for partition, event, due in plan:
        failure = h.Failure(
            "webhook-deliveries", partition, 0, tier + 1, datetime.now(UTC).isoformat(), "http", "HTTP 500"
        )
        headers = h.retry_headers([], failure, due, tier)
        producer.produce(topic, event.to_json(), str(hook).encode(), partition=partition, headers=headers)
    producer.flush(10)

    with consumer_thread(DELIVERIES, hook_settings):
        wait_until(lambda: {behind.id, beside.id} <= arrived.keys(), 30)
        assert late.id not in arrived, "a retry went out before it was due"
    receiver.close()
    for event, due in ((behind, now + 7), (beside, now + 6)):
        assert due <= arrived[event.id] < due + 10, f"sent {arrived[event.id] - due:+.1f} s from its due time"


def test_every_attempt_has_its_log_row_through_repeated_kill_9(hook_settings, world, tmp_path) -> None:
    """300 deliveries to a slow receiver, the consumer killed (SIGKILL) four times while it
    sends. Each delivery succeeds once; its webhook_logs rows are numbered 0..n-1 without a gap
    or a repeat, and there is a row for every request the receiver saw: the answers recorded,
    and one marked interrupted for each attempt whose answer died with a worker (318 of 4,318
    attempts had no row at all before, and every re-send said retry_count 0)."""
    seen: Counter[str] = Counter()
    lock = threading.Lock()

    def slow_ok(request) -> None:  # type: ignore[no-untyped-def]
        with lock:
            seen[request.headers["webhook-id"]] += 1
        time.sleep(0.02)
        send(request, 200, b"ok")

    receiver = HttpServer(routes={f"/slow/{i}": slow_ok for i in range(3)})
    hooks = [world.add_webhook(receiver.url(f"/slow/{i}"))[0] for i in range(3)]
    for hook in hooks:
        produce(hook_settings, "webhook-deliveries", deliveries_for(world, hook, 100), str(hook))
    rng = random.Random(7)
    stderr = (tmp_path / "consumer.log").open("wb")
    for _ in range(4):
        consumer = spawn_consumer("webhook-deliveries", hook_settings, stderr=stderr)
        before = sum(seen.values())
        wait_until(lambda b=before: sum(seen.values()) >= b + rng.randint(5, 40), 60, 0.005)
        consumer.send_signal(signal.SIGKILL)
        consumer.wait(30)
    consumer = spawn_consumer("webhook-deliveries", hook_settings, stderr=stderr)
    try:
        wait_until(lambda: count(world.engine, "plane_workers.webhook_deliveries") >= 300, 120)
    finally:
        consumer.send_signal(signal.SIGTERM)
        consumer.wait(30)
    receiver.close()

    logs = _logs_by_delivery(world.engine)
    assert len(logs) == 300
    interrupted = 0
    for delivery_id, rows in logs.items():
        assert [r["retry_count"] for r in rows] == list(range(len(rows))), delivery_id
        answered = [r for r in rows if r["response_status"] is not None]
        assert [r["response_status"] for r in answered] == ["200"] * len(answered)
        assert len(rows) >= seen[delivery_id] >= len(answered) >= 1, delivery_id
        interrupted += len(rows) - len(answered)
    assert interrupted >= 4, "no kill landed while a request was in flight"
    with world.engine.connect() as conn:
        statuses = conn.execute(text("SELECT status FROM plane_workers.webhook_deliveries")).scalars()
        assert Counter(statuses) == {"succeeded": 300}
    assert count(world.engine, "plane_workers.webhook_attempts") == 0


def test_lookup_logs_each_unrecorded_attempt_once(world) -> None:
    """Three attempts a killed worker began and never recorded (two deliveries, one of them with
    an attempt already logged): one lookup writes exactly one interrupted row for each unlogged
    attempt, and reports each delivery's last attempt. The rows were inserted once per attempt
    found before, so the first of several was logged several times."""
    hook, _ = world.add_webhook("https://example.invalid/hook")
    events = deliveries_for(world, hook, 2)
    deliveries = [
        Delivery(e.id, hook, world.workspace_id, "issue", e.data["payload"], e.time, 1, b"{}") for e in events
    ]
    started = datetime(2026, 1, 1, tzinfo=UTC)
    with world.engine.begin() as conn:
        for delivery_id, attempt, logged in (
            (events[0].id, 1, True),
            (events[0].id, 2, False),
            (events[1].id, 1, False),
            (events[1].id, 2, False),
        ):
            conn.execute(
                text(
                    "INSERT INTO plane_workers.webhook_attempts"
                    " (delivery_id, attempt, webhook_id, started_at, logged) VALUES (:d, :a, :w, :s, :l)"
                ),
                {"d": delivery_id, "a": attempt, "w": hook, "s": started, "l": logged},
            )
    with world.engine.begin() as conn:
        found = store.lookup(conn, deliveries, time.time(), 60.0)
    assert found.interrupted == {events[0].id: 2, events[1].id: 2}
    logs = _logs_by_delivery(world.engine)
    assert {d: [r["retry_count"] for r in rows] for d, rows in logs.items()} == {
        events[0].id: [1],
        events[1].id: [0, 1],
    }
    with world.engine.connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM plane_workers.webhook_attempts WHERE NOT logged")) == 0


def _logs_by_delivery(engine: Engine) -> dict[str, list[dict]]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT * FROM webhook_logs ORDER BY retry_count")).mappings().all()
    by_delivery: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_delivery[json.loads(row["request_headers"])["X-Plane-Delivery"]].append(dict(row))
    return by_delivery


def test_a_delivery_the_database_refuses_is_set_aside_alone(hook_settings, world) -> None:
    """PostgreSQL refuses the log rows of one webhook (a trigger raising check_violation stands
    in for any value it rejects). Its deliveries are dead-lettered, each alone, with the error;
    the other webhook's deliveries, in the same batches, are logged and finished; the consumer
    keeps running (a refused write stopped it for good, and it re-sent the batch on each
    restart)."""
    receiver = HttpServer()
    refused, _ = world.add_webhook(receiver.url("/refused"))
    fine, _ = world.add_webhook(receiver.url("/fine"))
    with world.engine.begin() as conn:
        conn.execute(
            text(
                """
                CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    RAISE EXCEPTION 'refused by the test' USING ERRCODE = 'check_violation';
                END $$;
                CREATE TRIGGER refuse BEFORE INSERT ON webhook_logs
                FOR EACH ROW WHEN (NEW.webhook = :hook) EXECUTE FUNCTION refuse();
                """.replace(":hook", f"'{refused}'::uuid")
            )
        )
    bad, good = deliveries_for(world, refused, 5), deliveries_for(world, fine, 200)
    produce(hook_settings, "webhook-deliveries", bad + good, str(fine))  # one partition, mixed
    with consumer_thread(DELIVERIES, hook_settings) as run:
        wait_until(lambda: count(world.engine, "plane_workers.webhook_deliveries") >= 200, 60)
        dlq = wait_until(lambda: len(d := dead_letters(hook_settings, DELIVERIES.topic)) >= 5 and d, 30)
        assert not run.errors
    receiver.close()
    assert all("CheckViolation) refused by the test" in d["headers"][h.ERROR_MESSAGE] for d in dlq), dlq
    assert {d["value"]["id"] for d in dlq} == {e.id for e in bad}
    assert len(world.logs(fine)) == 200 and world.logs(refused) == []
    assert {d["status"] for d in world.deliveries(fine)} == {"succeeded"}


def test_an_outage_while_recording_sends_each_retry_once(
    hook_settings, world, embedded_postgres: EmbeddedPostgres
) -> None:
    """The database goes away after the receiver answered 500 to 50 deliveries and before the
    writer recorded them. The writer's batch is held and tried again for seconds; each delivery's
    retry reaches tier 0 once (it was produced again on every try before)."""
    answered = threading.Event()
    settings: Settings = hook_settings
    admin = create_engine(normalise_url(embedded_postgres.url), isolation_level="AUTOCOMMIT")

    def fail_then_go_down(request) -> None:  # type: ignore[no-untyped-def]
        if not answered.is_set():
            answered.set()
            set_database_up(admin, settings.database_url, False)
        send(request, 500, b"down")

    receiver = HttpServer(routes={"/down": fail_then_go_down})
    hook, _ = world.add_webhook(receiver.url("/down"))
    events = deliveries_for(world, hook, 50)
    produce(settings, "webhook-deliveries", events, str(hook))
    tier0 = settings.topic(DELIVERIES.retry_topic(0))
    with consumer_thread(DELIVERIES, settings):
        answered.wait(60)
        time.sleep(4)  # the writer holds its batch, trying again each second
        set_database_up(admin, settings.database_url, True)
        wait_until(lambda: len(read_topic(settings, tier0)) >= 50, 60)
        time.sleep(1)
    receiver.close()
    admin.dispose()
    ids = Counter(json.loads(m.value())["id"] for m in read_topic(settings, tier0))
    assert set(ids) == {e.id for e in events}
    assert max(ids.values()) == 1, f"retries sent more than once: {ids.most_common(3)}"


def test_a_hanging_endpoint_with_a_backlog_does_not_stop_the_intake(hook_settings, world) -> None:
    """400 deliveries to an endpoint that hangs, ahead of 50 to a healthy one on the same
    partitions, with an intake of 256 (WEBHOOK_CONCURRENCY 8). The hanging endpoint keeps its
    share and 64 waiting; the rest are deferred to tier 0 unsent, so the healthy deliveries go
    out at once (the 400 used to fill the intake and stop every endpoint until they timed out).
    Once the endpoint answers again, every deferred delivery is sent and succeeds once, each
    logged with retry_count 0: a deferral is not an attempt."""
    release = threading.Event()
    receiver = HttpServer()
    receiver.routes["/hang"] = lambda r: (release.wait(60), send(r, 200, b"late"))
    hanging, _ = world.add_webhook(receiver.url("/hang"))
    healthy, _ = world.add_webhook(receiver.url("/ok"))
    key = str(hanging)  # one key: the healthy deliveries sit behind the hanging ones
    produce(hook_settings, "webhook-deliveries", deliveries_for(world, hanging, 400), key)
    produce(hook_settings, "webhook-deliveries", deliveries_for(world, healthy, 50), key)
    settings = replace(
        hook_settings, webhook_concurrency=8, webhook_endpoint_concurrency=2, webhook_timeout_s=20.0
    )
    with consumer_thread(DELIVERIES, settings):
        wait_until(lambda: len(world.logs(healthy)) >= 50, 30)
        assert world.logs(hanging) == []
        tier0 = read_topic(settings, settings.topic(DELIVERIES.retry_topic(0)))
        assert len(tier0) >= 400 - 2 - 64 - 2
        assert {h.as_dict(m.headers())[h.ERROR_CLASS] for m in tier0} == {"deferred"}
        release.set()
        wait_until(lambda: len(world.deliveries(hanging)) >= 400, 90)
    receiver.close()
    logs = world.logs(hanging)
    assert len(logs) == 400 and {r["retry_count"] for r in logs} == {0}
    assert Counter(d["status"] for d in world.deliveries(hanging)) == {"succeeded": 400}
