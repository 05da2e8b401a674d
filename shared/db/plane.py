"""SQLAlchemy models of Plane's own tables, column for column.

These mirror the schema that Plane's Django migrations build (makeplane/plane at 4ca6d6c, dumped
in `../shared/plane-schema/plane_schema.sql`): the same table and column names, types, nullability,
primary keys, unique and check constraints (with Plane's names), the soft-delete-aware partial
unique indexes, and the foreign keys between the tables modelled here. Like Django's, every foreign
key is `DEFERRABLE INITIALLY DEFERRED` with no `ON DELETE` action. `tests/compat` checks each model
against the real dump, so `PlaneBase.metadata.create_all()` builds a faithful subset of Plane's
schema when the dump is absent.

What the models deliberately leave out:

- Defaults. No Plane column has a database default (Django fills them in Python), so a writer must
  supply `id`, `created_at`, `updated_at` and every NOT NULL column. `PlaneModel.new()` and
  `plane_row_defaults()` supply the first three; the rest are the caller's business.
- `updated_at` on update (Django's `auto_now`): set it yourself when you change a row.
- Soft-delete filtering: add `Model.deleted_at.is_(None)` wherever Plane's default manager would.
- Relationships: join on the FK columns. FKs to tables not modelled here (`estimates`,
  `estimate_points`, `issue_types`, `draft_issues`, `descriptions`) are plain uuid columns.
- Plane's non-unique indexes (Django's `*_idx` / `*_like` ones). A real Plane database has them.

Schema oddities worth knowing (Plane's, faithfully copied):

- `projects.description_text/description_html` and `modules.description_text/description_html` are
  `jsonb`, not text; `projects.description` and `modules.description` are the text ones.
- `issues.archived_at` and `pages.archived_at` are `date`; every other `archived_at` is timestamptz.
  `cycles.start_date/end_date` are timestamptz; issue and module dates are `date`.
- `webhook_logs.webhook` is a plain uuid (no FK) and `webhook_logs.response_status` is text.
- `exporters.project` is a `uuid[]`; `issue_activities.attachments` and `issue_comments.attachments`
  are NOT NULL `varchar(200)[]` (pass `[]`).
- Uniqueness is declared twice: a plain `UNIQUE (..., deleted_at)`, which never fires for live rows
  (NULLs are distinct), and a partial unique index `... WHERE deleted_at IS NULL`, which does. An
  upsert must name the latter: `ON CONFLICT (issue_id, assignee_id) WHERE deleted_at IS NULL`.
  `issue_labels` has no uniqueness at all.
- `api_activity_logs` has no workspace and stores `ip_address` as `inet`.
- Check constraints `>= 0` guard `projects.network`, `pages.access`, the member `role`s,
  `webhook_logs.retry_count` and `api_activity_logs.response_code`.
- `file_assets` has both `is_deleted` and `deleted_at`; its `workspace_id` is nullable.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any, Self

from sqlalchemy import (
    ARRAY,
    CheckConstraint,
    DateTime,
    Double,
    ForeignKey,
    Index,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import INET, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.base import PlaneBase

TIMESTAMPTZ = DateTime(timezone=True)


def plane_row_defaults(now: datetime | None = None) -> dict[str, Any]:
    """The values Django would fill in for any Plane row: a new uuid4 `id` and the timestamps."""
    if now is None:
        now = datetime.now(UTC)
    elif now.tzinfo is None:
        raise ValueError("Plane stores timestamptz: pass an aware datetime")
    return {"id": uuid.uuid4(), "created_at": now, "updated_at": now}


def _fk(target: str, *, name: str | None = None, use_alter: bool = False) -> ForeignKey:
    """A foreign key as Django makes it: deferred to commit, no ON DELETE action.

    `name` + `use_alter` are set on the few keys that close a cycle between tables (for example
    users.avatar_asset_id -> file_assets -> users), so create_all/drop_all can add and drop them
    with ALTER TABLE.
    """
    return ForeignKey(target, name=name, use_alter=use_alter, deferrable=True, initially="DEFERRED")


def _partial_unique(name: str, *columns: str, where: str) -> Index:
    """A unique index restricted by `where`: Plane's "unique among rows not soft-deleted"."""
    return Index(name, *columns, unique=True, postgresql_where=text(where))


class PlaneModel(PlaneBase):
    """Base of the models below; adds the `new()` constructor that fills Plane's Python defaults."""

    __abstract__ = True

    @classmethod
    def new(cls, *, now: datetime | None = None, **values: Any) -> Self:
        """Build a row with `plane_row_defaults(now)` under `values` (which win on conflict)."""
        return cls(**{**plane_row_defaults(now), **values})


# --- Instance ------------------------------------------------------------------------------------


class Instance(PlaneModel):
    """license.Instance: this Plane installation (one row)."""

    __tablename__ = "instances"
    __table_args__ = (
        PrimaryKeyConstraint("id", name="instances_pkey"),
        UniqueConstraint("instance_id", name="instances_instance_id_key"),
    )

    created_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ)
    updated_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    instance_name: Mapped[str] = mapped_column(String(255))
    whitelist_emails: Mapped[str | None] = mapped_column(Text)
    instance_id: Mapped[str] = mapped_column(String(255))
    current_version: Mapped[str] = mapped_column(String(255))
    last_checked_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ)
    namespace: Mapped[str | None] = mapped_column(String(255))
    is_telemetry_enabled: Mapped[bool]
    is_support_required: Mapped[bool]
    is_setup_done: Mapped[bool]
    is_signup_screen_visited: Mapped[bool]
    is_verified: Mapped[bool]
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(_fk("users.id"))
    updated_by_id: Mapped[uuid.UUID | None] = mapped_column(_fk("users.id"))
    domain: Mapped[str] = mapped_column(Text)
    latest_version: Mapped[str | None] = mapped_column(String(255))
    edition: Mapped[str] = mapped_column(String(255))
    deleted_at: Mapped[datetime | None] = mapped_column(TIMESTAMPTZ)
    is_test: Mapped[bool]
    is_current_version_deprecated: Mapped[bool]


# --- Users and workspaces ------------------------------------------------------------------------


class User(PlaneModel):
    """db.User: a person (or bot) with a Plane account."""

    __tablename__ = "users"
    __table_args__ = (
        PrimaryKeyConstraint("id", name="user_pkey"),
        UniqueConstraint("email", name="user_email_key"),
        UniqueConstraint("username", name="user_username_key"),
    )

    password: Mapped[str] = mapped_column(String(128))
    last_login: Mapped[datetime | None] = mapped_column(TIMESTAMPTZ)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(128))
    mobile_number: Mapped[str | None] = mapped_column(String(255))
    email: Mapped[str | None] = mapped_column(String(255))
    first_name: Mapped[str] = mapped_column(String(255))
    last_name: Mapped[str] = mapped_column(String(255))
    avatar: Mapped[str] = mapped_column(Text)
    date_joined: Mapped[datetime] = mapped_column(TIMESTAMPTZ)
    created_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ)
    updated_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ)
    last_location: Mapped[str] = mapped_column(String(255))
    created_location: Mapped[str] = mapped_column(String(255))
    is_superuser: Mapped[bool]
    is_managed: Mapped[bool]
    is_password_expired: Mapped[bool]
    is_active: Mapped[bool]
    is_staff: Mapped[bool]
    is_email_verified: Mapped[bool]
    is_password_autoset: Mapped[bool]
    token: Mapped[str] = mapped_column(String(64))
    user_timezone: Mapped[str] = mapped_column(String(255))
    last_active: Mapped[datetime | None] = mapped_column(TIMESTAMPTZ)
    last_login_time: Mapped[datetime | None] = mapped_column(TIMESTAMPTZ)
    last_logout_time: Mapped[datetime | None] = mapped_column(TIMESTAMPTZ)
    last_login_ip: Mapped[str] = mapped_column(String(255))
    last_logout_ip: Mapped[str] = mapped_column(String(255))
    last_login_medium: Mapped[str] = mapped_column(String(20))
    last_login_uagent: Mapped[str] = mapped_column(Text)
    token_updated_at: Mapped[datetime | None] = mapped_column(TIMESTAMPTZ)
    is_bot: Mapped[bool]
    cover_image: Mapped[str | None] = mapped_column(String(800))
    display_name: Mapped[str] = mapped_column(String(255))
    avatar_asset_id: Mapped[uuid.UUID | None] = mapped_column(
        _fk(
            "file_assets.id",
            name="users_avatar_asset_id_50fa2043_fk_file_assets_id",
            use_alter=True,
        )
    )
    cover_image_asset_id: Mapped[uuid.UUID | None] = mapped_column(
        _fk(
            "file_assets.id",
            name="users_cover_image_asset_id_b9679cbc_fk_file_assets_id",
            use_alter=True,
        )
    )
    bot_type: Mapped[str | None] = mapped_column(String(30))
    is_email_valid: Mapped[bool]
    masked_at: Mapped[datetime | None] = mapped_column(TIMESTAMPTZ)
    is_password_reset_required: Mapped[bool]


class Workspace(PlaneModel):
    """db.Workspace: the top-level tenant, addressed by `slug`."""

    __tablename__ = "workspaces"
    __table_args__ = (
        PrimaryKeyConstraint("id", name="workspace_pkey"),
        UniqueConstraint("slug", name="workspace_slug_key"),
    )

    created_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ)
    updated_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80))
    logo: Mapped[str | None] = mapped_column(Text)
    slug: Mapped[str] = mapped_column(String(48))
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(_fk("users.id"))
    owner_id: Mapped[uuid.UUID] = mapped_column(_fk("users.id"))
    updated_by_id: Mapped[uuid.UUID | None] = mapped_column(_fk("users.id"))
    organization_size: Mapped[str | None] = mapped_column(String(20))
    deleted_at: Mapped[datetime | None] = mapped_column(TIMESTAMPTZ)
    logo_asset_id: Mapped[uuid.UUID | None] = mapped_column(
        _fk(
            "file_assets.id",
            name="workspaces_logo_asset_id_a784bb00_fk_file_assets_id",
            use_alter=True,
        )
    )
    timezone: Mapped[str] = mapped_column(String(255))
    background_color: Mapped[str] = mapped_column(String(255))


class WorkspaceMember(PlaneModel):
    """db.WorkspaceMember: a user's membership and role in a workspace."""

    __tablename__ = "workspace_members"
    __table_args__ = (
        PrimaryKeyConstraint("id", name="workspace_member_pkey"),
        UniqueConstraint(
            "workspace_id",
            "member_id",
            "deleted_at",
            name="workspace_members_workspace_id_member_id_d_d7bfa872_uniq",
        ),
        _partial_unique(
            "workspace_member_unique_workspace_member_when_deleted_at_null",
            "workspace_id",
            "member_id",
            where="deleted_at IS NULL",
        ),
        CheckConstraint("role >= 0", name="workspace_member_role_check"),
    )

    created_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ)
    updated_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    role: Mapped[int] = mapped_column(SmallInteger)
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(_fk("users.id"))
    member_id: Mapped[uuid.UUID] = mapped_column(_fk("users.id"))
    updated_by_id: Mapped[uuid.UUID | None] = mapped_column(_fk("users.id"))
    workspace_id: Mapped[uuid.UUID] = mapped_column(_fk("workspaces.id"))
    company_role: Mapped[str | None] = mapped_column(Text)
    view_props: Mapped[Any] = mapped_column(JSONB)
    default_props: Mapped[Any] = mapped_column(JSONB)
    issue_props: Mapped[Any] = mapped_column(JSONB)
    is_active: Mapped[bool]
    deleted_at: Mapped[datetime | None] = mapped_column(TIMESTAMPTZ)
    explored_features: Mapped[Any] = mapped_column(JSONB)
    getting_started_checklist: Mapped[Any] = mapped_column(JSONB)
    tips: Mapped[Any] = mapped_column(JSONB)


# --- Projects ------------------------------------------------------------------------------------


class Project(PlaneModel):
    """db.Project: a project inside a workspace, with its `identifier` (e.g. `WEB`)."""

    __tablename__ = "projects"
    __table_args__ = (
        PrimaryKeyConstraint("id", name="project_pkey"),
        UniqueConstraint(
            "identifier",
            "workspace_id",
            "deleted_at",
            name="projects_identifier_workspace_id_deleted_at_7d2fa8c1_uniq",
        ),
        UniqueConstraint(
            "name",
            "workspace_id",
            "deleted_at",
            name="projects_name_workspace_id_deleted_at_c7aa56f7_uniq",
        ),
        _partial_unique(
            "project_unique_identifier_workspace_when_deleted_at_null",
            "identifier",
            "workspace_id",
            where="deleted_at IS NULL",
        ),
        _partial_unique(
            "project_unique_name_workspace_when_deleted_at_null",
            "name",
            "workspace_id",
            where="deleted_at IS NULL",
        ),
        CheckConstraint("network >= 0", name="project_network_check"),
    )

    created_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ)
    updated_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str] = mapped_column(Text)
    description_text: Mapped[Any | None] = mapped_column(JSONB)  # jsonb, not text
    description_html: Mapped[Any | None] = mapped_column(JSONB)  # jsonb, not text
    network: Mapped[int] = mapped_column(SmallInteger)
    identifier: Mapped[str] = mapped_column(String(12))
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(_fk("users.id"))
    default_assignee_id: Mapped[uuid.UUID | None] = mapped_column(_fk("users.id"))
    project_lead_id: Mapped[uuid.UUID | None] = mapped_column(_fk("users.id"))
    updated_by_id: Mapped[uuid.UUID | None] = mapped_column(_fk("users.id"))
    workspace_id: Mapped[uuid.UUID] = mapped_column(_fk("workspaces.id"))
    emoji: Mapped[str | None] = mapped_column(String(255))
    cycle_view: Mapped[bool]
    module_view: Mapped[bool]
    cover_image: Mapped[str | None] = mapped_column(Text)
    issue_views_view: Mapped[bool]
    page_view: Mapped[bool]
    estimate_id: Mapped[uuid.UUID | None]  # FK to estimates (not modelled)
    icon_prop: Mapped[Any | None] = mapped_column(JSONB)
    intake_view: Mapped[bool]
    archive_in: Mapped[int]
    close_in: Mapped[int]
    default_state_id: Mapped[uuid.UUID | None] = mapped_column(
        _fk("states.id", name="projects_default_state_id_f13e8b95_fk_states_id", use_alter=True)
    )
    logo_props: Mapped[Any] = mapped_column(JSONB)
    archived_at: Mapped[datetime | None] = mapped_column(TIMESTAMPTZ)
    is_time_tracking_enabled: Mapped[bool]
    is_issue_type_enabled: Mapped[bool]
    deleted_at: Mapped[datetime | None] = mapped_column(TIMESTAMPTZ)
    guest_view_all_features: Mapped[bool]
    timezone: Mapped[str] = mapped_column(String(255))
    cover_image_asset_id: Mapped[uuid.UUID | None] = mapped_column(
        _fk(
            "file_assets.id",
            name="projects_cover_image_asset_id_e6636b92_fk_file_assets_id",
            use_alter=True,
        )
    )
    external_id: Mapped[str | None] = mapped_column(String(255))
    external_source: Mapped[str | None] = mapped_column(String(255))


class ProjectMember(PlaneModel):
    """db.ProjectMember: a user's membership and role in a project."""

    __tablename__ = "project_members"
    __table_args__ = (
        PrimaryKeyConstraint("id", name="project_member_pkey"),
        UniqueConstraint(
            "project_id",
            "member_id",
            "deleted_at",
            name="project_members_project_id_member_id_deleted_at_0299122d_uniq",
        ),
        _partial_unique(
            "project_member_unique_project_member_when_deleted_at_null",
            "project_id",
            "member_id",
            where="deleted_at IS NULL",
        ),
        CheckConstraint("role >= 0", name="project_member_role_check"),
    )

    created_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ)
    updated_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    comment: Mapped[str | None] = mapped_column(Text)
    role: Mapped[int] = mapped_column(SmallInteger)
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(_fk("users.id"))
    member_id: Mapped[uuid.UUID | None] = mapped_column(_fk("users.id"))
    project_id: Mapped[uuid.UUID] = mapped_column(_fk("projects.id"))
    updated_by_id: Mapped[uuid.UUID | None] = mapped_column(_fk("users.id"))
    workspace_id: Mapped[uuid.UUID] = mapped_column(_fk("workspaces.id"))
    view_props: Mapped[Any] = mapped_column(JSONB)
    default_props: Mapped[Any] = mapped_column(JSONB)
    sort_order: Mapped[float] = mapped_column(Double)
    preferences: Mapped[Any] = mapped_column(JSONB)
    is_active: Mapped[bool]
    deleted_at: Mapped[datetime | None] = mapped_column(TIMESTAMPTZ)


class State(PlaneModel):
    """db.State: a workflow state of a project (backlog, started, completed...)."""

    __tablename__ = "states"
    __table_args__ = (
        PrimaryKeyConstraint("id", name="state_pkey"),
        UniqueConstraint(
            "name",
            "project_id",
            "deleted_at",
            name="states_name_project_id_deleted_at_02f90488_uniq",
        ),
        _partial_unique(
            "state_unique_name_project_when_deleted_at_null",
            "name",
            "project_id",
            where="deleted_at IS NULL",
        ),
    )

    created_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ)
    updated_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str] = mapped_column(Text)
    color: Mapped[str] = mapped_column(String(255))
    slug: Mapped[str] = mapped_column(String(100))
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(_fk("users.id"))
    project_id: Mapped[uuid.UUID] = mapped_column(_fk("projects.id"))
    updated_by_id: Mapped[uuid.UUID | None] = mapped_column(_fk("users.id"))
    workspace_id: Mapped[uuid.UUID] = mapped_column(_fk("workspaces.id"))
    sequence: Mapped[float] = mapped_column(Double)
    group: Mapped[str] = mapped_column(String(20))
    default: Mapped[bool]
    external_id: Mapped[str | None] = mapped_column(String(255))
    external_source: Mapped[str | None] = mapped_column(String(255))
    is_triage: Mapped[bool]
    deleted_at: Mapped[datetime | None] = mapped_column(TIMESTAMPTZ)


class Label(PlaneModel):
    """db.Label: a label, per project or (with no project) per workspace."""

    __tablename__ = "labels"
    __table_args__ = (
        PrimaryKeyConstraint("id", name="label_pkey"),
        _partial_unique(
            "unique_name_when_project_null_and_not_deleted",
            "name",
            where="((deleted_at IS NULL) AND (project_id IS NULL))",
        ),
        _partial_unique(
            "unique_project_name_when_not_deleted",
            "project_id",
            "name",
            where="((deleted_at IS NULL) AND (project_id IS NOT NULL))",
        ),
    )

    created_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ)
    updated_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str] = mapped_column(Text)
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(_fk("users.id"))
    project_id: Mapped[uuid.UUID | None] = mapped_column(_fk("projects.id"))
    updated_by_id: Mapped[uuid.UUID | None] = mapped_column(_fk("users.id"))
    workspace_id: Mapped[uuid.UUID] = mapped_column(_fk("workspaces.id"))
    parent_id: Mapped[uuid.UUID | None] = mapped_column(_fk("labels.id"))
    color: Mapped[str] = mapped_column(String(255))
    sort_order: Mapped[float] = mapped_column(Double)
    external_id: Mapped[str | None] = mapped_column(String(255))
    external_source: Mapped[str | None] = mapped_column(String(255))
    deleted_at: Mapped[datetime | None] = mapped_column(TIMESTAMPTZ)


# --- Work items (issues) -------------------------------------------------------------------------


class Issue(PlaneModel):
    """db.Issue: a work item."""

    __tablename__ = "issues"
    __table_args__ = (PrimaryKeyConstraint("id", name="issue_pkey"),)

    created_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ)
    updated_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    description_json: Mapped[Any] = mapped_column(JSONB)
    priority: Mapped[str] = mapped_column(String(30))
    start_date: Mapped[date | None]
    target_date: Mapped[date | None]
    sequence_id: Mapped[int]
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(_fk("users.id"))
    parent_id: Mapped[uuid.UUID | None] = mapped_column(_fk("issues.id"))
    project_id: Mapped[uuid.UUID] = mapped_column(_fk("projects.id"))
    state_id: Mapped[uuid.UUID | None] = mapped_column(_fk("states.id"))
    updated_by_id: Mapped[uuid.UUID | None] = mapped_column(_fk("users.id"))
    workspace_id: Mapped[uuid.UUID] = mapped_column(_fk("workspaces.id"))
    description_html: Mapped[str] = mapped_column(Text)
    description_stripped: Mapped[str | None] = mapped_column(Text)
    completed_at: Mapped[datetime | None] = mapped_column(TIMESTAMPTZ)
    sort_order: Mapped[float] = mapped_column(Double)
    point: Mapped[int | None]
    archived_at: Mapped[date | None]  # a date, unlike other archived_at
    is_draft: Mapped[bool]
    external_id: Mapped[str | None] = mapped_column(String(255))
    external_source: Mapped[str | None] = mapped_column(String(255))
    description_binary: Mapped[bytes | None]
    estimate_point_id: Mapped[uuid.UUID | None]  # FK to estimate_points (not modelled)
    type_id: Mapped[uuid.UUID | None]  # FK to issue_types (not modelled)
    deleted_at: Mapped[datetime | None] = mapped_column(TIMESTAMPTZ)


class IssueDescriptionVersion(PlaneModel):
    """db.IssueDescriptionVersion: a saved snapshot of an issue's description."""

    __tablename__ = "issue_description_versions"
    __table_args__ = (PrimaryKeyConstraint("id", name="issue_description_versions_pkey"),)

    created_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ)
    updated_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ)
    deleted_at: Mapped[datetime | None] = mapped_column(TIMESTAMPTZ)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    description_binary: Mapped[bytes | None]
    description_html: Mapped[str] = mapped_column(Text)
    description_stripped: Mapped[str | None] = mapped_column(Text)
    description_json: Mapped[Any] = mapped_column(JSONB)
    last_saved_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ)
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(_fk("users.id"))
    issue_id: Mapped[uuid.UUID] = mapped_column(_fk("issues.id"))
    owned_by_id: Mapped[uuid.UUID] = mapped_column(_fk("users.id"))
    project_id: Mapped[uuid.UUID] = mapped_column(_fk("projects.id"))
    updated_by_id: Mapped[uuid.UUID | None] = mapped_column(_fk("users.id"))
    workspace_id: Mapped[uuid.UUID] = mapped_column(_fk("workspaces.id"))


class IssueActivity(PlaneModel):
    """db.IssueActivity: one entry in an issue's activity history."""

    __tablename__ = "issue_activities"
    __table_args__ = (PrimaryKeyConstraint("id", name="issue_activity_pkey"),)

    created_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ)
    updated_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    verb: Mapped[str] = mapped_column(String(255))
    field: Mapped[str | None] = mapped_column(String(255))
    old_value: Mapped[str | None] = mapped_column(Text)
    new_value: Mapped[str | None] = mapped_column(Text)
    comment: Mapped[str] = mapped_column(Text)
    attachments: Mapped[list[str]] = mapped_column(ARRAY(String(200)))  # NOT NULL: pass []
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(_fk("users.id"))
    issue_id: Mapped[uuid.UUID | None] = mapped_column(_fk("issues.id"))
    issue_comment_id: Mapped[uuid.UUID | None] = mapped_column(_fk("issue_comments.id"))
    project_id: Mapped[uuid.UUID] = mapped_column(_fk("projects.id"))
    updated_by_id: Mapped[uuid.UUID | None] = mapped_column(_fk("users.id"))
    workspace_id: Mapped[uuid.UUID] = mapped_column(_fk("workspaces.id"))
    actor_id: Mapped[uuid.UUID | None] = mapped_column(_fk("users.id"))
    new_identifier: Mapped[uuid.UUID | None]
    old_identifier: Mapped[uuid.UUID | None]
    epoch: Mapped[float | None] = mapped_column(Double)
    deleted_at: Mapped[datetime | None] = mapped_column(TIMESTAMPTZ)


class IssueComment(PlaneModel):
    """db.IssueComment: a comment on an issue."""

    __tablename__ = "issue_comments"
    __table_args__ = (
        PrimaryKeyConstraint("id", name="issue_comment_pkey"),
        UniqueConstraint("description_id", name="issue_comments_description_id_key"),
    )

    created_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ)
    updated_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    comment_stripped: Mapped[str] = mapped_column(Text)
    attachments: Mapped[list[str]] = mapped_column(ARRAY(String(200)))  # NOT NULL: pass []
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(_fk("users.id"))
    issue_id: Mapped[uuid.UUID] = mapped_column(_fk("issues.id"))
    project_id: Mapped[uuid.UUID] = mapped_column(_fk("projects.id"))
    updated_by_id: Mapped[uuid.UUID | None] = mapped_column(_fk("users.id"))
    workspace_id: Mapped[uuid.UUID] = mapped_column(_fk("workspaces.id"))
    actor_id: Mapped[uuid.UUID | None] = mapped_column(_fk("users.id"))
    comment_html: Mapped[str] = mapped_column(Text)
    comment_json: Mapped[Any] = mapped_column(JSONB)
    access: Mapped[str] = mapped_column(String(100))
    external_id: Mapped[str | None] = mapped_column(String(255))
    external_source: Mapped[str | None] = mapped_column(String(255))
    deleted_at: Mapped[datetime | None] = mapped_column(TIMESTAMPTZ)
    edited_at: Mapped[datetime | None] = mapped_column(TIMESTAMPTZ)
    description_id: Mapped[uuid.UUID | None]  # FK to descriptions (not modelled)
    parent_id: Mapped[uuid.UUID | None] = mapped_column(_fk("issue_comments.id"))


class IssueLink(PlaneModel):
    """db.IssueLink: a URL attached to an issue; `metadata` holds what the link crawler found."""

    __tablename__ = "issue_links"
    __table_args__ = (PrimaryKeyConstraint("id", name="issue_links_pkey"),)

    created_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ)
    updated_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    title: Mapped[str | None] = mapped_column(String(255))
    url: Mapped[str] = mapped_column(Text)
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(_fk("users.id"))
    issue_id: Mapped[uuid.UUID] = mapped_column(_fk("issues.id"))
    project_id: Mapped[uuid.UUID] = mapped_column(_fk("projects.id"))
    updated_by_id: Mapped[uuid.UUID | None] = mapped_column(_fk("users.id"))
    workspace_id: Mapped[uuid.UUID] = mapped_column(_fk("workspaces.id"))
    # `metadata` is reserved on declarative classes: the attribute is `link_metadata`.
    link_metadata: Mapped[Any] = mapped_column("metadata", JSONB)
    deleted_at: Mapped[datetime | None] = mapped_column(TIMESTAMPTZ)


class IssueLabel(PlaneModel):
    """db.IssueLabel: the issue-label link."""

    __tablename__ = "issue_labels"
    __table_args__ = (PrimaryKeyConstraint("id", name="issue_label_pkey"),)

    created_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ)
    updated_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(_fk("users.id"))
    issue_id: Mapped[uuid.UUID] = mapped_column(_fk("issues.id"))
    label_id: Mapped[uuid.UUID] = mapped_column(_fk("labels.id"))
    project_id: Mapped[uuid.UUID] = mapped_column(_fk("projects.id"))
    updated_by_id: Mapped[uuid.UUID | None] = mapped_column(_fk("users.id"))
    workspace_id: Mapped[uuid.UUID] = mapped_column(_fk("workspaces.id"))
    deleted_at: Mapped[datetime | None] = mapped_column(TIMESTAMPTZ)


class IssueAssignee(PlaneModel):
    """db.IssueAssignee: the issue-assignee link."""

    __tablename__ = "issue_assignees"
    __table_args__ = (
        PrimaryKeyConstraint("id", name="issue_assignee_pkey"),
        UniqueConstraint(
            "issue_id",
            "assignee_id",
            "deleted_at",
            name="issue_assignees_issue_id_assignee_id_deleted_at_b2623a0e_uniq",
        ),
        _partial_unique(
            "issue_assignee_unique_issue_assignee_when_deleted_at_null",
            "issue_id",
            "assignee_id",
            where="deleted_at IS NULL",
        ),
    )

    created_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ)
    updated_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    assignee_id: Mapped[uuid.UUID] = mapped_column(_fk("users.id"))
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(_fk("users.id"))
    issue_id: Mapped[uuid.UUID] = mapped_column(_fk("issues.id"))
    project_id: Mapped[uuid.UUID] = mapped_column(_fk("projects.id"))
    updated_by_id: Mapped[uuid.UUID | None] = mapped_column(_fk("users.id"))
    workspace_id: Mapped[uuid.UUID] = mapped_column(_fk("workspaces.id"))
    deleted_at: Mapped[datetime | None] = mapped_column(TIMESTAMPTZ)


# --- Cycles and modules --------------------------------------------------------------------------


class Cycle(PlaneModel):
    """db.Cycle: a time-boxed iteration of a project."""

    __tablename__ = "cycles"
    __table_args__ = (PrimaryKeyConstraint("id", name="cycle_pkey"),)

    created_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ)
    updated_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str] = mapped_column(Text)
    start_date: Mapped[datetime | None] = mapped_column(TIMESTAMPTZ)
    end_date: Mapped[datetime | None] = mapped_column(TIMESTAMPTZ)
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(_fk("users.id"))
    owned_by_id: Mapped[uuid.UUID] = mapped_column(_fk("users.id"))
    project_id: Mapped[uuid.UUID] = mapped_column(_fk("projects.id"))
    updated_by_id: Mapped[uuid.UUID | None] = mapped_column(_fk("users.id"))
    workspace_id: Mapped[uuid.UUID] = mapped_column(_fk("workspaces.id"))
    view_props: Mapped[Any] = mapped_column(JSONB)
    sort_order: Mapped[float] = mapped_column(Double)
    external_id: Mapped[str | None] = mapped_column(String(255))
    external_source: Mapped[str | None] = mapped_column(String(255))
    progress_snapshot: Mapped[Any] = mapped_column(JSONB)
    archived_at: Mapped[datetime | None] = mapped_column(TIMESTAMPTZ)
    logo_props: Mapped[Any] = mapped_column(JSONB)
    deleted_at: Mapped[datetime | None] = mapped_column(TIMESTAMPTZ)
    timezone: Mapped[str] = mapped_column(String(255))
    version: Mapped[int]


class CycleIssue(PlaneModel):
    """db.CycleIssue: the cycle-issue link."""

    __tablename__ = "cycle_issues"
    __table_args__ = (
        PrimaryKeyConstraint("id", name="cycle_issue_pkey"),
        UniqueConstraint(
            "issue_id",
            "cycle_id",
            "deleted_at",
            name="cycle_issues_issue_id_cycle_id_deleted_at_93e8fecd_uniq",
        ),
        _partial_unique(
            "cycle_issue_when_deleted_at_null", "cycle_id", "issue_id", where="deleted_at IS NULL"
        ),
    )

    created_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ)
    updated_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(_fk("users.id"))
    cycle_id: Mapped[uuid.UUID] = mapped_column(_fk("cycles.id"))
    issue_id: Mapped[uuid.UUID] = mapped_column(_fk("issues.id"))
    project_id: Mapped[uuid.UUID] = mapped_column(_fk("projects.id"))
    updated_by_id: Mapped[uuid.UUID | None] = mapped_column(_fk("users.id"))
    workspace_id: Mapped[uuid.UUID] = mapped_column(_fk("workspaces.id"))
    deleted_at: Mapped[datetime | None] = mapped_column(TIMESTAMPTZ)


class Module(PlaneModel):
    """db.Module: a group of issues within a project."""

    __tablename__ = "modules"
    __table_args__ = (
        PrimaryKeyConstraint("id", name="module_pkey"),
        UniqueConstraint(
            "name",
            "project_id",
            "deleted_at",
            name="modules_name_project_id_deleted_at_328e2346_uniq",
        ),
        _partial_unique(
            "module_unique_name_project_when_deleted_at_null",
            "name",
            "project_id",
            where="deleted_at IS NULL",
        ),
    )

    created_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ)
    updated_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str] = mapped_column(Text)
    description_text: Mapped[Any | None] = mapped_column(JSONB)  # jsonb, not text
    description_html: Mapped[Any | None] = mapped_column(JSONB)  # jsonb, not text
    start_date: Mapped[date | None]
    target_date: Mapped[date | None]
    status: Mapped[str] = mapped_column(String(20))
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(_fk("users.id"))
    lead_id: Mapped[uuid.UUID | None] = mapped_column(_fk("users.id"))
    project_id: Mapped[uuid.UUID] = mapped_column(_fk("projects.id"))
    updated_by_id: Mapped[uuid.UUID | None] = mapped_column(_fk("users.id"))
    workspace_id: Mapped[uuid.UUID] = mapped_column(_fk("workspaces.id"))
    view_props: Mapped[Any] = mapped_column(JSONB)
    sort_order: Mapped[float] = mapped_column(Double)
    external_id: Mapped[str | None] = mapped_column(String(255))
    external_source: Mapped[str | None] = mapped_column(String(255))
    archived_at: Mapped[datetime | None] = mapped_column(TIMESTAMPTZ)
    logo_props: Mapped[Any] = mapped_column(JSONB)
    deleted_at: Mapped[datetime | None] = mapped_column(TIMESTAMPTZ)


class ModuleIssue(PlaneModel):
    """db.ModuleIssue: the module-issue link."""

    __tablename__ = "module_issues"
    __table_args__ = (
        PrimaryKeyConstraint("id", name="module_issues_pkey"),
        UniqueConstraint(
            "issue_id",
            "module_id",
            "deleted_at",
            name="module_issues_issue_id_module_id_deleted_at_f944f7c9_uniq",
        ),
        _partial_unique(
            "module_issue_unique_issue_module_when_deleted_at_null",
            "issue_id",
            "module_id",
            where="deleted_at IS NULL",
        ),
    )

    created_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ)
    updated_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(_fk("users.id"))
    issue_id: Mapped[uuid.UUID] = mapped_column(_fk("issues.id"))
    module_id: Mapped[uuid.UUID] = mapped_column(_fk("modules.id"))
    project_id: Mapped[uuid.UUID] = mapped_column(_fk("projects.id"))
    updated_by_id: Mapped[uuid.UUID | None] = mapped_column(_fk("users.id"))
    workspace_id: Mapped[uuid.UUID] = mapped_column(_fk("workspaces.id"))
    deleted_at: Mapped[datetime | None] = mapped_column(TIMESTAMPTZ)


# --- Pages ---------------------------------------------------------------------------------------


class Page(PlaneModel):
    """db.Page: a document page of a workspace (linked to projects via `project_pages`)."""

    __tablename__ = "pages"
    __table_args__ = (
        PrimaryKeyConstraint("id", name="pages_pkey"),
        CheckConstraint("access >= 0", name="pages_access_check"),
    )

    created_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ)
    updated_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    description_json: Mapped[Any] = mapped_column(JSONB)
    description_html: Mapped[str] = mapped_column(Text)
    description_stripped: Mapped[str | None] = mapped_column(Text)
    access: Mapped[int] = mapped_column(SmallInteger)
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(_fk("users.id"))
    owned_by_id: Mapped[uuid.UUID] = mapped_column(_fk("users.id"))
    updated_by_id: Mapped[uuid.UUID | None] = mapped_column(_fk("users.id"))
    workspace_id: Mapped[uuid.UUID] = mapped_column(_fk("workspaces.id"))
    color: Mapped[str] = mapped_column(String(255))
    archived_at: Mapped[date | None]  # a date, unlike other archived_at
    is_locked: Mapped[bool]
    parent_id: Mapped[uuid.UUID | None] = mapped_column(_fk("pages.id"))
    view_props: Mapped[Any] = mapped_column(JSONB)
    logo_props: Mapped[Any] = mapped_column(JSONB)
    description_binary: Mapped[bytes | None]
    is_global: Mapped[bool]
    deleted_at: Mapped[datetime | None] = mapped_column(TIMESTAMPTZ)
    moved_to_page: Mapped[uuid.UUID | None]
    moved_to_project: Mapped[uuid.UUID | None]
    external_id: Mapped[str | None] = mapped_column(String(255))
    external_source: Mapped[str | None] = mapped_column(String(255))
    sort_order: Mapped[float] = mapped_column(Double)


class PageVersion(PlaneModel):
    """db.PageVersion: a saved snapshot of a page's description."""

    __tablename__ = "page_versions"
    __table_args__ = (PrimaryKeyConstraint("id", name="page_versions_pkey"),)

    created_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ)
    updated_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    last_saved_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ)
    description_binary: Mapped[bytes | None]
    description_html: Mapped[str] = mapped_column(Text)
    description_stripped: Mapped[str | None] = mapped_column(Text)
    description_json: Mapped[Any] = mapped_column(JSONB)
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(_fk("users.id"))
    owned_by_id: Mapped[uuid.UUID] = mapped_column(_fk("users.id"))
    page_id: Mapped[uuid.UUID] = mapped_column(_fk("pages.id"))
    updated_by_id: Mapped[uuid.UUID | None] = mapped_column(_fk("users.id"))
    workspace_id: Mapped[uuid.UUID] = mapped_column(_fk("workspaces.id"))
    deleted_at: Mapped[datetime | None] = mapped_column(TIMESTAMPTZ)
    sub_pages_data: Mapped[Any] = mapped_column(JSONB)


class PageLog(PlaneModel):
    """db.PageLog: one mention or image of a page's description (`transaction` is the editor
    component's id). The unique key covers soft-deleted rows too (a plain UNIQUE, no partial index)."""

    __tablename__ = "page_logs"
    __table_args__ = (
        PrimaryKeyConstraint("id", name="page_logs_pkey"),
        UniqueConstraint("page_id", "transaction", name="page_logs_page_id_transaction_9ab05334_uniq"),
    )

    created_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ)
    updated_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    transaction: Mapped[uuid.UUID]
    entity_identifier: Mapped[uuid.UUID | None]
    entity_name: Mapped[str] = mapped_column(String(30))
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(_fk("users.id"))
    page_id: Mapped[uuid.UUID] = mapped_column(_fk("pages.id"))
    updated_by_id: Mapped[uuid.UUID | None] = mapped_column(_fk("users.id"))
    workspace_id: Mapped[uuid.UUID] = mapped_column(_fk("workspaces.id"))
    deleted_at: Mapped[datetime | None] = mapped_column(TIMESTAMPTZ)
    entity_type: Mapped[str | None] = mapped_column(String(30))


# --- Assets and exports --------------------------------------------------------------------------


class FileAsset(PlaneModel):
    """db.FileAsset: an uploaded file stored in object storage (`asset` is the S3 key)."""

    __tablename__ = "file_assets"
    __table_args__ = (PrimaryKeyConstraint("id", name="file_asset_pkey"),)

    created_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ)
    updated_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    attributes: Mapped[Any] = mapped_column(JSONB)
    asset: Mapped[str] = mapped_column(String(800))
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(_fk("users.id"))
    updated_by_id: Mapped[uuid.UUID | None] = mapped_column(_fk("users.id"))
    workspace_id: Mapped[uuid.UUID | None] = mapped_column(_fk("workspaces.id"))
    is_deleted: Mapped[bool]
    deleted_at: Mapped[datetime | None] = mapped_column(TIMESTAMPTZ)
    is_archived: Mapped[bool]
    comment_id: Mapped[uuid.UUID | None] = mapped_column(_fk("issue_comments.id"))
    entity_type: Mapped[str | None] = mapped_column(String(255))
    external_id: Mapped[str | None] = mapped_column(String(255))
    external_source: Mapped[str | None] = mapped_column(String(255))
    is_uploaded: Mapped[bool]
    issue_id: Mapped[uuid.UUID | None] = mapped_column(_fk("issues.id"))
    page_id: Mapped[uuid.UUID | None] = mapped_column(_fk("pages.id"))
    project_id: Mapped[uuid.UUID | None] = mapped_column(_fk("projects.id"))
    size: Mapped[float] = mapped_column(Double)
    storage_metadata: Mapped[Any | None] = mapped_column(JSONB)
    user_id: Mapped[uuid.UUID | None] = mapped_column(_fk("users.id"))
    draft_issue_id: Mapped[uuid.UUID | None]  # FK to draft_issues (not modelled)
    entity_identifier: Mapped[str | None] = mapped_column(String(255))


class ExporterHistory(PlaneModel):
    """db.ExporterHistory: one export job and its result (table `exporters`)."""

    __tablename__ = "exporters"
    __table_args__ = (
        PrimaryKeyConstraint("id", name="exporters_pkey"),
        UniqueConstraint("token", name="exporters_token_key"),
    )

    created_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ)
    updated_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    project: Mapped[list[uuid.UUID] | None] = mapped_column(ARRAY(Uuid))  # project ids, no FK
    provider: Mapped[str] = mapped_column(String(50))
    status: Mapped[str] = mapped_column(String(50))
    reason: Mapped[str] = mapped_column(Text)
    key: Mapped[str] = mapped_column(Text)
    url: Mapped[str | None] = mapped_column(String(800))
    token: Mapped[str] = mapped_column(String(255))
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(_fk("users.id"))
    initiated_by_id: Mapped[uuid.UUID] = mapped_column(_fk("users.id"))
    updated_by_id: Mapped[uuid.UUID | None] = mapped_column(_fk("users.id"))
    workspace_id: Mapped[uuid.UUID] = mapped_column(_fk("workspaces.id"))
    filters: Mapped[Any | None] = mapped_column(JSONB)
    name: Mapped[str | None] = mapped_column(String(255))
    type: Mapped[str] = mapped_column(String(50))
    deleted_at: Mapped[datetime | None] = mapped_column(TIMESTAMPTZ)
    rich_filters: Mapped[Any | None] = mapped_column(JSONB)


# --- Notifications -------------------------------------------------------------------------------


class EmailNotificationLog(PlaneModel):
    """db.EmailNotificationLog: a change queued for an e-mail notification digest."""

    __tablename__ = "email_notification_logs"
    __table_args__ = (PrimaryKeyConstraint("id", name="email_notification_logs_pkey"),)

    created_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ)
    updated_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    entity_identifier: Mapped[uuid.UUID | None]
    entity_name: Mapped[str] = mapped_column(String(255))
    data: Mapped[Any | None] = mapped_column(JSONB)
    processed_at: Mapped[datetime | None] = mapped_column(TIMESTAMPTZ)
    sent_at: Mapped[datetime | None] = mapped_column(TIMESTAMPTZ)
    entity: Mapped[str] = mapped_column(String(200))
    old_value: Mapped[str | None] = mapped_column(String(300))
    new_value: Mapped[str | None] = mapped_column(String(300))
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(_fk("users.id"))
    receiver_id: Mapped[uuid.UUID] = mapped_column(_fk("users.id"))
    triggered_by_id: Mapped[uuid.UUID] = mapped_column(_fk("users.id"))
    updated_by_id: Mapped[uuid.UUID | None] = mapped_column(_fk("users.id"))
    deleted_at: Mapped[datetime | None] = mapped_column(TIMESTAMPTZ)


class Notification(PlaneModel):
    """db.Notification: one in-app notification of a user (the inbox row)."""

    __tablename__ = "notifications"
    __table_args__ = (PrimaryKeyConstraint("id", name="notifications_pkey"),)

    created_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ)
    updated_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    data: Mapped[Any | None] = mapped_column(JSONB)
    entity_identifier: Mapped[uuid.UUID | None]
    entity_name: Mapped[str] = mapped_column(String(255))
    title: Mapped[str] = mapped_column(Text)
    message: Mapped[Any | None] = mapped_column(JSONB)
    message_html: Mapped[str] = mapped_column(Text)
    message_stripped: Mapped[str | None] = mapped_column(Text)
    sender: Mapped[str] = mapped_column(String(255))
    read_at: Mapped[datetime | None] = mapped_column(TIMESTAMPTZ)
    snoozed_till: Mapped[datetime | None] = mapped_column(TIMESTAMPTZ)
    archived_at: Mapped[datetime | None] = mapped_column(TIMESTAMPTZ)
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(_fk("users.id"))
    project_id: Mapped[uuid.UUID | None] = mapped_column(_fk("projects.id"))
    receiver_id: Mapped[uuid.UUID] = mapped_column(_fk("users.id"))
    triggered_by_id: Mapped[uuid.UUID | None] = mapped_column(_fk("users.id"))
    updated_by_id: Mapped[uuid.UUID | None] = mapped_column(_fk("users.id"))
    workspace_id: Mapped[uuid.UUID] = mapped_column(_fk("workspaces.id"))
    deleted_at: Mapped[datetime | None] = mapped_column(TIMESTAMPTZ)


class IssueSubscriber(PlaneModel):
    """db.IssueSubscriber: a user who gets an issue's notifications."""

    __tablename__ = "issue_subscribers"
    __table_args__ = (
        PrimaryKeyConstraint("id", name="issue_subscribers_pkey"),
        UniqueConstraint(
            "issue_id",
            "subscriber_id",
            "deleted_at",
            name="issue_subscribers_issue_id_subscriber_id_d_587dec1a_uniq",
        ),
        _partial_unique(
            "issue_subscriber_unique_issue_subscriber_when_deleted_at_null",
            "issue_id",
            "subscriber_id",
            where="deleted_at IS NULL",
        ),
    )

    created_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ)
    updated_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(_fk("users.id"))
    issue_id: Mapped[uuid.UUID] = mapped_column(_fk("issues.id"))
    project_id: Mapped[uuid.UUID] = mapped_column(_fk("projects.id"))
    subscriber_id: Mapped[uuid.UUID] = mapped_column(_fk("users.id"))
    updated_by_id: Mapped[uuid.UUID | None] = mapped_column(_fk("users.id"))
    workspace_id: Mapped[uuid.UUID] = mapped_column(_fk("workspaces.id"))
    deleted_at: Mapped[datetime | None] = mapped_column(TIMESTAMPTZ)


class IssueMention(PlaneModel):
    """db.IssueMention: a user mentioned in an issue's description."""

    __tablename__ = "issue_mentions"
    __table_args__ = (
        PrimaryKeyConstraint("id", name="issue_mentions_pkey"),
        UniqueConstraint(
            "issue_id",
            "mention_id",
            "deleted_at",
            name="issue_mentions_issue_id_mention_id_deleted_at_f6ecd6ed_uniq",
        ),
        _partial_unique(
            "issue_mention_unique_issue_mention_when_deleted_at_null",
            "issue_id",
            "mention_id",
            where="deleted_at IS NULL",
        ),
    )

    created_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ)
    updated_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(_fk("users.id"))
    issue_id: Mapped[uuid.UUID] = mapped_column(_fk("issues.id"))
    mention_id: Mapped[uuid.UUID] = mapped_column(_fk("users.id"))
    project_id: Mapped[uuid.UUID] = mapped_column(_fk("projects.id"))
    updated_by_id: Mapped[uuid.UUID | None] = mapped_column(_fk("users.id"))
    workspace_id: Mapped[uuid.UUID] = mapped_column(_fk("workspaces.id"))
    deleted_at: Mapped[datetime | None] = mapped_column(TIMESTAMPTZ)


class UserNotificationPreference(PlaneModel):
    """db.UserNotificationPreference: which changes a user wants e-mailed (no uniqueness)."""

    __tablename__ = "user_notification_preferences"
    __table_args__ = (PrimaryKeyConstraint("id", name="user_notification_preferences_pkey"),)

    created_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ)
    updated_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    property_change: Mapped[bool]
    state_change: Mapped[bool]
    comment: Mapped[bool]
    mention: Mapped[bool]
    issue_completed: Mapped[bool]
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(_fk("users.id"))
    project_id: Mapped[uuid.UUID | None] = mapped_column(_fk("projects.id"))
    updated_by_id: Mapped[uuid.UUID | None] = mapped_column(_fk("users.id"))
    user_id: Mapped[uuid.UUID] = mapped_column(_fk("users.id"))
    workspace_id: Mapped[uuid.UUID | None] = mapped_column(_fk("workspaces.id"))
    deleted_at: Mapped[datetime | None] = mapped_column(TIMESTAMPTZ)


# --- Webhooks and API logs -----------------------------------------------------------------------


class Webhook(PlaneModel):
    """db.Webhook: a workspace webhook endpoint and the events it wants."""

    __tablename__ = "webhooks"
    __table_args__ = (
        PrimaryKeyConstraint("id", name="webhooks_pkey"),
        UniqueConstraint(
            "workspace_id",
            "url",
            "deleted_at",
            name="webhooks_workspace_id_url_deleted_at_ea7a1429_uniq",
        ),
        _partial_unique(
            "webhook_url_unique_url_when_deleted_at_null",
            "workspace_id",
            "url",
            where="deleted_at IS NULL",
        ),
    )

    created_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ)
    updated_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(String(1024))
    is_active: Mapped[bool]
    secret_key: Mapped[str] = mapped_column(String(255))
    project: Mapped[bool]
    issue: Mapped[bool]
    module: Mapped[bool]
    cycle: Mapped[bool]
    issue_comment: Mapped[bool]
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(_fk("users.id"))
    updated_by_id: Mapped[uuid.UUID | None] = mapped_column(_fk("users.id"))
    workspace_id: Mapped[uuid.UUID] = mapped_column(_fk("workspaces.id"))
    deleted_at: Mapped[datetime | None] = mapped_column(TIMESTAMPTZ)
    is_internal: Mapped[bool]
    version: Mapped[str] = mapped_column(String(50))


class WebhookLog(PlaneModel):
    """db.WebhookLog: one webhook delivery attempt."""

    __tablename__ = "webhook_logs"
    __table_args__ = (
        PrimaryKeyConstraint("id", name="webhook_logs_pkey"),
        CheckConstraint("retry_count >= 0", name="webhook_logs_retry_count_check"),
    )

    created_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ)
    updated_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    event_type: Mapped[str | None] = mapped_column(String(255))
    request_method: Mapped[str | None] = mapped_column(String(10))
    request_headers: Mapped[str | None] = mapped_column(Text)
    request_body: Mapped[str | None] = mapped_column(Text)
    response_status: Mapped[str | None] = mapped_column(Text)  # text, not an integer
    response_headers: Mapped[str | None] = mapped_column(Text)
    response_body: Mapped[str | None] = mapped_column(Text)
    retry_count: Mapped[int] = mapped_column(SmallInteger)
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(_fk("users.id"))
    updated_by_id: Mapped[uuid.UUID | None] = mapped_column(_fk("users.id"))
    webhook: Mapped[uuid.UUID]  # webhooks.id, but no FK
    workspace_id: Mapped[uuid.UUID] = mapped_column(_fk("workspaces.id"))
    deleted_at: Mapped[datetime | None] = mapped_column(TIMESTAMPTZ)


class APIActivityLog(PlaneModel):
    """db.APIActivityLog: one request to Plane's public API."""

    __tablename__ = "api_activity_logs"
    __table_args__ = (
        PrimaryKeyConstraint("id", name="api_activity_logs_pkey"),
        CheckConstraint("response_code >= 0", name="api_activity_logs_response_code_check"),
    )

    created_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ)
    updated_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    token_identifier: Mapped[str] = mapped_column(String(255))
    path: Mapped[str] = mapped_column(String(255))
    method: Mapped[str] = mapped_column(String(10))
    query_params: Mapped[str | None] = mapped_column(Text)
    headers: Mapped[str | None] = mapped_column(Text)
    body: Mapped[str | None] = mapped_column(Text)
    response_code: Mapped[int]
    response_body: Mapped[str | None] = mapped_column(Text)
    ip_address: Mapped[str | None] = mapped_column(INET)
    user_agent: Mapped[str | None] = mapped_column(String(512))
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(_fk("users.id"))
    updated_by_id: Mapped[uuid.UUID | None] = mapped_column(_fk("users.id"))
    deleted_at: Mapped[datetime | None] = mapped_column(TIMESTAMPTZ)


PLANE_MODELS: tuple[type[PlaneModel], ...] = (
    Instance,
    User,
    Workspace,
    WorkspaceMember,
    Project,
    ProjectMember,
    State,
    Label,
    Issue,
    IssueDescriptionVersion,
    IssueActivity,
    IssueComment,
    IssueLabel,
    IssueAssignee,
    Cycle,
    CycleIssue,
    Module,
    ModuleIssue,
    Page,
    PageVersion,
    PageLog,
    FileAsset,
    ExporterHistory,
    EmailNotificationLog,
    Notification,
    IssueSubscriber,
    IssueMention,
    UserNotificationPreference,
    Webhook,
    WebhookLog,
    APIActivityLog,
)
