"""analytics-events against Plane's user_recent_visits on real PostgreSQL and a loopback HTTP
server standing in for PostHog (its /batch/ capture API, over the wire).

Most tests call the batch handler in a transaction, as the batch runtime does; the retry tests
run the consumer in this process on the embedded broker with fast retry tiers, so "retried, not
lost" is the runtime's real path through the retry topics.
"""

from __future__ import annotations

import json
import socket
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, text

from services.analytics_events import handler
from shared import registry
from shared.db.engine import session_factory
from shared.events import Event, new_event
from shared.events.producer import EventProducer
from shared.kafka.handler import EventFailures, HandlerContext
from shared.mail.config import encrypt_value
from shared.settings import Settings
from shared.testing import plane_factory as make
from shared.testing.plane_rows import insert_one
from tests.helpers import consumer_thread, processed, wait_until
from tests.integration.http_servers import HttpServer, running, send

SPEC = registry.consumer("analytics-events")
FAST = replace(SPEC, retry_delays_s=(0.3, 0.3, 0.3))
T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def world(engine: Engine):  # type: ignore[no-untyped-def]
    users, (issue,) = make.project_with_issues(engine, 1, n_users=2)
    with engine.connect() as conn:
        slug = conn.scalar(text("SELECT slug FROM workspaces WHERE id = :w"), {"w": issue.workspace_id})
    return users, issue, slug


def at(event: Event, seconds: float) -> Event:
    return replace(event, time=(T0 + timedelta(seconds=seconds)).isoformat())


def visit(user, issue, slug: str, entity: uuid.UUID, seconds: float) -> Event:  # type: ignore[no-untyped-def]
    data = {
        "entity_name": "issue",
        "entity_identifier": str(entity),
        "user_id": str(user.id),
        "project_id": str(issue.project_id),
        "slug": slug,
    }
    return at(new_event("plane.recent_visit.v1", data), seconds)


def track(user, slug: str | None, name: str = "user_joined_workspace", **props: object) -> Event:  # type: ignore[no-untyped-def]
    data = {
        "user_id": str(user.id),
        "event_name": name,
        "slug": slug,
        "event_properties": {"role": "x", **props},
    }
    return new_event("plane.track_event.v1", data)


def run_batch(settings: Settings, events: list[Event]) -> EventFailures | None:
    """As the batch runtime runs it: EventFailures commits what the handler did for the others."""
    with session_factory(settings.database_url).begin() as session:
        try:
            handler.handle_batch(events, HandlerContext("analytics-events", settings, None, session))  # type: ignore[arg-type]
        except EventFailures as failed:
            return failed
    return None


def visits(engine: Engine, user) -> list:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return conn.execute(
            text(
                "SELECT entity_identifier, visited_at, created_at, deleted_at, created_by_id, updated_by_id,"
                " workspace_id, project_id, entity_name FROM user_recent_visits WHERE user_id = :u"
                " ORDER BY created_at"
            ),
            {"u": user.id},
        ).all()


def posthog_settings(settings: Settings, server: HttpServer, **overrides: object) -> Settings:
    return replace(
        settings,
        posthog_api_key="phc_test_key",
        posthog_host=server.url("/ph"),
        posthog_allowed_ips=("127.0.0.1/32",),
        posthog_timeout_s=2.0,
        **overrides,
    )


def captured(server: HttpServer) -> list[dict]:
    return [json.loads(r.body) for r in server.requests if r.path == "/ph/batch/"]


def test_the_21st_visit_soft_deletes_the_oldest_and_a_revisit_upserts(engine, settings, world) -> None:
    users, issue, slug = world
    user = users[1]
    entities = [uuid.uuid4() for _ in range(21)]
    run_batch(settings, [visit(user, issue, slug, e, n) for n, e in enumerate(entities[:20])])
    rows = visits(engine, user)
    assert len(rows) == 20 and all(r.deleted_at is None for r in rows)
    first = rows[0]
    assert first.created_by_id == first.updated_by_id == user.id, "Plane sets both to the user"
    assert (first.workspace_id, first.project_id, first.entity_name) == (
        issue.workspace_id,
        issue.project_id,
        "issue",
    )
    assert first.visited_at == first.created_at == T0, "the visit's time is the event's"

    run_batch(settings, [visit(user, issue, slug, entities[20], 100)])
    rows = visits(engine, user)
    assert len(rows) == 21
    deleted = [r.entity_identifier for r in rows if r.deleted_at is not None]
    assert deleted == [entities[0]], "the oldest visit went, soft-deleted"
    assert sum(r.deleted_at is None for r in rows) == 20

    run_batch(
        settings, [visit(user, issue, slug, entities[5], 200), visit(user, issue, slug, entities[5], 150)]
    )
    rows = visits(engine, user)
    assert len(rows) == 21, "a revisit inserts nothing"
    (again,) = [r for r in rows if r.entity_identifier == entities[5]]
    assert again.visited_at == T0 + timedelta(seconds=200), "an older retried visit does not move it back"
    assert again.created_at == T0 + timedelta(seconds=5)


def test_visits_of_other_users_and_unknown_workspaces(engine, settings, world) -> None:
    users, issue, slug = world
    run_batch(
        settings,
        [
            visit(users[0], issue, slug, uuid.uuid4(), 1),
            visit(users[1], issue, "no-such-ws", uuid.uuid4(), 2),
        ],
    )
    assert len(visits(engine, users[0])) == 1
    assert visits(engine, users[1]) == [], "no workspace of that slug: skipped, as Plane drops it"


def test_a_capture_arrives_in_posthogs_wire_format_with_plane_roles(engine, settings, world) -> None:
    users, issue, slug = world
    owner, member = users
    server = HttpServer()
    events = [
        track(member, slug, "user_joined_workspace", role="member", workspace_slug=slug),
        track(owner, slug, "user_invited_to_workspace", invitee_email="a@example.com"),
        track(member, slug, "workspace_deleted"),
        track(member, "gone-ws", "workspace_deleted"),
    ]
    with running(server):
        run_batch(posthog_settings(settings, server), [visit(member, issue, slug, uuid.uuid4(), 1), *events])
    (request,) = [r for r in server.requests if r.path == "/ph/batch/"]
    assert request.method == "POST" and request.headers["Content-Type"] == "application/json"
    (payload,) = captured(server)
    assert payload["api_key"] == "phc_test_key" and "sent_at" in payload
    batch = payload["batch"]
    assert [m["uuid"] for m in batch] == [e.id for e in events], "one request, every capture, in order"
    assert [m["event"] for m in batch] == [e.data["event_name"] for e in events]
    assert [m["distinct_id"] for m in batch] == [
        str(member.id),
        str(owner.id),
        str(member.id),
        str(member.id),
    ]
    assert [m["properties"]["role"] for m in batch] == ["member", "owner", "admin", "unknown"]
    assert batch[0]["properties"]["$groups"] == {"workspace": slug}
    assert batch[0]["properties"]["workspace_slug"] == slug
    assert batch[1]["properties"]["invitee_email"] == "a@example.com"
    assert all(
        m["timestamp"] == e.time and m["type"] == "capture" for m, e in zip(batch, events, strict=True)
    )
    assert len(visits(engine, member)) == 1, "the visit of the same batch is written"


def test_posthog_5xx_fails_the_track_events_alone_and_keeps_the_visits(engine, settings, world) -> None:
    users, issue, slug = world
    server = HttpServer(routes={"/ph/batch/": lambda h: send(h, 503, b"busy")})
    tracks = [track(users[0], slug), track(users[1], slug)]
    with running(server):
        failed = run_batch(
            posthog_settings(settings, server), [visit(users[1], issue, slug, uuid.uuid4(), 1), *tracks]
        )
    assert failed is not None and set(failed.failures) == {e.id for e in tracks}
    assert "503" in str(failed)
    assert len(visits(engine, users[1])) == 1, "committed without the failed events' claims"


def test_a_batch_posthog_refuses_is_sent_event_by_event(engine, settings, world) -> None:
    users, _issue, slug = world
    bad = track(users[0], slug, poison=True)

    def batch(h) -> None:  # type: ignore[no-untyped-def]
        send(h, 400 if b'"poison": true' in h.body else 200, b"{}")

    server = HttpServer(routes={"/ph/batch/": batch})
    good = track(users[1], slug)
    with running(server):
        failed = run_batch(posthog_settings(settings, server), [good, bad])
    assert failed is not None and list(failed.failures) == [bad.id]
    assert type(failed.failures[bad.id]).__name__ == "PermanentError"
    requests = [[m["uuid"] for m in p["batch"]] for p in captured(server)]
    assert requests == [[good.id, bad.id], [good.id], [bad.id]], "the batch, then each alone"


def test_unconfigured_posthog_sends_nothing_and_acknowledges(engine, settings, world, caplog) -> None:
    users, _issue, slug = world
    server = HttpServer()
    handler._last_unconfigured_log = 0.0
    before = handler.EVENTS.labels("track_event", "skipped_unconfigured")._value.get()
    with running(server):
        unconfigured = replace(posthog_settings(settings, server), posthog_api_key="")
        run_batch(unconfigured, [track(users[0], slug), track(users[1], slug)])  # returns: acknowledged
    assert server.requests == [], "nothing sent"
    assert handler.EVENTS.labels("track_event", "skipped_unconfigured")._value.get() == before + 2
    assert "acknowledged without sending" in caplog.text


def test_instance_configuration_rows_win_over_the_environment(engine, settings, world) -> None:
    """Plane's get_configuration_value with SKIP_ENV_VAR=1: a live row's value (decrypted)."""
    users, _issue, slug = world
    server = HttpServer()
    secret_key = "plane-secret-key"
    with running(server):
        configured = replace(
            posthog_settings(settings, server),
            posthog_api_key="",
            posthog_host="",
            secret_key=secret_key,
            skip_env_var=True,
        )
        with engine.begin() as conn:
            add_configuration(
                conn, "POSTHOG_API_KEY", encrypt_value(secret_key, "phc_from_row"), encrypted=True
            )
            add_configuration(conn, "POSTHOG_HOST", server.url("/ph"))
        run_batch(configured, [track(users[0], slug)])
    (payload,) = captured(server)
    assert payload["api_key"] == "phc_from_row"


def add_configuration(conn, key: str, value: str, encrypted: bool = False) -> None:  # type: ignore[no-untyped-def]
    insert_one(
        conn, "instance_configurations", key=key, value=value, category="POSTHOG", is_encrypted=encrypted
    )


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_posthog_unreachable_then_back_the_capture_is_retried_not_lost(engine, settings, world) -> None:
    """The runtime's real path: PostHog refuses connections (the host row points at a closed
    port), the event goes through the retry tiers; the row is fixed and the retry delivers."""
    users, issue, slug = world
    server = HttpServer()
    with engine.begin() as conn:
        add_configuration(conn, "POSTHOG_API_KEY", "phc_test_key")
        add_configuration(conn, "POSTHOG_HOST", f"http://127.0.0.1:{closed_port()}/ph")
    with running(server):
        s = replace(posthog_settings(settings, server), posthog_host="", skip_env_var=True)
        event = track(users[0], slug)
        with consumer_thread(FAST, s):
            producer = EventProducer(s)
            producer.send_many(
                SPEC.topic,
                [
                    (str(users[0].id), event),
                    (str(users[0].id), visit(users[0], issue, slug, uuid.uuid4(), 1)),
                ],
            )
            producer.close()
            wait_until(lambda: len(visits(engine, users[0])) == 1, timeout_s=60)
            with engine.begin() as conn:
                conn.execute(
                    text("UPDATE instance_configurations SET value = :v WHERE key = 'POSTHOG_HOST'"),
                    {"v": server.url("/ph")},
                )
            wait_until(
                lambda: any(m["uuid"] == event.id for p in captured(server) for m in p["batch"]), timeout_s=60
            )
            wait_until(lambda: processed(engine, SPEC.name) == 2, timeout_s=30)


def test_posthog_500_then_200_the_capture_is_retried_not_lost(engine, settings, world) -> None:
    users, _issue, slug = world
    answers = iter([500, 500])

    def batch(h) -> None:  # type: ignore[no-untyped-def]
        send(h, next(answers, 200), b'{"status": 1}')

    server = HttpServer(routes={"/ph/batch/": batch})
    event = track(users[1], slug)
    with running(server):
        s = posthog_settings(settings, server)
        with consumer_thread(FAST, s):
            producer = EventProducer(s)
            producer.send_many(SPEC.topic, [(str(users[1].id), event)])
            producer.close()
            wait_until(lambda: processed(engine, SPEC.name) == 1, timeout_s=60)
    uuids = [m["uuid"] for p in captured(server) for m in p["batch"]]
    assert uuids == [event.id] * 3, "twice refused, then accepted: the same capture, same uuid"
