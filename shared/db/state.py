"""Our own state, in the `plane_workers` schema (Alembic-managed; Plane's tables are never altered)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Index, String, Text, func
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.base import StateBase


class ProcessedEvent(StateBase):
    """One row per (consumer, event id) whose effects are committed: the idempotency key."""

    __tablename__ = "processed_events"

    consumer: Mapped[str] = mapped_column(String(63), primary_key=True)
    event_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    processed_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )

    __table_args__ = (Index("processed_events_processed_at_idx", "processed_at"),)


class JobRun(StateBase):
    """One row per job run: what ran, when, with what result (the operator's audit trail)."""

    __tablename__ = "job_runs"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    job: Mapped[str] = mapped_column(String(63), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)  # running|success|failure|...
    dry_run: Mapped[bool] = mapped_column(nullable=False, default=False)
    scheduled_for: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    counts: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    host: Mapped[str | None] = mapped_column(String(255))

    __table_args__ = (Index("job_runs_job_started_idx", "job", "started_at"),)
