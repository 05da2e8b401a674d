"""Our own state, in the `plane_workers` schema (Alembic-managed; Plane's tables are never altered)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Identity,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    false,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
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


class WebhookDelivery(StateBase):
    """How a delivery ended. Written once it is terminal; the payload is kept only when it was not
    delivered (skipped, exhausted, gone, blocked), so `webhooks replay` can send it again."""

    __tablename__ = "webhook_deliveries"

    delivery_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    webhook_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    attempts: Mapped[int] = mapped_column(nullable=False)
    event_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    finished_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    envelope: Mapped[bytes | None] = mapped_column(LargeBinary)

    __table_args__ = (
        Index("webhook_deliveries_webhook_time_idx", "webhook_id", "event_time"),
        Index("webhook_deliveries_finished_at_idx", "finished_at"),
    )


class WebhookEndpoint(StateBase):
    """Per-webhook health and signing state that Plane's `webhooks` table has no room for."""

    __tablename__ = "webhook_endpoints"

    webhook_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    # Start of the current run of failures; cleared by any success (Svix's first_failure_at).
    first_failure_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_success_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    disabled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    # The secret last seen in webhooks.secret_key, and the ones it replaced ([{secret, retired_at}]),
    # which keep signing for WEBHOOK_KEY_GRACE_S so receivers can roll over.
    current_secret: Mapped[str | None] = mapped_column(String(255))
    retired_keys: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, nullable=False, default=list)


class WebhookAttempt(StateBase):
    """An attempt about to be sent. Written (group-committed) just before the request goes out;
    the delivery's rows are deleted in the transaction that records its outcome. One left behind
    is an attempt a killed worker made without recording it: whoever reads the delivery again
    logs it as interrupted (`logged`) and numbers its own attempt after it. The row stays until
    the delivery is recorded, so a worker killed again in between still numbers after it."""

    __tablename__ = "webhook_attempts"

    delivery_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    attempt: Mapped[int] = mapped_column(primary_key=True)  # 1-based, as retry_count + 1
    webhook_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    started_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    logged: Mapped[bool] = mapped_column(nullable=False, server_default=false())


class IssueOrigin(StateBase):
    """The web origin (scheme://host) of the request behind an issue's last activity: the e-mail
    digest builds its links from it. Plane keeps it 600 s in Redis and then loses the mail; this
    row stays until the issue is purged (WEB_URL is the fallback where there is none)."""

    __tablename__ = "issue_origins"

    issue_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    origin: Mapped[str] = mapped_column(String(2048), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )


class EmailDigest(StateBase):
    """One issue-updates mail of the email-digest job, recorded before it is sent: `key` (sha256 of
    receiver, issue and the sorted log ids) and `message_id` are deterministic, `log_ids` are the
    logs the mail holds. 'sending' until those logs are marked in the transaction that sets 'sent';
    one left 'sending' by a dead run is taken as sent ('presumed_sent', see cronjobs.email_digest)."""

    __tablename__ = "email_digests"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    receiver_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    issue_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    log_ids: Mapped[list[uuid.UUID]] = mapped_column(ARRAY(UUID(as_uuid=True)), nullable=False)
    message_id: Mapped[str] = mapped_column(String(255), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)  # sending|sent|presumed_sent
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        # The recovery lookup: a pair's intents still 'sending'.
        Index(
            "email_digests_sending_idx",
            "receiver_id",
            "issue_id",
            postgresql_where=text("status = 'sending'"),
        ),
        Index("email_digests_created_at_idx", "created_at"),
    )


class SoftDeleteSubtree(StateBase):
    """One soft-delete cascade in progress (services/soft_deletes/cascade.py): its root, the stamp
    it gives the subtree, where collecting stands (`layer` and `cursor`), then `marking`. A root
    found restored or stamped anew has its row `discarded` (its rows are pruned)."""

    __tablename__ = "soft_delete_subtrees"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    root_table: Mapped[str] = mapped_column(String(63), nullable=False)
    root_id: Mapped[str] = mapped_column(String(64), nullable=False)
    stamp: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    phase: Mapped[str] = mapped_column(String(16), nullable=False)  # collecting|marking|discarded
    layer: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    cursor: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )

    __table_args__ = (
        CheckConstraint(
            "phase IN ('collecting', 'marking', 'discarded')", name="soft_delete_subtrees_phase_check"
        ),
        Index(
            "soft_delete_subtrees_one_per_root_idx",
            "root_table",
            "root_id",
            unique=True,
            postgresql_where=text("phase <> 'discarded'"),
        ),
        Index("soft_delete_subtrees_updated_at_idx", "updated_at"),
    )


class SoftDeleteSubtreeRow(StateBase):
    """A row of Plane's in a collected subtree, by table and key (text), at its layer (0: the
    root); layer -1: marked, its embed delete (`extra`: the event's columns) not yet sent."""

    __tablename__ = "soft_delete_subtree_rows"

    subtree_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    tbl: Mapped[str] = mapped_column(String(63, collation="C"), primary_key=True)
    id: Mapped[str] = mapped_column(String(64, collation="C"), primary_key=True)
    layer: Mapped[int] = mapped_column(Integer, nullable=False)
    extra: Mapped[dict[str, Any] | None] = mapped_column(JSONB)

    __table_args__ = (Index("soft_delete_subtree_rows_layer_idx", "subtree_id", "layer", "tbl", "id"),)
