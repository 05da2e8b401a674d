"""Webhooks end to end: webhook-events fans out, webhook-deliveries POSTs to real loopback
receivers, on the embedded broker and Plane's schema. Delays run at WEBHOOK_TIME_SCALE."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace

import pytest
import standardwebhooks
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from services.webhooks.signing import plane_signature, whsec
from shared import registry
from shared.embedded.smtp import EmbeddedSMTP
from shared.events import new_event
from shared.events.producer import EventProducer
from shared.settings import Settings
from shared.testing import plane_factory as pf
from tests.helpers import consumer_thread, wait_until
from tests.integration.http_servers import HttpServer

EVENTS = registry.consumer("webhook-events")
DELIVERIES = registry.consumer("webhook-deliveries")
SCALE = 1e-4  # 10 h -> 3.6 s


@dataclass
class World:
    owner_id: uuid.UUID
    owner_email: str
    workspace_id: uuid.UUID
    slug: str
    issue_id: uuid.UUID
    engine: Engine

    def add_webhook(self, url: str, **values: object) -> tuple[uuid.UUID, str]:
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            ws = session.get(pf.Workspace, self.workspace_id)
            hook = pf.webhook(ws, url, **values)
            session.add(hook)
        return hook.id, hook.secret_key

    def webhook(self, webhook_id: uuid.UUID) -> dict:
        with self.engine.connect() as conn:
            row = (
                conn.execute(text("SELECT * FROM webhooks WHERE id = :id"), {"id": webhook_id})
                .mappings()
                .one()
            )
        return dict(row)

    def logs(self, webhook_id: uuid.UUID) -> list[dict]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                text("SELECT * FROM webhook_logs WHERE webhook = :id ORDER BY created_at"), {"id": webhook_id}
            )
            return [dict(r) for r in rows.mappings()]

    def deliveries(self, webhook_id: uuid.UUID) -> list[dict]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                text("SELECT * FROM plane_workers.webhook_deliveries WHERE webhook_id = :id"),
                {"id": webhook_id},
            )
            return [dict(r) for r in rows.mappings()]


@pytest.fixture
def world(engine: Engine) -> World:
    with Session(engine, expire_on_commit=False) as session, session.begin():
        owner = pf.user(0)
        ws = pf.workspace(owner, slug=f"ws-{uuid.uuid4().hex[:8]}")
        proj = pf.project(ws)
        issue = pf.issue(proj, 1, name="Hooked")
        session.add_all([owner, ws, proj, issue])
    return World(owner.id, owner.email, ws.id, ws.slug, issue.id, engine)


@pytest.fixture
def smtp() -> Iterator[EmbeddedSMTP]:
    server = EmbeddedSMTP()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def hook_settings(settings: Settings, smtp: EmbeddedSMTP) -> Settings:
    return replace(
        settings,
        webhook_allowed_ips=("127.0.0.0/8",),  # the receivers are on loopback
        webhook_time_scale=SCALE,
        webhook_timeout_s=5.0,
        email_host="127.0.0.1",
        email_port=smtp.port,
        email_use_tls=False,
    )


def activity(world: World, n: int = 1, **data: object) -> list:
    base = {
        "event": "issue",
        "verb": "updated",
        "field": "name",
        "old_value": "Old",
        "new_value": "Hooked",
        "actor_id": str(world.owner_id),
        "slug": world.slug,
        "current_site": "http://plane.test",
        "event_id": str(world.issue_id),
    }
    return [new_event("plane.webhook_activity.v1", base | data) for _ in range(n)]


def produce(settings: Settings, topic: str, events: list, key: str) -> None:
    producer = EventProducer(settings)
    producer.send_many(topic, [(key, e) for e in events])
    producer.close()


def verify(secret: str, request) -> dict:  # type: ignore[no-untyped-def]
    """The receiver's side: both signatures must check out over the bytes received."""
    assert request.headers["X-Plane-Signature"] == plane_signature(secret, request.body)
    headers = {k.lower(): v for k, v in request.headers.items()}
    return standardwebhooks.Webhook(whsec(secret)).verify(request.body, headers)


def test_fan_out_and_delivery_carry_plane_payload_and_verifiable_signatures(hook_settings, world) -> None:
    receiver = HttpServer()
    hook_a, secret_a = world.add_webhook(receiver.url("/a"))
    hook_b, secret_b = world.add_webhook(receiver.url("/b"))
    not_issues, _ = world.add_webhook(receiver.url("/no-issues"), issue=False)
    produce(hook_settings, "webhook-events", activity(world), str(world.workspace_id))
    with consumer_thread(EVENTS, hook_settings), consumer_thread(DELIVERIES, hook_settings):
        wait_until(lambda: len(world.deliveries(hook_a)) + len(world.deliveries(hook_b)) == 2, 60)
    receiver.close()

    by_path = {r.path: r for r in receiver.requests}
    assert set(by_path) == {"/a", "/b"}, "the webhook without the issue flag got nothing"
    for path, secret, hook in (("/a", secret_a, hook_a), ("/b", secret_b, hook_b)):
        request = by_path[path]
        payload = verify(secret, request)
        assert list(payload) == ["event", "action", "webhook_id", "workspace_id", "data", "activity"]
        assert payload["webhook_id"] == str(hook) and payload["data"]["id"] == str(world.issue_id)
        assert payload["activity"]["actor"]["id"] == str(world.owner_id)
        assert request.headers["X-Plane-Delivery"] == request.headers["webhook-id"]
        assert request.headers["X-Plane-Event"] == "issue" and request.headers["User-Agent"] == "Autopilot"
        [log] = world.logs(hook)
        stored = json.loads(log["request_headers"])  # JSON, not Python repr
        assert "X-Plane-Signature" not in stored and "webhook-signature" not in stored
        assert secret not in log["request_headers"] + log["request_body"]
        assert json.loads(log["request_body"]) == payload and log["response_status"] == "200"
        assert log["retry_count"] == 0
        [delivery] = world.deliveries(hook)
        assert delivery["status"] == "succeeded" and delivery["envelope"] is None
    assert world.deliveries(not_issues) == []
