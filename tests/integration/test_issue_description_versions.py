"""The issue-description-versions consumer on real PostgreSQL (Plane's schema) and a real broker."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from shared import registry
from shared.db.plane import Issue, IssueDescriptionVersion
from shared.events.producer import EventProducer
from shared.kafka import headers as h
from tests.helpers import consumer_thread, dead_letters, idv_event, processed, seed, wait_until

SPEC = registry.consumer("issue-description-versions")


def versions(engine, issue_id):  # type: ignore[no-untyped-def]
    with Session(engine) as session:
        return session.scalars(
            select(IssueDescriptionVersion)
            .where(IssueDescriptionVersion.issue_id == issue_id)
            .order_by(IssueDescriptionVersion.created_at)
        ).all()


def change_description(engine, issue, html):  # type: ignore[no-untyped-def]
    with engine.begin() as conn:
        conn.execute(update(Issue).where(Issue.id == issue.id).values(description_html=html))


def test_plane_semantics_create_coalesce_split_and_skip(settings, engine):  # type: ignore[no-untyped-def]
    (alice, bob), (issue, other) = seed(engine, 2)
    producer = EventProducer(settings)
    with consumer_thread(SPEC, settings):
        # Creating: a version even though the description "did not change".
        producer.send(SPEC.topic, idv_event(issue, alice, creating=True, old_html="<p>issue 1</p>"))
        wait_until(lambda: processed(engine, SPEC.name) == 1)
        first = versions(engine, issue.id)
        assert [v.description_html for v in first] == ["<p>issue 1</p>"]
        assert first[0].owned_by_id == alice.id
        assert first[0].created_by_id == issue.created_by_id  # never nulled

        # Same user within 10 minutes: the version is amended, not duplicated.
        change_description(engine, issue, "<p>v2</p>")
        producer.send(SPEC.topic, idv_event(issue, alice, old_html="<p>issue 1</p>"))
        wait_until(lambda: processed(engine, SPEC.name) == 2)
        assert [v.description_html for v in versions(engine, issue.id)] == ["<p>v2</p>"]

        # Another user: a new version.
        change_description(engine, issue, "<p>v3</p>")
        producer.send(SPEC.topic, idv_event(issue, bob, old_html="<p>v2</p>"))
        wait_until(lambda: processed(engine, SPEC.name) == 3)
        assert [v.description_html for v in versions(engine, issue.id)] == ["<p>v2</p>", "<p>v3</p>"]

        # Unchanged description, not creating: nothing written.
        producer.send(SPEC.topic, idv_event(other, bob, old_html="<p>issue 2</p>"))
        wait_until(lambda: processed(engine, SPEC.name) == 4)
        assert versions(engine, other.id) == []


def test_same_user_after_ten_minutes_gets_a_new_version(settings, engine):  # type: ignore[no-untyped-def]
    (alice,), (issue,) = seed(engine, 1, n_users=1)
    producer = EventProducer(settings)
    with consumer_thread(SPEC, settings):
        producer.send(SPEC.topic, idv_event(issue, alice, creating=True))
        wait_until(lambda: processed(engine, SPEC.name) == 1)
        with engine.begin() as conn:
            conn.execute(
                update(IssueDescriptionVersion).values(
                    last_saved_at=datetime.now(UTC) - timedelta(seconds=601)
                )
            )
        change_description(engine, issue, "<p>later</p>")
        producer.send(SPEC.topic, idv_event(issue, alice, old_html="<p>issue 1</p>"))
        wait_until(lambda: processed(engine, SPEC.name) == 2)
    assert [v.description_html for v in versions(engine, issue.id)] == ["<p>issue 1</p>", "<p>later</p>"]


def test_redelivered_event_changes_nothing(settings, engine):  # type: ignore[no-untyped-def]
    (alice,), (issue, other) = seed(engine, 2, n_users=1)
    event = idv_event(issue, alice, creating=True)
    producer = EventProducer(settings)
    with consumer_thread(SPEC, settings):
        producer.send(SPEC.topic, event)
        wait_until(lambda: processed(engine, SPEC.name) == 1)
        before = versions(engine, issue.id)
        key = str(issue.id)  # one partition, so the marker is processed after the duplicate
        producer.send(SPEC.topic, event, key=key)  # the same id again, as after a crash
        producer.send(SPEC.topic, idv_event(other, alice, old_html="<p>issue 2</p>"), key=key)
        wait_until(lambda: processed(engine, SPEC.name) == 2)
    after = versions(engine, issue.id)
    assert [(v.id, v.last_saved_at) for v in after] == [(v.id, v.last_saved_at) for v in before]


def test_missing_issue_is_retried_then_dead_lettered(settings, engine):  # type: ignore[no-untyped-def]
    (alice,), (issue,) = seed(engine, 1, n_users=1)
    with engine.begin() as conn:
        conn.execute(update(Issue).values(deleted_at=datetime.now(UTC)))
    fast = replace(SPEC, retry_delays_s=(0.2, 0.2))
    EventProducer(settings).send(SPEC.topic, idv_event(issue, alice, creating=True))
    with consumer_thread(fast, settings):
        letters = wait_until(lambda: dead_letters(settings, SPEC.topic), timeout_s=60)
    assert len(letters) == 1
    meta = letters[0]["headers"]
    assert meta[h.ERROR_CLASS].endswith("IssueNotFound")
    assert meta[h.ATTEMPTS] == "3"  # first try + two retry tiers
    assert meta[h.ORIGINAL_TOPIC] == settings.topic(SPEC.topic)
    assert meta[h.ORIGINAL_OFFSET] == "0"
    assert versions(engine, issue.id) == []
