"""`plane-workers webhooks replay`: send again what a webhook did not receive.

Deliveries that ended without reaching the receiver (skipped while the webhook was off, retries
exhausted, 410, blocked) keep their original message in `plane_workers.webhook_deliveries`. A
replay re-publishes those messages unchanged, so each arrives with its original `webhook-id`, and
marks them so the delivery consumer sends them although they are already terminal. A replayed
delivery that succeeds is never replayed again; replaying twice before it finishes can send twice
(same `webhook-id`, so the receiver can tell).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Engine, text

from services.webhooks.pipeline import REPLAY_HEADER
from shared.events.producer import EventProducer
from shared.settings import Settings

TOPIC = "webhook-deliveries"

_MISSED = text(
    """
    SELECT envelope FROM plane_workers.webhook_deliveries
    WHERE webhook_id = :webhook_id AND event_time >= :since AND status <> 'succeeded'
      AND envelope IS NOT NULL
    ORDER BY event_time, delivery_id
    """
)


def replay(
    settings: Settings, engine: Engine, webhook_id: uuid.UUID, since: datetime, dry_run: bool = False
) -> int:
    with engine.connect() as conn:
        envelopes = list(conn.execute(_MISSED, {"webhook_id": webhook_id, "since": since}).scalars())
    if dry_run or not envelopes:
        return len(envelopes)
    producer = EventProducer(settings)
    try:
        producer.send_raw_many(
            settings.topic(TOPIC),
            [(str(webhook_id).encode(), bytes(e), [(REPLAY_HEADER, b"1")]) for e in envelopes],
        )
    finally:
        producer.close()
    return len(envelopes)
