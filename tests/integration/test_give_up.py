"""`on_give_up`: once an event is in the DLQ, its consumer is told, so a status a user watches (an
export's) can say failed instead of waiting for ever. Through the real runtime, broker and
PostgreSQL; the handlers here fail on purpose."""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import Engine, text

from services.exports import issue_export
from services.exports.samples import exporter, seed
from shared import registry
from shared.cron.runtime import lock_key
from shared.events import Event
from shared.events.producer import EventProducer
from shared.kafka import headers as h
from shared.kafka.handler import HandlerContext, PermanentError
from shared.settings import Settings
from tests.helpers import consumer_thread, dead_letters, idv_event, wait_until
from tests.helpers import seed as seed_issues

IDV = registry.consumer("issue-description-versions")
GIVEN_UP: list[tuple[str, str]] = []  # (event id, reason), appended by `record`


def always_fails(event: Event, ctx: HandlerContext) -> None:
    raise RuntimeError("the dependency answered 500")


def never_valid(event: Event, ctx: HandlerContext) -> None:
    raise PermanentError("this issue can never take a version")


def record(event: Event, reason: str, settings: Settings) -> None:
    GIVEN_UP.append((event.id, reason))


def broken_hook(event: Event, reason: str, settings: Settings) -> None:
    raise RuntimeError("the status store is down")


def _spec(handler: str, on_give_up: str) -> registry.ConsumerSpec:
    module = __name__
    return replace(
        IDV, handler=f"{module}:{handler}", on_give_up=f"{module}:{on_give_up}", retry_delays_s=(0.2, 0.2)
    )


def test_the_hook_hears_of_an_event_whose_retries_are_spent(settings, engine) -> None:  # type: ignore[no-untyped-def]
    (alice, _), (issue,) = seed_issues(engine, 1)
    event = idv_event(issue, alice)
    GIVEN_UP.clear()
    EventProducer(settings).send(IDV.topic, event)
    with consumer_thread(_spec("always_fails", "record"), settings):
        wait_until(lambda: GIVEN_UP, timeout_s=60)
        letters = dead_letters(settings, IDV.topic)
    assert [letter["headers"][h.ATTEMPTS] for letter in letters] == ["3"]  # the DLQ first, then the hook
    assert [(event.id, "retries spent: RuntimeError: the dependency answered 500")] == GIVEN_UP


def test_the_hook_hears_of_a_permanent_error_at_once(settings, engine) -> None:  # type: ignore[no-untyped-def]
    (alice, _), (issue,) = seed_issues(engine, 1)
    event = idv_event(issue, alice)
    GIVEN_UP.clear()
    EventProducer(settings).send(IDV.topic, event)
    with consumer_thread(_spec("never_valid", "record"), settings):
        wait_until(lambda: GIVEN_UP, timeout_s=60)
        letters = dead_letters(settings, IDV.topic)
    assert [letter["headers"][h.ATTEMPTS] for letter in letters] == ["1"]
    assert [(event.id, "PermanentError: this issue can never take a version")] == GIVEN_UP


def test_a_failing_hook_loses_nothing_and_stops_nothing(settings, engine) -> None:  # type: ignore[no-untyped-def]
    (alice, _), issues = seed_issues(engine, 2)
    EventProducer(settings).send_many(IDV.topic, [(str(i.id), idv_event(i, alice)) for i in issues])
    with consumer_thread(_spec("never_valid", "broken_hook"), settings):
        letters = wait_until(lambda: len(dead_letters(settings, IDV.topic)) == 2 or None, timeout_s=60)
    assert letters


def _status(engine: Engine, token: str) -> tuple[str, str]:
    with engine.connect() as conn:
        row = conn.execute(text("SELECT status, reason FROM exporters WHERE token = :t"), {"t": token}).one()
    return row.status, row.reason


def test_an_export_given_up_is_failed_unless_done_or_still_running(engine) -> None:  # type: ignore[no-untyped-def]
    world = seed(engine, issues_per_project=1, comments_per_issue=0)
    stuck, done, running = (exporter(engine, world, "csv", [world.projects["A"]]) for _ in range(3))
    with engine.begin() as conn:
        processing = text("UPDATE exporters SET status = 'processing' WHERE token IN (:a, :c)")
        conn.execute(processing, {"a": stuck, "c": running})
        completed = text("UPDATE exporters SET status = 'completed', key = 'k' WHERE token = :t")
        conn.execute(completed, {"t": done})
    reason = "retries spent: EndpointConnectionError: " + "x" * 5000
    assert issue_export.gave_up(engine, stuck, reason)
    assert _status(engine, stuck) == ("failed", reason[: issue_export.MAX_REASON_CHARS])
    assert not issue_export.gave_up(engine, done, reason)
    assert _status(engine, done) == ("completed", "")
    with engine.connect() as other:  # another member exporting this token holds its lock
        other.execute(text("SELECT pg_advisory_lock(:k)"), {"k": lock_key(f"export:{running}")})
        assert not issue_export.gave_up(engine, running, reason)
        assert _status(engine, running) == ("processing", "")
