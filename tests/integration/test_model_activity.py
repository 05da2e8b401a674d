"""model-activity end to end on the embedded broker: Plane's model_activity rules, and the
activities it emits fanned out by webhook-events into deliveries."""

from __future__ import annotations

import json
import uuid

from sqlalchemy.orm import Session

from services.model_activity.handler import changes
from shared import registry
from shared.events import new_event
from shared.testing import plane_factory as pf
from shared.testing.topics import read_topic
from tests.helpers import consumer_thread, dead_letters, wait_until
from tests.integration.webhook_world import World, produce

MODEL_ACTIVITY = registry.consumer("model-activity")
WEBHOOK_EVENTS = registry.consumer("webhook-events")


def test_plane_rules_created_then_only_keys_both_sides_have_that_differ() -> None:
    created = {"verb": "created", "field": None, "old_value": None, "new_value": None}
    assert changes({"name": "x"}, None) == [created]
    current = {"name": "Old", "priority": "low", "label_ids": ["a", "b"], "start_date": None}
    requested = {"name": "Old", "priority": "high", "label_ids": ["b", "a"], "start_date": None, "new_key": 1}
    assert changes(requested, current) == [
        {"verb": "updated", "field": "priority", "old_value": "low", "new_value": "high"},
        # Plane compares with ==: a reordered list is a change.
        {"verb": "updated", "field": "label_ids", "old_value": ["a", "b"], "new_value": ["b", "a"]},
    ]
    assert changes(None, current) == [] and changes({}, {}) == []


def test_activities_reach_webhook_events_and_become_one_delivery_per_field(
    hook_settings, world: World
) -> None:
    """An issue update changing two fields, and a project create: three activities keyed by the
    workspace id, and webhook-events turns each into one delivery for the issue-flagged webhook.
    A malformed current_instance is dead-lettered, an unknown workspace emits nothing."""
    hook, _ = world.add_webhook("http://127.0.0.1:9/hook")
    with Session(world.engine, expire_on_commit=False) as session:
        project_id = session.get(pf.Issue, world.issue_id).project_id
    update = new_event(
        "plane.model_activity.v1",
        {
            "model_name": "issue",
            "model_id": str(world.issue_id),
            "requested_data": {"name": "Renamed", "priority": "urgent", "state_id": None},
            "current_instance": json.dumps({"name": "Hooked", "priority": "none", "state_id": None}),
            "actor_id": str(world.owner_id),
            "slug": world.slug,
            "origin": "https://plane.example",
        },
    )
    create = new_event(
        "plane.model_activity.v1",
        {"model_name": "project", "model_id": str(project_id), "requested_data": {}, "slug": world.slug},
    )
    broken = new_event(
        "plane.model_activity.v1",
        {"model_name": "issue", "model_id": str(world.issue_id), "slug": world.slug}
        | {"current_instance": "{not json"},
    )
    elsewhere = new_event(
        "plane.model_activity.v1",
        {"model_name": "issue", "model_id": str(uuid.uuid4()), "slug": "no-such-workspace"},
    )
    events = [update, create, broken, elsewhere]
    produce(hook_settings, "model-activity", events, str(world.issue_id))
    deliveries_topic = hook_settings.topic("webhook-deliveries")
    with consumer_thread(MODEL_ACTIVITY, hook_settings), consumer_thread(WEBHOOK_EVENTS, hook_settings):
        wait_until(lambda: len(read_topic(hook_settings, deliveries_topic)) >= 3, 60)
        wait_until(lambda: dead_letters(hook_settings, "model-activity"), 30)

    activity_topic = hook_settings.topic("webhook-events")
    activities = [json.loads(m.value()) for m in read_topic(hook_settings, activity_topic)]
    assert {m["data"]["workspace_id"] for m in activities} == {str(world.workspace_id)}
    assert sorted((a["data"]["event"], a["data"]["verb"], a["data"]["field"]) for a in activities) == [
        ("issue", "updated", "name"),
        ("issue", "updated", "priority"),
        ("project", "created", None),
    ]
    renamed = next(a["data"] for a in activities if a["data"]["field"] == "name")
    assert (renamed["old_value"], renamed["new_value"], renamed["current_site"]) == (
        "Hooked",
        "Renamed",
        "https://plane.example",
    )
    deliveries = [json.loads(m.value())["data"] for m in read_topic(hook_settings, deliveries_topic)]
    assert {d["webhook_id"] for d in deliveries} == {str(hook)}
    assert sorted((d["event"], d["payload"]["activity"]["field"]) for d in deliveries) == [
        ("issue", "name"),
        ("issue", "priority"),
        ("project", None),
    ]
    [letter] = dead_letters(hook_settings, "model-activity")
    assert letter["value"]["id"] == broken.id
    assert "current_instance is not JSON" in letter["headers"]["error-message"]
