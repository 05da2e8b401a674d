"""The world the webhook tests share: a workspace with an owner and an issue on Plane's schema,
webhooks added on demand, and the tables the pipeline writes, read back."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace

import standardwebhooks
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from services.webhooks.payload import build_payload
from services.webhooks.signing import plane_signature, whsec
from shared.embedded.smtp import EmbeddedSMTP
from shared.events import new_event
from shared.events.producer import EventProducer
from shared.settings import Settings
from shared.testing import plane_factory as pf

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


def new_world(engine: Engine) -> World:
    with Session(engine, expire_on_commit=False) as session, session.begin():
        owner = pf.user(0)
        ws = pf.workspace(owner, slug=f"ws-{uuid.uuid4().hex[:8]}")
        proj = pf.project(ws)
        issue = pf.issue(proj, 1, name="Hooked")
        session.add_all([owner, ws, proj, issue])
    return World(owner.id, owner.email, ws.id, ws.slug, issue.id, engine)


def settings_for_hooks(settings: Settings, smtp: EmbeddedSMTP) -> Settings:
    return replace(
        settings,
        webhook_allowed_ips=("127.0.0.0/8",),  # the receivers are on loopback
        webhook_time_scale=SCALE,
        webhook_timeout_s=5.0,
        email_host="127.0.0.1",
        email_port=smtp.port,
        email_use_tls=False,
    )


def produce(settings: Settings, topic: str, events: list, key: str) -> None:
    producer = EventProducer(settings)
    producer.send_many(topic, [(key, e) for e in events])
    producer.close()


def verify(secret: str, request) -> dict:  # type: ignore[no-untyped-def]
    """The receiver's side: both signatures must check out over the bytes received."""
    assert request.headers["X-Plane-Signature"] == plane_signature(secret, request.body)
    headers = {k.lower(): v for k, v in request.headers.items()}
    return standardwebhooks.Webhook(whsec(secret)).verify(request.body, headers)


def deliveries_for(world: World, webhook_id: uuid.UUID, n: int) -> list:
    """Delivery events as webhook-events would emit them, for tests that skip the fan-out."""
    return [
        new_event(
            "plane.webhook_delivery.v1",
            {
                "webhook_id": str(webhook_id),
                "workspace_id": str(world.workspace_id),
                "event": "issue",
                "action": "update",
                "payload": build_payload(webhook_id, world.workspace_id, "issue", "PATCH", {"n": i}, None),
            },
        )
        for i in range(n)
    ]


def count(engine: Engine, table: str) -> int:
    with engine.connect() as conn:
        return conn.scalar(text(f"SELECT count(*) FROM {table}"))
