"""Golden rows per ACTIVITY_MAPPER type and per field tracker, written to Plane's real schema.

Each case gives `requested_data`/`current_instance` as Plane's API sends them (serializer data
through DjangoJSONEncoder: UUIDs as strings, dates "YYYY-MM-DD", datetimes ISO with "Z") and the
rows Plane's `issue_activity` task writes, column by column, derived from
bgtasks/issue_activities_task.py (reference/plane-bgtasks.md §5.1). The translator's rows are
inserted and committed (deferred FKs checked), read back and compared with every column.

Cases marked FIXED differ from Plane on purpose; the comment says what Plane did.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, text

from services.issue_activity import ActivityResult, translate_with_db
from shared.db.engine import get_engine
from tests.integration.issue_activity_world import ISSUE_CREATED_AT, World, apply, build_world, stored_rows

NOW = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)
EPOCH = 1777636800
US = timedelta(microseconds=1)


def dumps(value: Any) -> str:
    return json.dumps(value)


def issue_detail(w: World, **values: Any) -> dict[str, Any]:
    """IssueDetailSerializer(issue).data as the update view dumps it into current_instance."""
    return {
        "id": str(w.issue),
        "name": "Issue 7",
        "state_id": str(w.todo),
        "parent_id": None,
        "priority": "none",
        "start_date": None,
        "target_date": None,
        "sequence_id": 7,
        "project_id": str(w.project),
        "workspace_id": str(w.ws),
        "label_ids": [str(w.bug)],
        "assignee_ids": [str(w.bob)],
        "module_ids": [],
        "cycle_id": None,
        "estimate_point": None,
        "archived_at": None,
        "is_draft": False,
        "description_html": "<p>old</p>",
        "type_id": None,
        "created_at": "2026-04-28T09:30:00.123Z",
        "updated_at": "2026-04-30T10:00:00.456Z",
        "created_by": str(w.creator),
        "updated_by": None,
        "completed_at": None,
        "sub_issues_count": 0,
        "attachment_count": 0,
        "link_count": 0,
        **values,
    }


def comment_data(w: World, **values: Any) -> dict[str, Any]:
    """IssueCommentSerializer data."""
    return {
        "id": str(w.comment),
        "comment_html": "<p>hi</p>",
        "comment_stripped": "hi",
        "comment_json": {},
        "attachments": [],
        "access": "INTERNAL",
        "issue": str(w.issue),
        "project": str(w.project),
        "workspace": str(w.ws),
        "actor": str(w.actor),
        "created_at": "2026-05-01T11:59:00.000Z",
        "edited_at": None,
        **values,
    }


def data(
    w: World,
    type_: str,
    requested: Any = None,
    current: Any = None,
    *,
    issue_id: uuid.UUID | str | None = "issue",
    **extra: Any,
) -> dict[str, Any]:
    """The kwargs of `issue_activity.delay(...)`, JSON strings where the API dumps them."""
    return {
        "type": type_,
        "requested_data": requested if requested is None or isinstance(requested, str) else dumps(requested),
        "current_instance": current if current is None or isinstance(current, str) else dumps(current),
        "issue_id": str(w.issue) if issue_id == "issue" else (None if issue_id is None else str(issue_id)),
        "actor_id": str(w.actor),
        "project_id": str(w.project),
        "epoch": EPOCH,
        "subscriber": True,
        "notification": True,
        "origin": "https://plane.example.com",
        **extra,
    }


def row(w: World, comment: str, **values: Any) -> dict[str, Any]:
    """An issue_activities row with Plane's defaults; created_at/updated_at filled by position."""
    return {
        "issue_id": w.issue,
        "project_id": w.project,
        "workspace_id": w.ws,
        "actor_id": w.actor,
        "verb": "updated",
        "field": None,
        "old_value": None,
        "new_value": None,
        "comment": comment,
        "old_identifier": None,
        "new_identifier": None,
        "issue_comment_id": None,
        "epoch": float(EPOCH),
        "attachments": [],
        "created_by_id": None,
        "updated_by_id": None,
        "deleted_at": None,
        **values,
    }


@dataclass
class Case:
    name: str
    event: Callable[[World], dict[str, Any]]
    rows: Callable[[World], list[dict[str, Any]]]
    touched: Callable[[World], list[uuid.UUID]] = lambda w: [w.issue]
    subscribers: Callable[[World], list[uuid.UUID]] = lambda w: []
    seed: Callable[[Connection, World], None] | None = None
    check: Callable[[Connection, World, ActivityResult], None] | None = None
    warnings: int = 0
    marks: list[Any] = field(default_factory=list)


def update_case(name: str, requested: Callable[[World], dict], current: Callable[[World], dict], rows, **kw):  # type: ignore[no-untyped-def]
    return Case(
        name,
        lambda w: data(w, "issue.activity.updated", requested(w), issue_detail(w, **current(w))),
        rows,
        **kw,
    )


def previous_description(conn: Connection, w: World) -> None:
    conn.execute(
        text(
            "INSERT INTO issue_activities (id, created_at, updated_at, verb, field, comment, attachments,"
            " issue_id, project_id, workspace_id, actor_id) VALUES ('4f0a8c9e-3b1d-4c2e-8f7a-1b2c3d4e5f60',"
            " :at, :at, 'updated', 'description', 'updated the description to', '{}', :i, :p, :ws, :a)"
        ),
        {"at": NOW - timedelta(minutes=2), "i": w.issue, "p": w.project, "ws": w.ws, "a": w.actor},
    )


def bumped_previous_description(conn: Connection, w: World, result: ActivityResult) -> None:
    assert [b.activity_id for b in result.description_bumps] == [
        uuid.UUID("4f0a8c9e-3b1d-4c2e-8f7a-1b2c3d4e5f60")
    ]
    got = conn.execute(
        text(
            "SELECT created_at, updated_at FROM issue_activities"
            " WHERE id = '4f0a8c9e-3b1d-4c2e-8f7a-1b2c3d4e5f60'"
        )
    ).one()
    # Plane saves only created_at (update_fields=["created_at"]).
    assert (got.created_at, got.updated_at) == (NOW, NOW - timedelta(minutes=2))


def soft_delete(table: str, attr: str) -> Callable[[Connection, World], None]:
    def seed(conn: Connection, w: World) -> None:
        conn.execute(
            text(f"UPDATE {table} SET deleted_at = :now WHERE id = :id"), {"now": NOW, "id": getattr(w, attr)}
        )

    return seed


def created_cycle_issues(w: World) -> str:
    """Django's serializers.serialize("json", created_records): a JSON string inside the JSON."""
    return json.dumps(
        [
            {
                "model": "db.cycleissue",
                "pk": "5d6e7f80-91a2-4b3c-8d4e-5f6a7b8c9d0e",
                "fields": {
                    "created_at": "2026-05-01T11:59:59.123Z",
                    "updated_at": "2026-05-01T11:59:59.123Z",
                    "deleted_at": None,
                    "created_by": str(w.actor),
                    "updated_by": str(w.actor),
                    "project": str(w.project),
                    "workspace": str(w.ws),
                    "issue": str(w.related),
                    "cycle": str(w.sprint2),
                },
            }
        ]
    )


CASES = [
    # --- issue.activity.updated: one case per field tracker ---------------------------------------
    update_case(
        "name",
        lambda w: {"name": "Renamed"},
        lambda w: {},
        lambda w: [row(w, "updated the name to", field="name", old_value="Issue 7", new_value="Renamed")],
    ),
    update_case(
        "description_new_row",
        lambda w: {"description_html": "<p>new</p>", "description_json": {"type": "doc"}},
        lambda w: {},
        lambda w: [
            row(
                w,
                "updated the description to",
                field="description",
                old_value="<p>old</p>",
                new_value="<p>new</p>",
            )
        ],
    ),
    update_case(
        "description_coalesced_into_the_actors_previous_edit",
        lambda w: {"description_html": "<p>new</p>"},
        lambda w: {},
        lambda w: [],
        seed=previous_description,
        check=bumped_previous_description,
    ),
    update_case(
        "parent_in_another_project",
        lambda w: {"parent_id": str(w.ops_issue)},
        lambda w: {},
        lambda w: [
            row(
                w,
                "updated the parent issue to",
                field="parent",
                old_value="",
                new_value="OPS-1",
                new_identifier=w.ops_issue,
            )
        ],
    ),
    update_case(
        "parent_removed",
        lambda w: {"parent_id": None},
        lambda w: {"parent_id": str(w.related)},
        lambda w: [
            row(
                w,
                "updated the parent issue to",
                field="parent",
                old_value="WEB-8",
                new_value="",
                old_identifier=w.related,
            )
        ],
    ),
    update_case(
        "parent_not_a_uuid_v4_skips_the_tracker", lambda w: {"parent_id": "7"}, lambda w: {}, lambda w: []
    ),
    update_case(
        "priority",
        lambda w: {"priority": "urgent"},
        lambda w: {},
        lambda w: [row(w, "updated the priority to", field="priority", old_value="none", new_value="urgent")],
    ),
    update_case(
        "state",
        lambda w: {"state_id": str(w.done)},
        lambda w: {},
        lambda w: [
            row(
                w,
                "updated the state to",
                field="state",
                old_value="Todo",
                new_value="Done",
                old_identifier=w.todo,
                new_identifier=w.done,
            )
        ],
    ),
    update_case(
        "state_from_triage_reads_as_no_state",  # State.objects hides triage states
        lambda w: {"state_id": str(w.todo)},
        lambda w: {"state_id": str(w.triage)},
        lambda w: [row(w, "updated the state to", field="state", new_value="Todo", new_identifier=w.todo)],
    ),
    update_case(
        "target_date_set",
        lambda w: {"target_date": "2026-05-10"},
        lambda w: {},
        lambda w: [
            row(w, "updated the target date to", field="target_date", old_value="", new_value="2026-05-10")
        ],
    ),
    update_case(
        "start_date_cleared",
        lambda w: {"start_date": None},
        lambda w: {"start_date": "2026-05-01"},
        lambda w: [
            row(w, "updated the start date to ", field="start_date", old_value="2026-05-01", new_value="")
        ],
    ),
    update_case(
        "labels_added_then_removed",
        lambda w: {"label_ids": [str(w.ui)]},
        lambda w: {},
        lambda w: [
            row(w, "added label ", field="labels", old_value="", new_value="ui", new_identifier=w.ui),
            row(w, "removed label ", field="labels", old_value="bug", new_value="", old_identifier=w.bug),
        ],
    ),
    update_case(
        "assignees_added_then_removed_and_the_new_one_subscribed",
        lambda w: {"assignee_ids": [str(w.alice)]},
        lambda w: {},
        lambda w: [
            row(
                w,
                "added assignee ",
                field="assignees",
                old_value="",
                new_value="alice",
                new_identifier=w.alice,
            ),
            row(
                w, "removed assignee ", field="assignees", old_value="bob", new_value="", old_identifier=w.bob
            ),
        ],
        subscribers=lambda w: [w.alice],
    ),
    update_case(
        "estimate_set",
        lambda w: {"estimate_point": str(w.point3)},
        lambda w: {},
        lambda w: [
            row(
                w,
                "updated the estimate point to ",
                field="estimate_points",
                new_value="3",
                new_identifier=w.point3,
            )
        ],
    ),
    update_case(
        # FIXED (Plane's bug 14): `new_estimate.estimate.type` on None raised; the event was lost.
        "estimate_cleared",
        lambda w: {"estimate_point": None},
        lambda w: {"estimate_point": str(w.point1)},
        lambda w: [
            row(
                w,
                "updated the estimate point to ",
                verb="removed",
                field="estimate_points",
                old_value="1",
                old_identifier=w.point1,
            )
        ],
    ),
    update_case(
        "archived_by_a_user",
        lambda w: {"archived_at": "2026-05-01", "automation": False},
        lambda w: {},
        lambda w: [row(w, "Actor has archived the issue", field="archived_at", new_value="manual_archive")],
    ),
    Case(
        "archived_by_automation",  # what cronjobs/archive_close_issues sends
        lambda w: data(
            w,
            "issue.activity.updated",
            {"archived_at": "2026-05-01", "automation": True},
            {"archived_at": None},
        ),
        lambda w: [row(w, "Plane has archived the issue", field="archived_at", new_value="archive")],
    ),
    update_case(
        "restored",
        lambda w: {"archived_at": None},
        lambda w: {"archived_at": "2026-04-30"},
        lambda w: [
            row(w, "has restored the issue", field="archived_at", old_value="archive", new_value="restore")
        ],
    ),
    Case(
        "closed_to_by_automation",  # current_instance is None: the tracker never reads it
        lambda w: data(w, "issue.activity.updated", {"closed_to": str(w.cancelled)}, None),
        lambda w: [
            row(
                w,
                "Plane updated the state to ",
                field="state",
                new_value="Cancelled",
                new_identifier=w.cancelled,
            )
        ],
    ),
    Case(
        "public_api_keys_and_request_order",
        lambda w: data(
            w,
            "issue.activity.updated",
            {"priority": "high", "labels": [str(w.bug), str(w.ui)], "state": str(w.done)},
            {"priority": "low", "labels": [str(w.bug)], "state": str(w.todo)},
        ),
        lambda w: [
            row(w, "updated the priority to", field="priority", old_value="low", new_value="high"),
            row(w, "added label ", field="labels", old_value="", new_value="ui", new_identifier=w.ui),
            row(
                w,
                "updated the state to",
                field="state",
                old_value="Todo",
                new_value="Done",
                old_identifier=w.todo,
                new_identifier=w.done,
            ),
        ],
    ),
    update_case(
        # FIXED: Label.objects.get raised for the deleted label and Plane lost the whole event.
        "deleted_label_left_out_other_rows_kept",
        lambda w: {"label_ids": [str(w.bug), str(w.ui)], "name": "Renamed"},
        lambda w: {"label_ids": []},
        lambda w: [
            row(w, "added label ", field="labels", old_value="", new_value="bug", new_identifier=w.bug),
            row(w, "updated the name to", field="name", old_value="Issue 7", new_value="Renamed"),
        ],
        seed=soft_delete("labels", "ui"),
        warnings=1,
    ),
]


CASES += [
    # --- issues ---------------------------------------------------------------------------------
    Case(
        "issue_created_with_assignees",  # the created row takes the issue's time and creator
        lambda w: data(
            w,
            "issue.activity.created",
            {"name": "Issue 7", "state_id": str(w.todo), "assignee_ids": [str(w.alice)], "label_ids": []},
            None,
        ),
        lambda w: [
            row(w, "created the issue", verb="created", actor_id=w.creator, created_at=ISSUE_CREATED_AT),
            row(
                w,
                "added assignee ",
                field="assignees",
                old_value="",
                new_value="alice",
                new_identifier=w.alice,
            ),
        ],
        subscribers=lambda w: [w.alice],
    ),
    Case(
        "issue_deleted",  # the API soft-deletes first, so the issue is not touched
        lambda w: data(w, "issue.activity.deleted", {"issue_id": str(w.issue)}, {}, subscriber=False),
        lambda w: [row(w, "deleted the issue", verb="deleted", field="issue")],
        touched=lambda w: [],
        seed=soft_delete("issues", "issue"),
    ),
    # --- comments -------------------------------------------------------------------------------
    Case(
        "comment_created",
        lambda w: data(w, "comment.activity.created", comment_data(w), None),
        lambda w: [
            row(
                w,
                "created a comment",
                verb="created",
                field="comment",
                new_value="<p>hi</p>",
                new_identifier=w.comment,
                issue_comment_id=w.comment,
            )
        ],
    ),
    Case(
        "comment_updated",
        lambda w: data(
            w,
            "comment.activity.updated",
            {"comment_html": "<p>edited</p>", "comment_json": {}},
            comment_data(w),
        ),
        lambda w: [
            row(
                w,
                "updated a comment",
                field="comment",
                old_value="<p>hi</p>",
                new_value="<p>edited</p>",
                old_identifier=w.comment,
                new_identifier=w.comment,
                issue_comment_id=w.comment,
            )
        ],
    ),
    Case(
        # FIXED: Plane compared with the absent comment_html and wrote "updated a comment" to "".
        "comment_access_change_is_no_edit",
        lambda w: data(w, "comment.activity.updated", {"access": "EXTERNAL"}, comment_data(w)),
        lambda w: [],
    ),
    Case(
        "comment_deleted",
        lambda w: data(w, "comment.activity.deleted", {"comment_id": str(w.comment)}, comment_data(w)),
        lambda w: [
            row(w, "deleted the comment", verb="deleted", field="comment", issue_comment_id=w.comment)
        ],
        seed=soft_delete("issue_comments", "comment"),
    ),
    # --- cycles and modules ---------------------------------------------------------------------
    Case(
        "cycle_issues_moved_and_added",
        lambda w: data(
            w,
            "cycle.activity.created",
            {"cycles_list": [str(w.issue), str(w.related)]},
            {
                "updated_cycle_issues": [
                    {"old_cycle_id": str(w.sprint1), "new_cycle_id": str(w.sprint2), "issue_id": str(w.issue)}
                ],
                "created_cycle_issues": created_cycle_issues(w),
            },
            issue_id=None,
        ),
        lambda w: [
            row(
                w,
                "updated cycle from Sprint 1\n                to Sprint 2",
                field="cycles",
                old_value="Sprint 1",
                new_value="Sprint 2",
                old_identifier=w.sprint1,
                new_identifier=w.sprint2,
            ),
            row(
                w,
                "added cycle Sprint 2",
                issue_id=w.related,
                verb="created",
                field="cycles",
                old_value="",
                new_value="Sprint 2",
                new_identifier=w.sprint2,
            ),
        ],
        touched=lambda w: [w.issue, w.related],
    ),
    Case(
        "cycle_issue_removed",
        lambda w: data(
            w, "cycle.activity.deleted", {"cycle_id": str(w.sprint1), "issues": [str(w.issue)]}, None
        ),
        lambda w: [
            row(
                w,
                "removed this issue from Sprint 1",
                verb="deleted",
                field="cycles",
                old_value="Sprint 1",
                new_value="",
                old_identifier=w.sprint1,
            )
        ],
    ),
    Case(
        "module_added",
        lambda w: data(w, "module.activity.created", {"module_id": str(w.backend)}, None),
        lambda w: [
            row(
                w,
                "added module Backend",
                verb="created",
                field="modules",
                old_value="",
                new_value="Backend",
                new_identifier=w.backend,
            )
        ],
    ),
    Case(
        "module_removed",
        lambda w: data(
            w, "module.activity.deleted", {"module_id": str(w.backend)}, {"module_name": "Backend"}
        ),
        lambda w: [
            row(
                w,
                "removed this issue from Backend",
                verb="deleted",
                field="modules",
                old_value="Backend",
                new_value="",
                old_identifier=w.backend,
            )
        ],
    ),
    Case(
        # FIXED: Plane wrote old_value NULL and "removed this issue from None".
        "module_removed_without_module_name",
        lambda w: data(w, "module.activity.deleted", {"module_id": str(w.backend)}, {"module_name": None}),
        lambda w: [
            row(
                w,
                "removed this issue from Backend",
                verb="deleted",
                field="modules",
                old_value="Backend",
                new_value="",
                old_identifier=w.backend,
            )
        ],
    ),
]


LINK = "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
ASSET = "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a"
VOTE = "2b3c4d5e-6f70-4182-93a4-b5c6d7e8f901"

CASES += [
    # --- links and attachments ------------------------------------------------------------------
    Case(
        "link_created",
        lambda w: data(
            w,
            "link.activity.created",
            {"id": LINK, "url": "https://a.example", "title": None, "metadata": {}},
        ),
        lambda w: [
            row(
                w,
                "created a link",
                verb="created",
                field="link",
                new_value="https://a.example",
                new_identifier=uuid.UUID(LINK),
            )
        ],
    ),
    Case(
        "link_updated",
        lambda w: data(
            w, "link.activity.updated", {"url": "https://b.example"}, {"id": LINK, "url": "https://a.example"}
        ),
        lambda w: [
            row(
                w,
                "updated a link",
                field="link",
                old_value="https://a.example",
                new_value="https://b.example",
                old_identifier=uuid.UUID(LINK),
                new_identifier=uuid.UUID(LINK),
            )
        ],
    ),
    Case(
        "link_title_change_is_no_url_edit",  # FIXED, as for comments
        lambda w: data(
            w, "link.activity.updated", {"title": "Spec"}, {"id": LINK, "url": "https://a.example"}
        ),
        lambda w: [],
    ),
    Case(
        "link_deleted",
        lambda w: data(
            w, "link.activity.deleted", {"link_id": LINK}, {"id": LINK, "url": "https://a.example"}
        ),
        lambda w: [
            row(
                w,
                "deleted the link",
                verb="deleted",
                field="link",
                old_value="https://a.example",
                new_value="",
            )
        ],
    ),
    Case(
        "attachment_created",  # requested_data is None; the asset comes from current_instance
        lambda w: data(
            w,
            "attachment.activity.created",
            None,
            {"id": ASSET, "asset": f"{w.ws}/{ASSET}-report.pdf", "attributes": {"name": "report.pdf"}},
        ),
        lambda w: [
            row(
                w,
                "created an attachment",
                verb="created",
                field="attachment",
                new_value=f"{w.ws}/{ASSET}-report.pdf",
                new_identifier=uuid.UUID(ASSET),
            )
        ],
    ),
    Case(
        "attachment_deleted",
        lambda w: data(w, "attachment.activity.deleted", None, None),
        lambda w: [row(w, "deleted the attachment", verb="deleted", field="attachment")],
    ),
    # --- relations ------------------------------------------------------------------------------
    Case(
        "relation_created_writes_the_inverse_on_the_related_issue",
        lambda w: data(
            w, "issue_relation.activity.created", {"relation_type": "blocking", "issues": [str(w.related)]}
        ),
        lambda w: [
            row(
                w,
                "added blocking relation",
                field="blocking",
                old_value="",
                new_value="WEB-8",
                old_identifier=w.related,
            ),
            row(
                w,
                "added blocked_by relation",
                issue_id=w.related,
                field="blocked_by",
                old_value="",
                new_value="WEB-7",
                old_identifier=w.issue,
            ),
        ],
    ),
    Case(
        "relation_created_symmetric",
        lambda w: data(
            w,
            "issue_relation.activity.created",
            {"relation_type": "relates_to", "issues": [str(w.ops_issue)]},
        ),
        lambda w: [
            row(
                w,
                "added relates_to relation",
                field="relates_to",
                old_value="",
                new_value="OPS-1",
                old_identifier=w.ops_issue,
            ),
            row(
                w,
                "added relates_to relation",
                issue_id=w.ops_issue,
                field="relates_to",
                old_value="",
                new_value="WEB-7",
                old_identifier=w.issue,
            ),
        ],
    ),
    Case(
        # FIXED: Plane's mirror kept field/comment "start_before" (only blocked_by/blocking were
        # swapped) and pointed old_identifier at the related issue itself.
        "relation_deleted_mirror_is_the_inverse",
        lambda w: data(
            w,
            "issue_relation.activity.deleted",
            {"related_issue": str(w.related), "relation_type": "start_before"},
            {"id": "3c4d5e6f-7081-4293-a4b5-c6d7e8f90a1b", "relation_type": "start_before"},
        ),
        lambda w: [
            row(
                w,
                "deleted start_before relation",
                verb="deleted",
                field="start_before",
                old_value="WEB-8",
                new_value="",
                old_identifier=w.related,
            ),
            row(
                w,
                "deleted start_after relation",
                issue_id=w.related,
                verb="deleted",
                field="start_after",
                old_value="WEB-7",
                new_value="",
                old_identifier=w.issue,
            ),
        ],
    ),
    # --- reactions and votes --------------------------------------------------------------------
    Case(
        "issue_reaction_created",
        lambda w: data(w, "issue_reaction.activity.created", {"reaction": "128077"}),
        lambda w: [
            row(
                w,
                "added the reaction",
                verb="created",
                field="reaction",
                new_value="128077",
                new_identifier=w.issue_reaction,
            )
        ],
    ),
    Case(
        "issue_reaction_deleted",
        lambda w: data(
            w,
            "issue_reaction.activity.deleted",
            None,
            {"reaction": "128077", "identifier": str(w.issue_reaction)},
        ),
        lambda w: [
            row(
                w,
                "removed the reaction",
                verb="deleted",
                field="reaction",
                old_value="128077",
                old_identifier=w.issue_reaction,
            )
        ],
    ),
    Case(
        "comment_reaction_created_lands_on_the_comments_issue",
        lambda w: data(w, "comment_reaction.activity.created", {"reaction": "128512"}, None, issue_id=None),
        lambda w: [
            row(
                w,
                "added the reaction",
                verb="created",
                field="reaction",
                new_value="128512",
                new_identifier=w.comment_reaction,
            )
        ],
        touched=lambda w: [],
    ),
    Case(
        "comment_reaction_deleted",
        lambda w: data(
            w,
            "comment_reaction.activity.deleted",
            None,
            {"reaction": "128512", "identifier": str(w.comment_reaction), "comment_id": str(w.comment)},
            issue_id=None,
        ),
        lambda w: [
            row(
                w,
                "removed the reaction",
                verb="deleted",
                field="reaction",
                old_value="128512",
                old_identifier=w.comment_reaction,
            )
        ],
        touched=lambda w: [],
    ),
    Case(
        "vote_created",
        lambda w: data(w, "issue_vote.activity.created", {"vote": 1}),
        lambda w: [row(w, "added the vote", field="vote", new_value="1")],
    ),
    Case(
        "vote_deleted",
        lambda w: data(w, "issue_vote.activity.deleted", None, {"vote": -1, "identifier": VOTE}),
        lambda w: [
            row(
                w,
                "removed the vote",
                verb="deleted",
                field="vote",
                old_value="-1",
                old_identifier=uuid.UUID(VOTE),
            )
        ],
    ),
    # --- drafts and intake ----------------------------------------------------------------------
    Case(
        "draft_created",
        lambda w: data(w, "issue_draft.activity.created", {"name": "Draft"}),
        lambda w: [row(w, "drafted the issue", verb="created", field="draft")],
    ),
    Case(
        "draft_published",
        lambda w: data(
            w, "issue_draft.activity.updated", {"is_draft": False}, issue_detail(w, is_draft=True)
        ),
        lambda w: [row(w, "created the issue")],
    ),
    Case(
        "draft_updated",
        lambda w: data(
            w, "issue_draft.activity.updated", {"name": "Draft 2"}, issue_detail(w, is_draft=True)
        ),
        lambda w: [row(w, "updated the draft issue", field="draft")],
    ),
    Case(
        "draft_deleted",  # Plane writes it without an issue
        lambda w: data(w, "issue_draft.activity.deleted", None),
        lambda w: [row(w, "deleted the draft issue", verb="deleted", field="draft", issue_id=None)],
    ),
    Case(
        "intake_status_accepted",  # the verb is the status number
        lambda w: data(
            w,
            "intake.activity.created",
            {"status": 1},
            {"id": str(uuid.uuid4()), "status": -2},
            notification=False,
        ),
        lambda w: [
            row(
                w,
                "updated the intake status",
                verb="1",
                field="intake",
                old_value="Pending",
                new_value="Accepted",
            )
        ],
    ),
]


@pytest.fixture
def engine(database_url: str) -> Engine:
    """Only PostgreSQL: these tests need no broker."""
    return get_engine(database_url)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_rows_match_plane_column_by_column(engine: Engine, case: Case) -> None:
    with engine.begin() as conn:
        w = build_world(conn)
        if case.seed is not None:
            case.seed(conn, w)
    event = case.event(w)
    with engine.begin() as conn:  # committing checks the deferred foreign keys
        [result] = translate_with_db(conn, [("evt-" + case.name, event)], now=NOW)
        assert isinstance(result, ActivityResult), result
        apply(conn, result, NOW)
    with engine.connect() as conn:
        stored = stored_rows(conn, [r.id for r in result.rows])
        got = [{k: v for k, v in stored[r.id].items() if k != "id"} for r in result.rows]
        if case.check is not None:
            case.check(conn, w, result)
        subscribers = conn.execute(
            text(
                "SELECT subscriber_id, created_by_id, updated_by_id FROM issue_subscribers"
                " WHERE issue_id = :i"
            ),
            {"i": w.issue},
        ).all()
    expected = []
    for i, want in enumerate(case.rows(w)):
        at = NOW + i * US
        expected.append({"created_at": at, "updated_at": at, **want})
    assert got == expected
    assert all(r.id.version == 4 for r in result.rows)
    assert result.touch_issue_ids == case.touched(w)
    assert [tuple(s) for s in subscribers] == [(u, u, u) for u in case.subscribers(w)]
    assert len(result.warnings) == case.warnings, result.warnings
    assert result.skipped is None


def test_touched_issue_gets_updated_at_and_keeps_its_authors(engine: Engine) -> None:
    """Bug 8: Plane's Celery-context save() nulled created_by_id/updated_by_id; only updated_at moves."""
    with engine.begin() as conn:
        w = build_world(conn)
        conn.execute(text("UPDATE issues SET updated_by_id = created_by_id WHERE id = :i"), {"i": w.issue})
    event = data(w, "issue.activity.updated", {"priority": "high"}, issue_detail(w))
    with engine.begin() as conn:
        [result] = translate_with_db(conn, [("e", event)], now=NOW)
        assert isinstance(result, ActivityResult)
        apply(conn, result, NOW)
    with engine.connect() as conn:
        got = conn.execute(
            text("SELECT updated_at, created_by_id, updated_by_id FROM issues WHERE id = :i"), {"i": w.issue}
        ).one()
    assert tuple(got) == (NOW, w.creator, w.creator)


def test_soft_deleted_project_is_skipped_without_rows(engine: Engine) -> None:
    with engine.begin() as conn:
        w = build_world(conn)
        conn.execute(text("UPDATE projects SET deleted_at = now() WHERE id = :p"), {"p": w.project})
        [result] = translate_with_db(
            conn, [("e", data(w, "issue.activity.updated", {"name": "x"}, {"name": "y"}))], now=NOW
        )
    assert isinstance(result, ActivityResult)
    assert result.rows == [] and result.skipped == f"project {w.project} does not exist or is deleted"


def test_a_batch_costs_one_query_per_kind_and_round(engine: Engine) -> None:
    """Twenty mixed events prefetch with a handful of queries, not one per lookup as Plane's ORM."""
    from sqlalchemy import event as sa_event

    with engine.begin() as conn:
        w = build_world(conn)
    state = data(
        w, "issue.activity.updated", {"state_id": str(w.done), "label_ids": [str(w.ui)]}, issue_detail(w)
    )
    events = [(f"s{i}", state) for i in range(10)]
    for i in range(10):  # one actor's autosaves, back to back
        edit = data(w, "issue.activity.updated", {"description_html": f"<p>{i}</p>"}, issue_detail(w))
        events.append((f"d{i}", edit))
    statements: list[str] = []
    with engine.begin() as conn:
        sa_event.listen(conn, "before_cursor_execute", lambda *a: statements.append(a[2]))
        outcomes = translate_with_db(conn, events, now=NOW)
    assert all(isinstance(o, ActivityResult) for o in outcomes)
    assert len(statements) <= 10, statements
    # Only the first description edit writes a row; the other nine coalesce into it.
    descriptions = [o for o in outcomes[10:] if isinstance(o, ActivityResult)]
    assert [len(o.rows) for o in descriptions] == [1] + [0] * 9
    assert {b.activity_id for o in descriptions for b in o.description_bumps} == {descriptions[0].rows[0].id}
