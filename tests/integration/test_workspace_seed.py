"""The workspace-seed consumer on real PostgreSQL (Plane's schema) and a real broker.

The concurrency tests call the handler directly from threads, each in its own transaction, as two
consumer processes (or a consumer and Plane's API) would run at once; no mocks.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from services.workspace_seed.handler import _issue, advisory_key, handle
from services.workspace_seed.samples import EVENT_TYPE, PER_WORKSPACE
from shared import registry
from shared.events import new_event
from shared.events.producer import EventProducer
from shared.kafka.handler import HandlerContext
from shared.registry import ConsumerSpec
from shared.testing import plane_factory as make
from shared.testing import plane_rows
from tests.helpers import consumer_thread, dead_letters, processed, wait_until

# The seed's rows that do not depend on the workspace's members (the samples count those too).
MEMBER_TABLES = ("workspace_members", "project_members", "project_user_properties")
SEEDED_COUNTS = {table: n for table, n in PER_WORKSPACE.items() if table not in MEMBER_TABLES}


def spec() -> ConsumerSpec:
    try:
        return registry.consumer("workspace-seed")
    except registry.UnknownWorkload:  # before the registry entry exists
        return ConsumerSpec(
            name="workspace-seed",
            topic="workspace",
            handler="services.workspace_seed.handler:handle",
            event_types=(EVENT_TYPE,),
            description="test",
        )


@pytest.fixture(autouse=True)
def topics(settings):  # type: ignore[no-untyped-def]
    """The consumer's topics, which the settings fixture creates only once it is in the registry."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap_servers})
    existing = admin.list_topics(timeout=30).topics
    wanted = [settings.topic(t) for t in spec().topics if settings.topic(t) not in existing]
    if wanted:
        new = [NewTopic(t, num_partitions=1, replication_factor=1) for t in wanted]
        for future in admin.create_topics(new).values():
            future.result(timeout=30)


def make_workspace(engine: Engine, name: str = "Acme Robotics", members: int = 2) -> uuid.UUID:
    with Session(engine, expire_on_commit=False) as session, session.begin():
        users = [make.user(i) for i in range(members)]
        session.add_all(users)
        session.flush()
        ws = make.workspace(users[0], slug=f"ws-{uuid.uuid4().hex[:8]}", name=name, timezone="Asia/Kolkata")
        session.add(ws)
        session.flush()
    with engine.begin() as conn:
        for n, user in enumerate(users):
            plane_rows.insert_one(
                conn, "workspace_members", workspace_id=ws.id, member_id=user.id, role=20 if n == 0 else 15
            )
    return ws.id


def counts(engine: Engine, workspace_id: uuid.UUID) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            table: conn.scalar(
                text(f"SELECT count(*) FROM {table} WHERE workspace_id = :w"), {"w": workspace_id}
            )
            for table in SEEDED_COUNTS
        }


def run_handler(settings, engine: Engine, workspace_id: uuid.UUID) -> None:  # type: ignore[no-untyped-def]
    """The handler in a transaction of its own, as the runtime calls it (minus the event-id claim)."""
    with Session(engine) as session, session.begin():
        ctx = HandlerContext(consumer="workspace-seed", settings=settings, producer=None, session=session)  # type: ignore[arg-type]
        handle(new_event(EVENT_TYPE, {"workspace_id": str(workspace_id)}), ctx)


def test_seeds_what_plane_seeds_once(settings, engine):  # type: ignore[no-untyped-def]
    workspace_id = make_workspace(engine)
    producer = EventProducer(settings)
    s = spec()
    with consumer_thread(s, settings):
        producer.send(
            s.topic, new_event(EVENT_TYPE, {"workspace_id": str(workspace_id)}), key=str(workspace_id)
        )
        wait_until(lambda: processed(engine, s.name) == 1)
        # A second event for the same workspace (Plane's API retried, or a replay) seeds nothing.
        producer.send(
            s.topic, new_event(EVENT_TYPE, {"workspace_id": str(workspace_id)}), key=str(workspace_id)
        )
        wait_until(lambda: processed(engine, s.name) == 2)
    assert counts(engine, workspace_id) == SEEDED_COUNTS
    with engine.connect() as conn:
        bot = conn.execute(
            text("SELECT id, username, email, is_bot, bot_type, display_name FROM users WHERE username = :u"),
            {"u": f"bot_user_{workspace_id}"},
        ).one()
        assert (bot.email, bot.is_bot, bot.bot_type, bot.display_name) == (
            f"bot_user_{workspace_id}@plane.so",
            True,
            "WORKSPACE_SEED",
            "Plane",
        )
        assert bot.id.version == 4
        role = conn.scalar(
            text("SELECT role FROM workspace_members WHERE workspace_id = :w AND member_id = :m"),
            {"w": workspace_id, "m": bot.id},
        )
        assert role == 20
        project = conn.execute(
            text("SELECT id, name, identifier, created_by_id FROM projects WHERE workspace_id = :w"),
            {"w": workspace_id},
        ).one()
        assert (project.name, project.identifier, project.created_by_id) == ("Acme Robotics", "ACMER", bot.id)
        # Every workspace member (two people and the bot) joins the project.
        for table in ("project_members", "project_user_properties"):
            assert (
                conn.scalar(text(f"SELECT count(*) FROM {table} WHERE project_id = :p"), {"p": project.id})
                == 3
            )
        states = conn.execute(
            text('SELECT name, "group", "default" FROM states WHERE project_id = :p ORDER BY sequence'),
            {"p": project.id},
        ).all()
        assert [tuple(s) for s in states] == [
            ("Backlog", "backlog", True),
            ("Todo", "unstarted", False),
            ("In Progress", "started", False),
            ("Done", "completed", False),
            ("Cancelled", "cancelled", False),
        ]
        # State.save() numbers states 15000 apart, whatever the seed says after the first.
        sequences = conn.scalars(
            text("SELECT sequence FROM states WHERE project_id = :p ORDER BY 1"), {"p": project.id}
        )
        assert list(sequences) == [15000, 30000, 45000, 60000, 75000]
        timezone = conn.scalar(text("SELECT timezone FROM projects WHERE id = :p"), {"p": project.id})
        assert timezone == "Asia/Kolkata"  # the workspace's, as Project.save() sets it
        labels = conn.scalars(
            text("SELECT name FROM labels WHERE project_id = :p ORDER BY name"), {"p": project.id}
        )
        assert list(labels) == ["admin", "concepts"]
        issues = conn.execute(
            text(
                "SELECT i.sequence_id, s.sequence, i.created_by_id FROM issues i "
                "JOIN issue_sequences s ON s.issue_id = i.id WHERE i.project_id = :p ORDER BY i.sequence_id"
            ),
            {"p": project.id},
        ).all()
        assert [(i.sequence_id, i.sequence) for i in issues] == [(n, n) for n in range(1, 8)]
        assert {i.created_by_id for i in issues} == {bot.id}
        cycles = conn.execute(
            text("SELECT start_date, end_date, sort_order FROM cycles WHERE project_id = :p ORDER BY name"),
            {"p": project.id},
        ).all()
        assert cycles[1].start_date > cycles[0].end_date  # UPCOMING starts after CURRENT ends
        assert [c.sort_order for c in cycles] == [1, -9999]  # Cycle.save(): min - 10000


def test_two_seeds_at_once_seed_once(settings, engine):  # type: ignore[no-untyped-def]
    workspace_id = make_workspace(engine)
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def seed_it() -> None:
        barrier.wait()
        try:
            run_handler(settings, engine, workspace_id)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=seed_it) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert counts(engine, workspace_id) == SEEDED_COUNTS


def test_seed_items_and_api_items_share_plane_lock_and_numbering(settings, engine):  # type: ignore[no-untyped-def]
    """An API-style insert holding Plane's project lock makes the seed's item wait, then number after it."""
    workspace_id = make_workspace(engine)
    run_handler(settings, engine, workspace_id)
    project_id = project_of(engine, workspace_id)
    with engine.connect() as conn:
        state_id = conn.scalar(
            text("SELECT id FROM states WHERE project_id = :p AND name = 'Backlog'"), {"p": project_id}
        )
    locked = threading.Event()

    def api_insert() -> None:
        with engine.begin() as conn:
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": advisory_key(str(project_id))})
            seq = conn.scalar(
                text("SELECT coalesce(max(sequence), 0) + 1 FROM issue_sequences WHERE project_id = :p"),
                {"p": project_id},
            )
            issue = plane_rows.insert_one(
                conn,
                "issues",
                name="from the API",
                project_id=project_id,
                workspace_id=workspace_id,
                sequence_id=seq,
            )
            plane_rows.insert_one(
                conn,
                "issue_sequences",
                issue_id=issue,
                project_id=project_id,
                workspace_id=workspace_id,
                sequence=seq,
            )
            locked.set()
            time.sleep(1.0)  # the seed's item must wait out this commit

    api = threading.Thread(target=api_insert)
    api.start()
    assert locked.wait(30)
    started = time.monotonic()
    with Session(engine) as session, session.begin():
        row = {"name": "seeded late", "state_id": 1, "priority": "none", "project_id": 1, "sort_order": 1000}
        _issue(
            session,
            datetime.now(UTC),
            row,
            {1: project_id},
            {1: (state_id, "backlog")},
            {},
            {},
            {},
            None,
            {"workspace_id": workspace_id, "created_by_id": None},
        )
    waited = time.monotonic() - started
    api.join(timeout=30)
    assert waited >= 0.5
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT name, sequence_id FROM issues WHERE project_id = :p AND sequence_id > 7 "
                "ORDER BY sequence_id"
            ),
            {"p": project_id},
        ).all()
        sequences = list(
            conn.scalars(
                text("SELECT sequence FROM issue_sequences WHERE project_id = :p ORDER BY 1"),
                {"p": project_id},
            )
        )
    assert [tuple(r) for r in rows] == [("from the API", 8), ("seeded late", 9)]
    assert sequences == list(range(1, 10))


def project_of(engine: Engine, workspace_id: uuid.UUID) -> uuid.UUID:
    with engine.connect() as conn:
        return conn.scalar(text("SELECT id FROM projects WHERE workspace_id = :w"), {"w": workspace_id})


def test_missing_workspace_is_retried_then_dead_lettered(settings, engine):  # type: ignore[no-untyped-def]
    s = replace(spec(), retry_delays_s=(0.2, 0.2))
    producer = EventProducer(settings)
    missing = str(uuid.uuid4())
    with consumer_thread(s, settings):
        producer.send(s.topic, new_event(EVENT_TYPE, {"workspace_id": missing}), key=missing)
        wait_until(lambda: len(dead_letters(settings, s.topic)) >= 1, 60)
    (letter,) = dead_letters(settings, s.topic)
    assert letter["value"]["data"]["workspace_id"] == missing
    assert letter["headers"]["error-class"] == "services.workspace_seed.handler.WorkspaceNotFound"
    assert letter["headers"]["attempts"] == "3"  # the first try and both retry tiers
    assert processed(engine, s.name) == 0


def test_malformed_events_are_dead_lettered(settings, engine):  # type: ignore[no-untyped-def]
    s = spec()
    producer = EventProducer(settings)
    good = new_event(EVENT_TYPE, {"workspace_id": str(uuid.uuid4())}).to_dict()
    not_uuid = {**good, "id": str(uuid.uuid4()), "data": {"workspace_id": "acme"}}
    no_field = {**good, "id": str(uuid.uuid4()), "data": {}}
    for value in (json.dumps(not_uuid).encode(), json.dumps(no_field).encode(), b"\x00not json"):
        producer.send_raw(settings.topic(s.topic), value, key=b"k")
    with consumer_thread(s, settings):
        wait_until(lambda: len(dead_letters(settings, s.topic)) >= 3, 60)
    classes = sorted(d["headers"]["error-class"] for d in dead_letters(settings, s.topic))
    assert len(classes) == 3 and all(c.startswith("InvalidEvent.") for c in classes), classes
    assert processed(engine, s.name) == 0
