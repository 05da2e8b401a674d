"""Event-id claims for handlers registered with idempotency="handler" that still keep their effects
in PostgreSQL, but must not hold a transaction open across slow I/O (a crawl, an S3 copy).

The pattern: `processed()` in a first short transaction (a replay then does no I/O at all), the
I/O outside any transaction, then `claim()` in the transaction that writes the effects. Two
deliveries racing through the I/O both reach the claim; only the first commits its effects, so
the I/O must itself be safe to repeat (same keys, same results).
"""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from shared.db.state import ProcessedEvent


def processed(session: Session, consumer: str, event_id: str | uuid.UUID) -> bool:
    """True if an earlier delivery of the event committed its effects."""
    found = session.scalar(
        select(ProcessedEvent.event_id).where(
            ProcessedEvent.consumer == consumer, ProcessedEvent.event_id == uuid.UUID(str(event_id))
        )
    )
    return found is not None


def claim(session: Session, consumer: str, event_id: str | uuid.UUID) -> bool:
    """Claim the event in `session`'s transaction; False if another delivery already has."""
    claimed = session.execute(
        insert(ProcessedEvent)
        .values(consumer=consumer, event_id=uuid.UUID(str(event_id)))
        .on_conflict_do_nothing()
        .returning(ProcessedEvent.event_id)
    ).first()
    return claimed is not None
