"""Plane AI's own state, in the `plane_workers` schema (migration 0006).

The vectors live in the index (OpenSearch, or the pgvector adapter's own tables); these rows say
what was indexed from which source version and text, so that unchanged text is never embedded
again and a model change (another `model_name`) embeds everything again.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, DateTime, Index, String, Text, false, func, text
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.base import StateBase


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"


ACTIVE_JOB_STATUSES = (JobStatus.QUEUED, JobStatus.RUNNING)


class PlanSource(StrEnum):
    CLI = "cli"  # `plane-workers ai plan set`
    EVENT = "event"  # plane.workspace_plan.v1
    DEFAULT = "default"  # AI_DEFAULT_PLAN, for self-hosted instances


class VectorizationJob(StateBase):
    """One backfill of a workspace for one model (the seed's `vectorize_workspace`): queued, then
    running under a lease, then success or failed. `checkpoint` is the keyset position reached,
    committed as pages finish, so a run killed half-way resumes there once its lease expires."""

    __tablename__ = "vectorization_jobs"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    workspace_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    model_name: Mapped[str] = mapped_column(String(255), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default=JobStatus.QUEUED.value)
    # e.g. {"total": .., "embedded": .., "unchanged": .., "chunks": .., "vanished": ..}
    counts: Mapped[dict[str, Any]] = mapped_column(
        JSONB, nullable=False, default=dict, server_default=text("'{}'::jsonb")
    )
    checkpoint: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(nullable=False, default=0, server_default=text("0"))
    # Who runs it, and until when without a heartbeat (R15: another pod takes over after that).
    lease_owner: Mapped[str | None] = mapped_column(String(255))
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint(
            "status IN ('queued', 'running', 'success', 'failed')", name="vectorization_jobs_status_check"
        ),
        # At most one queued-or-running job per workspace and model: a second `ai vectorize`
        # finds the first instead of racing it.
        Index(
            "vectorization_jobs_one_active_idx",
            "workspace_id",
            "model_name",
            unique=True,
            postgresql_where=text("status IN ('queued', 'running')"),
        ),
        Index("vectorization_jobs_workspace_created_idx", "workspace_id", "created_at"),
    )


class WorkspaceAISettings(StateBase):
    """A workspace's Plane AI plan and whether live sync (plane.embed.v1 within seconds) is on.
    `plan_changed_at` is when the source decided it: an older plan event never overwrites."""

    __tablename__ = "workspace_ai_settings"

    workspace_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    plan: Mapped[str] = mapped_column(String(32), nullable=False)
    plan_source: Mapped[str] = mapped_column(String(16), nullable=False)
    plan_changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    live_sync_enabled: Mapped[bool] = mapped_column(nullable=False, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )

    __table_args__ = (
        CheckConstraint(
            "plan_source IN ('cli', 'event', 'default')", name="workspace_ai_settings_plan_source_check"
        ),
    )


class IndexedDocument(StateBase):
    """One entity as indexed with one model: the source version and content hash it was embedded
    from (Document.content_hash: text, place and chunking profile) and how many chunks it made.
    Keyed by model too, so a new model starts with nothing indexed and the old one's rows stay
    valid until its index is dropped."""

    __tablename__ = "indexed_documents"

    model_name: Mapped[str] = mapped_column(String(255), primary_key=True)
    entity_type: Mapped[str] = mapped_column(String(40), primary_key=True)  # issue | page | doc
    entity_id: Mapped[str] = mapped_column(String(1024), primary_key=True)  # a UUID, or a docs path
    workspace_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))  # None: global docs
    project_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    source_version: Mapped[int] = mapped_column(BigInteger, nullable=False)  # index.external_version
    content_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    chunk_count: Mapped[int] = mapped_column(nullable=False)
    indexed_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )

    __table_args__ = (
        CheckConstraint("source_version >= 0", name="indexed_documents_version_check"),
        Index("indexed_documents_workspace_idx", "model_name", "workspace_id", "entity_type"),
    )


class LiveSyncProduced(StateBase):
    """What ai-reconcile produced for one document (migration 0007): the version it asked the
    embeddings consumer for, how often, and when last. Until `AI_LIVE_SYNC_RETRY_DELAY_S` has
    passed the document is awaited, not produced again; after `AI_LIVE_SYNC_MAX_RETRIES` the
    workspace is re-fed instead. Rows go once the document is indexed at that version or newer."""

    __tablename__ = "live_sync_produced"

    model_name: Mapped[str] = mapped_column(String(255), primary_key=True)
    entity_type: Mapped[str] = mapped_column(String(40), primary_key=True)
    entity_id: Mapped[str] = mapped_column(String(1024), primary_key=True)
    workspace_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    version: Mapped[int] = mapped_column(BigInteger, nullable=False)  # index.external_version
    attempts: Mapped[int] = mapped_column(nullable=False)
    produced_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)

    __table_args__ = (Index("live_sync_produced_workspace_idx", "model_name", "workspace_id"),)


class DocsSyncState(StateBase):
    """One documentation source of ai-docs-sync (migration 0007): the last commit whose files are
    in the index (None: the next run feeds everything), and why the last run stopped short."""

    __tablename__ = "docs_sync_state"

    source: Mapped[str] = mapped_column(String(512), primary_key=True)  # owner/repo@branch:prefix
    last_sha: Mapped[str | None] = mapped_column(String(64))
    files: Mapped[int] = mapped_column(nullable=False, default=0, server_default=text("0"))
    last_error: Mapped[str | None] = mapped_column(Text)
    # A rate limit's reset: no request to the API before it.
    retry_after: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    synced_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
