"""The models write rows Plane's schema accepts, and read them back unchanged."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import Engine, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shared.db.plane import (
    APIActivityLog,
    Issue,
    IssueAssignee,
    IssueDescriptionVersion,
    PlaneModel,
    Project,
    State,
    User,
    Workspace,
    plane_row_defaults,
)


def key_rows(now: datetime) -> list[PlaneModel]:
    """A user, workspace, project, state, issue, description version and API log, in FK order.

    Each row gets `id`/`created_at`/`updated_at` from `PlaneModel.new` and every other NOT NULL
    column from here, with the values Plane's model defaults would give.
    """
    tag = uuid.uuid4().hex[:8]
    user = User.new(
        now=now, password="!", username=f"ada-{tag}", email=f"ada-{tag}@example.com",
        first_name="Ada", last_name="Lovelace", display_name="ada", avatar="", date_joined=now,
        last_location="", created_location="", is_superuser=False, is_managed=False,
        is_password_expired=False, is_active=True, is_staff=False, is_email_verified=True,
        is_password_autoset=False, token=uuid.uuid4().hex, user_timezone="UTC",
        last_login_ip="", last_logout_ip="", last_login_medium="email", last_login_uagent="",
        is_bot=False, is_email_valid=True, is_password_reset_required=False,
    )  # fmt: skip
    workspace = Workspace.new(
        now=now, name="Analytical Engines", slug=f"engines-{tag}", owner_id=user.id,
        created_by_id=user.id, timezone="UTC", background_color="#1e1e1e",
    )  # fmt: skip
    project = Project.new(
        now=now, name="Difference Engine", identifier="DIFF", description="", network=2,
        workspace_id=workspace.id, cycle_view=True, module_view=True, issue_views_view=True,
        page_view=True, intake_view=False, archive_in=0, close_in=0, logo_props={},
        is_time_tracking_enabled=False, is_issue_type_enabled=False,
        guest_view_all_features=False, timezone="UTC", created_by_id=user.id,
    )  # fmt: skip
    state = State.new(
        now=now, name="Todo", description="", color="#3A3A3A", slug="todo", group="unstarted",
        default=True, is_triage=False, sequence=15000.0, project_id=project.id,
        workspace_id=workspace.id,
    )  # fmt: skip
    project.default_state_id = state.id  # projects <-> states is a cycle; FKs are deferred
    issue = Issue.new(
        now=now, name="Compute Bernoulli numbers", description_json={"type": "doc"},
        description_html="<p>Note G</p>", description_stripped="Note G",
        description_binary=b"\x00yjs\xff", priority="high", sequence_id=1, sort_order=65535.0,
        is_draft=False, start_date=date(1843, 9, 1), project_id=project.id,
        workspace_id=workspace.id, state_id=state.id, created_by_id=user.id,
    )  # fmt: skip
    version = IssueDescriptionVersion.new(
        now=now, issue_id=issue.id, project_id=project.id, workspace_id=workspace.id,
        owned_by_id=user.id, last_saved_at=now, description_html=issue.description_html,
        description_json=issue.description_json, description_binary=issue.description_binary,
    )  # fmt: skip
    api_log = APIActivityLog.new(
        now=now, token_identifier="plane_api_0123", path="/api/v1/workspaces/", method="GET",
        response_code=200, ip_address="192.0.2.7", query_params="{}", user_agent="pytest",
    )  # fmt: skip
    return [user, workspace, project, state, issue, version, api_log]


def column_values(row: PlaneModel) -> dict[str, object]:
    return {column.key: getattr(row, column.key) for column in row.__mapper__.column_attrs}


def test_insert_key_rows_and_read_back(plane_engine: Engine) -> None:
    now = datetime(2026, 5, 19, 10, 11, 12, 345678, tzinfo=UTC)
    rows = key_rows(now)
    expected = [column_values(row) for row in rows]

    with Session(plane_engine) as session, session.begin():
        session.add_all(rows)

    with Session(plane_engine) as session:
        for row, values in zip(rows, expected, strict=True):
            loaded = session.get(type(row), values["id"])
            assert loaded is not None, type(row).__tablename__
            assert column_values(loaded) == values, type(row).__tablename__


def test_foreign_keys_are_checked_at_commit_not_at_insert(plane_engine: Engine) -> None:
    """Plane's FKs are DEFERRABLE INITIALLY DEFERRED: a dangling id only fails the COMMIT."""
    user = key_rows(datetime.now(UTC))[0]
    dangling = Workspace.new(
        name="Orphan", slug=f"orphan-{uuid.uuid4().hex[:8]}", owner_id=uuid.uuid4(),
        timezone="UTC", background_color="#000000",
    )  # fmt: skip
    with Session(plane_engine) as session:
        session.add_all([user, dangling])
        session.flush()  # the INSERTs succeed...
        assert session.scalar(select(Workspace.name).where(Workspace.id == dangling.id))
        with pytest.raises(IntegrityError, match="workspace_owner_id"):
            session.commit()  # ...and the deferred check fails here


def test_upsert_targets_the_live_rows_index(plane_engine: Engine) -> None:
    """`ON CONFLICT ... WHERE deleted_at IS NULL` dedupes live links; soft-deleted ones don't count."""
    rows = key_rows(datetime.now(UTC))
    user, issue = rows[0], rows[4]
    assert isinstance(user, User) and isinstance(issue, Issue)
    link = {"issue_id": issue.id, "assignee_id": user.id}
    live = IssueAssignee.deleted_at.is_(None)

    def assign(session: Session) -> None:
        values = {**plane_row_defaults(), **link, "project_id": issue.project_id,
                  "workspace_id": issue.workspace_id}  # fmt: skip
        statement = insert(IssueAssignee).values(values)
        session.execute(statement.on_conflict_do_nothing(index_elements=list(link), index_where=live))

    def count(session: Session) -> int:
        return session.scalar(select(func.count()).where(IssueAssignee.issue_id == issue.id)) or 0

    with Session(plane_engine) as session, session.begin():
        session.add_all(rows)
        session.flush()
        assign(session)
        assign(session)
        assert count(session) == 1
        soft_delete = update(IssueAssignee).where(live, IssueAssignee.issue_id == issue.id)
        session.execute(soft_delete.values(deleted_at=func.now()))
        assign(session)
        assert count(session) == 2


def test_plane_row_defaults() -> None:
    now = datetime.now(UTC)
    first, second = plane_row_defaults(now), plane_row_defaults(now)
    assert first["created_at"] == first["updated_at"] == now
    assert isinstance(first["id"], uuid.UUID) and first["id"].version == 4
    assert first["id"] != second["id"]
    assert plane_row_defaults()["created_at"].tzinfo is not None
    with pytest.raises(ValueError, match="aware"):
        plane_row_defaults(datetime(2026, 1, 1))  # naive on purpose


def test_new_lets_explicit_values_win() -> None:
    fixed = uuid.uuid4()
    log = APIActivityLog.new(id=fixed, token_identifier="t")
    assert log.id == fixed and log.created_at == log.updated_at
