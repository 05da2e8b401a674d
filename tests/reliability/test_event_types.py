"""A valid event of another consumer's type is dead-lettered at once, never sent through the
retry tiers: no handler of this consumer will ever take it."""

from __future__ import annotations

import uuid

import pytest

from shared import registry
from shared.events import new_event
from shared.events.producer import EventProducer
from shared.kafka import headers as h
from shared.settings import Settings
from tests.helpers import consumer_thread, dead_letters, idv_event, processed, seed, wait_until

ACTIVITY = new_event(
    "plane.webhook_activity.v1",
    {"event": "issue", "verb": "updated", "actor_id": None, "slug": "ws", "event_id": str(uuid.uuid4())},
)


@pytest.mark.parametrize("name", ["issue-description-versions", "webhook-deliveries"])
def test_an_event_of_another_consumers_type_is_dead_lettered_at_once(
    settings: Settings, engine, name: str
) -> None:
    spec = registry.consumer(name)
    (alice,), (issue,) = seed(engine, 1, n_users=1)
    other = ACTIVITY if name == "issue-description-versions" else idv_event(issue, alice, creating=True)
    producer = EventProducer(settings)
    producer.send(spec.topic, other, key="k")
    if name == "issue-description-versions":
        producer.send(spec.topic, idv_event(issue, alice, creating=True), key="k")
    with consumer_thread(spec, settings) as run:
        [letter] = wait_until(lambda: dead_letters(settings, spec.topic), 30)
        if name == "issue-description-versions":
            wait_until(lambda: processed(engine, spec.name) == 1, 30)
        assert not run.errors
    meta = letter["headers"]
    assert meta[h.ERROR_CLASS] == "InvalidEvent.unknown_type"
    assert meta[h.ATTEMPTS] == "1"
    assert meta[h.ORIGINAL_TOPIC] == settings.topic(spec.topic)  # from the main topic, not a tier
    assert other.type in meta[h.ERROR_MESSAGE]
    assert letter["value"]["id"] == other.id
