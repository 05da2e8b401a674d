"""issue-activity as a consumer on the embedded broker: a batch written, handed on to
notifications and embeddings, the origin kept, a malformed event dead-lettered alone. The rows
themselves, type by type, are checked in test_issue_activity_rows.py."""

from __future__ import annotations

import json
import uuid

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from shared import registry
from shared.events import new_event
from shared.settings import Settings
from shared.testing import plane_factory as pf
from shared.testing.topics import read_topic
from tests.helpers import consumer_thread, dead_letters, wait_until
from tests.integration.webhook_world import produce

ISSUE_ACTIVITY = registry.consumer("issue-activity")


def _update(issue: pf.Issue, actor: pf.User, field: str, old: object, new: object, **extra: object):  # type: ignore[no-untyped-def]
    data = {
        "type": "issue.activity.updated",
        "requested_data": json.dumps({field: new}),
        "current_instance": json.dumps({field: old}),
        "issue_id": str(issue.id),
        "actor_id": str(actor.id),
        "project_id": str(issue.project_id),
        "epoch": 1764547200,
    } | extra
    return new_event("plane.issue_activity.v1", data)


def test_a_batch_is_written_and_handed_on(settings: Settings, engine: Engine) -> None:
    with Session(engine, expire_on_commit=False) as session, session.begin():
        actor = pf.user(0)
        ws = pf.workspace(actor, slug=f"ws-{uuid.uuid4().hex[:8]}")
        project = pf.project(ws)
        issues = [pf.issue(project, n + 1, name=f"Issue {n}") for n in range(3)]
        session.add_all([actor, ws, project, *issues])
    renamed = _update(
        issues[0],
        actor,
        "name",
        "Issue 0",
        "Renamed",
        notification=True,
        origin="https://app.plane.example/p?x=1",
    )
    prioritised = [
        _update(issues[n % 3], actor, "priority", "none", "high", notification=False) for n in range(30)
    ]
    malformed = _update(issues[1], actor, "name", "x", "y")
    malformed = new_event("plane.issue_activity.v1", malformed.data | {"requested_data": "{not json"})
    deleted = new_event(
        "plane.issue_activity.v1",
        {
            "type": "issue.activity.deleted",
            "requested_data": json.dumps({"issue_id": str(issues[2].id)}),
            "current_instance": None,
            "issue_id": str(issues[2].id),
            "actor_id": str(actor.id),
            "project_id": str(project.id),
            "epoch": 1764547300,
        },
    )
    events = [renamed, *prioritised[:15], malformed, *prioritised[15:], deleted]
    for event in events:
        produce(settings, "issue-activity", [event], event.data["issue_id"])

    with consumer_thread(ISSUE_ACTIVITY, settings):
        wait_until(lambda: _count(engine, project.id) >= 32, 60)
        wait_until(lambda: dead_letters(settings, "issue-activity"), 30)

    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT id, issue_id, field, verb FROM issue_activities WHERE project_id = :p"),
            {"p": project.id},
        ).all()
        origin = conn.execute(
            text("SELECT origin FROM plane_workers.issue_origins WHERE issue_id = :i"), {"i": issues[0].id}
        ).scalar()
        touched = conn.execute(
            text("SELECT created_by_id FROM issues WHERE id = :i"), {"i": issues[0].id}
        ).scalar()
    assert len(rows) == 32 and sum(r.field == "priority" for r in rows) == 30
    assert origin == "https://app.plane.example"  # scheme and host only: what mail links need
    assert touched == actor.id  # the authors are left alone (Plane's bug 8)

    [letter] = dead_letters(settings, "issue-activity")
    assert letter["value"]["id"] == malformed.id

    [notice] = [json.loads(m.value()) for m in read_topic(settings, settings.topic("notifications"))]
    assert notice["type"] == "plane.notifications.v1" and notice["data"]["issue_id"] == str(issues[0].id)
    [activity] = notice["data"]["issue_activities_created"]
    name_row = next(r for r in rows if r.field == "name")
    assert (activity["id"], activity["field"], activity["new_value"]) == (str(name_row.id), "name", "Renamed")

    embeds = [json.loads(m.value())["data"] for m in read_topic(settings, settings.topic("embeddings"))]
    assert sorted((e["action"], e["entity_id"]) for e in embeds) == sorted(
        [("upsert", str(issues[0].id)), ("delete", str(issues[2].id))]
    )


def _count(engine: Engine, project_id: uuid.UUID) -> int:
    with engine.connect() as conn:
        return conn.execute(
            text("SELECT count(*) FROM issue_activities WHERE project_id = :p"), {"p": project_id}
        ).scalar()
