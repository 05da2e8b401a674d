"""Plane's `issue_activity` and `notifications` tasks on Celery: the baseline of `bench_activity`.

Written from Plane's `bgtasks/issue_activities_task.py` and `bgtasks/notification_task.py` (spec
§5.1-5.2), one SQL statement per Django ORM call, in Plane's order:
- `issue_activity`: `Project.objects.get`, `Issue.objects.filter().first()` and its
  `save(update_fields=["updated_at"])`, the tracker's lookups (`State` x2, `Label.get` and
  `User.get` per id, the latest activity for a description), `IssueSubscriber.bulk_create` for
  added assignees, one `IssueActivity.objects.bulk_create` (one multi-row INSERT, as Django does),
  then `IssueActivitySerializer(created, many=True)`: its actor/issue/project/workspace details
  are lazy foreign keys, so four SELECTs per created row; `notifications.delay(...)` chained when
  the event asks for notifications, as Plane does.
- `notifications`: the project members, mentions parsed from requested/current (five parses, as
  Plane's helpers each re-parse), per mention the `.exists()` chain of
  `extract_mentions_as_subscribers`, the subscribers, the issue, `get_or_create` of the actor's
  subscription, the project, the assignees (lazily, once), per subscriber its
  `UserNotificationPreference.get`, per comment activity the comment, the lazy `issue.project`,
  `issue.state`, `project.workspace`, `issue.project.workspace` (once each), the latest activity,
  the actor, then `bulk_create` of mentions, notifications and e-mail logs (one INSERT each) and
  the soft delete of removed mentions.
The types implemented are those `bench_activity` sends (issue updates of name, priority, state,
dates, description, labels, assignees; comments created/updated); anything else is skipped.

Stand-ins, all faithful-or-faster, so the baseline is if anything optimistic for Celery:
- raw psycopg2, one autocommit connection per worker process kept for its life: Plane's
  `dj_database_url.config()` leaves CONN_MAX_AGE at 0, so Django opens a connection per task;
  and no ORM model instantiation or query compilation per statement;
- mentions parsed with lexbor (selectolax, C) instead of BeautifulSoup's html.parser;
- no Redis `SET` of the request origin (no Redis here).
Each run uses a queue of its own (`start_worker`); Plane sends everything to `celery`.

Environment read by the worker: `BENCH_DATABASE_URL` (required), `BENCH_BROKER_URL`,
`BENCH_CELERY_QUEUE`.
"""

from __future__ import annotations

import datetime
import json
import subprocess
import uuid
from typing import Any

import psycopg2
import psycopg2.extras
from selectolax.lexbor import LexborHTMLParser

from tests.benchmarks import celery_worker as worker
from tests.benchmarks.celery_worker import connection, logger, plane_app

app = plane_app("plane_bench_activity")

psycopg2.extras.register_uuid()

# --- database: one autocommit connection per worker process ---


def _cur() -> Any:
    return connection("celery-activity-bench").cursor(cursor_factory=psycopg2.extras.RealDictCursor)


def _one(sql: str, params: tuple[Any, ...]) -> dict[str, Any] | None:
    with _cur() as cur:
        cur.execute(sql, params)
        return cur.fetchone()


def _all(sql: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
    with _cur() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def _exec(sql: str, params: Any) -> None:
    with _cur() as cur:
        cur.execute(sql, params)


def _values(sql: str, rows: list[tuple[Any, ...]]) -> None:
    """One multi-row INSERT (Django's bulk_create with batch_size >= len(rows))."""
    if rows:
        with _cur() as cur:
            psycopg2.extras.execute_values(cur, sql, rows, page_size=max(100, len(rows)))


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def is_valid_uuid(value: Any) -> bool:
    try:
        return uuid.UUID(str(value)).version == 4
    except ValueError:
        return False


def _iso(value: Any) -> Any:
    """DjangoJSONEncoder for what the serializers below emit."""
    if isinstance(value, datetime.datetime):
        r = value.isoformat()
        if value.microsecond:
            r = r[:23] + r[26:]
        return r[:-6] + "Z" if r.endswith("+00:00") else r
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


# --- issue_activity (§5.1) ---

PROJECT = "SELECT * FROM projects WHERE id = %s AND deleted_at IS NULL LIMIT 21"
ISSUE = "SELECT * FROM issues WHERE id = %s AND deleted_at IS NULL LIMIT 1"
STATE = "SELECT * FROM states WHERE id = %s AND project_id = %s AND deleted_at IS NULL LIMIT 1"
LABEL = "SELECT * FROM labels WHERE id = %s AND deleted_at IS NULL LIMIT 21"
USER = "SELECT * FROM users WHERE id = %s LIMIT 21"
LATEST_ACTIVITY = (
    "SELECT * FROM issue_activities WHERE issue_id = %s AND deleted_at IS NULL "
    "ORDER BY created_at DESC LIMIT 1"
)
ACTIVITY_COLUMNS = (
    "created_at, updated_at, id, verb, field, old_value, new_value, comment, attachments, issue_id, "
    "issue_comment_id, project_id, workspace_id, actor_id, new_identifier, old_identifier, epoch"
)
INSERT_ACTIVITIES = f"INSERT INTO issue_activities ({ACTIVITY_COLUMNS}) VALUES %s RETURNING id"
INSERT_SUBSCRIBERS = (
    "INSERT INTO issue_subscribers (created_at, updated_at, id, created_by_id, updated_by_id, "
    "issue_id, project_id, subscriber_id, workspace_id) VALUES %s ON CONFLICT DO NOTHING"
)


def _activity(ctx: dict[str, Any], **values: Any) -> dict[str, Any]:
    return {
        "verb": "updated",
        "field": None,
        "old_value": None,
        "new_value": None,
        "comment": "",
        "issue_comment_id": None,
        "attachments": [],
        "old_identifier": None,
        "new_identifier": None,
        **ctx,
        **values,
    }


def _simple(field: str, comment: str, blank: bool = False) -> Any:
    def track(
        req: dict[str, Any], cur: dict[str, Any], ctx: dict[str, Any], out: list[dict[str, Any]]
    ) -> None:
        if cur.get(field) != req.get(field):
            old, new = cur.get(field), req.get(field)
            if blank:
                old, new = ("" if old is None else old), ("" if new is None else new)
            out.append(_activity(ctx, field=field, old_value=old, new_value=new, comment=comment))

    return track


def track_state(
    req: dict[str, Any], cur: dict[str, Any], ctx: dict[str, Any], out: list[dict[str, Any]]
) -> None:
    current_id = cur.get("state_id") or cur.get("state")
    requested_id = req.get("state_id") or req.get("state")
    current_id = current_id if current_id is not None and is_valid_uuid(current_id) else None
    requested_id = requested_id if requested_id is not None and is_valid_uuid(requested_id) else None
    if current_id != requested_id:
        new = _one(STATE, (requested_id, ctx["project_id"]))
        old = _one(STATE, (current_id, ctx["project_id"]))
        out.append(
            _activity(
                ctx,
                field="state",
                comment="updated the state to",
                old_value=old["name"] if old else None,
                new_value=new["name"] if new else None,
                old_identifier=old["id"] if old else None,
                new_identifier=new["id"] if new else None,
            )
        )


def track_description(
    req: dict[str, Any], cur: dict[str, Any], ctx: dict[str, Any], out: list[dict[str, Any]]
) -> None:
    if cur.get("description_html") != req.get("description_html"):
        last = _one(LATEST_ACTIVITY, (ctx["issue_id"],))
        if last is not None and last["field"] == "description" and ctx["actor_id"] == str(last["actor_id"]):
            _exec("UPDATE issue_activities SET created_at = %s WHERE id = %s", (_now(), last["id"]))
        else:
            out.append(
                _activity(
                    ctx,
                    field="description",
                    comment="updated the description to",
                    old_value=cur.get("description_html"),
                    new_value=req.get("description_html"),
                )
            )


def _ids(data: dict[str, Any] | None, primary: str, fallback: str) -> set[str]:
    if not data:
        return set()
    return {str(x) for x in data.get(primary if primary in data else fallback, [])}


def track_labels(
    req: dict[str, Any], cur: dict[str, Any], ctx: dict[str, Any], out: list[dict[str, Any]]
) -> None:
    requested, current = _ids(req, "label_ids", "labels"), _ids(cur, "label_ids", "labels")
    for added in requested - current:
        if is_valid_uuid(added):
            label = _one(LABEL, (added,))
            assert label is not None
            out.append(
                _activity(
                    ctx,
                    field="labels",
                    comment="added label ",
                    old_value="",
                    new_value=label["name"],
                    new_identifier=label["id"],
                )
            )
    for dropped in current - requested:
        if is_valid_uuid(dropped):
            label = _one(LABEL, (dropped,))
            assert label is not None
            out.append(
                _activity(
                    ctx,
                    field="labels",
                    comment="removed label ",
                    old_value=label["name"],
                    new_value="",
                    old_identifier=label["id"],
                )
            )


def track_assignees(
    req: dict[str, Any], cur: dict[str, Any], ctx: dict[str, Any], out: list[dict[str, Any]]
) -> None:
    requested, current = _ids(req, "assignee_ids", "assignees"), _ids(cur, "assignee_ids", "assignees")
    subscribers = []
    for added in requested - current:
        if is_valid_uuid(added):
            user = _one(USER, (added,))
            assert user is not None
            out.append(
                _activity(
                    ctx,
                    field="assignees",
                    comment="added assignee ",
                    old_value="",
                    new_value=user["display_name"],
                    new_identifier=user["id"],
                )
            )
            now, who = _now(), (user["id"], ctx["workspace_id"])
            subscribers.append(
                (now, now, uuid.uuid4(), user["id"], user["id"], ctx["issue_id"], ctx["project_id"], *who)
            )
    _values(INSERT_SUBSCRIBERS, subscribers)  # bulk_create(batch_size=10, ignore_conflicts=True)
    for dropped in current - requested:
        if is_valid_uuid(dropped):
            user = _one(USER, (dropped,))
            assert user is not None
            out.append(
                _activity(
                    ctx,
                    field="assignees",
                    comment="removed assignee ",
                    old_value=user["display_name"],
                    new_value="",
                    old_identifier=user["id"],
                )
            )


TRACKERS = {
    "name": _simple("name", "updated the name to"),
    "priority": _simple("priority", "updated the priority to"),
    "state_id": track_state,
    "state": track_state,
    "description_html": track_description,
    "target_date": _simple("target_date", "updated the target date to", blank=True),
    "start_date": _simple("start_date", "updated the start date to ", blank=True),
    "label_ids": track_labels,
    "labels": track_labels,
    "assignee_ids": track_assignees,
    "assignees": track_assignees,
}


def update_issue_activity(req: Any, cur: Any, ctx: dict[str, Any], out: list[dict[str, Any]]) -> None:
    requested = json.loads(req) if req is not None else None
    current = json.loads(cur) if cur is not None else None
    for key in requested:
        track = TRACKERS.get(key)
        if track is not None:
            track(requested, current, ctx, out)


def create_comment_activity(req: Any, cur: Any, ctx: dict[str, Any], out: list[dict[str, Any]]) -> None:
    requested = json.loads(req) if req is not None else None
    out.append(
        _activity(
            ctx,
            verb="created",
            field="comment",
            comment="created a comment",
            new_value=requested.get("comment_html", ""),
            new_identifier=requested.get("id"),
            issue_comment_id=requested.get("id"),
        )
    )


def update_comment_activity(req: Any, cur: Any, ctx: dict[str, Any], out: list[dict[str, Any]]) -> None:
    requested = json.loads(req) if req is not None else None
    current = json.loads(cur) if cur is not None else None
    if current.get("comment_html") != requested.get("comment_html"):
        out.append(
            _activity(
                ctx,
                field="comment",
                comment="updated a comment",
                old_value=current.get("comment_html", ""),
                old_identifier=current.get("id"),
                new_value=requested.get("comment_html", ""),
                new_identifier=current.get("id"),
                issue_comment_id=current.get("id"),
            )
        )


ACTIVITY_MAPPER = {
    "issue.activity.updated": update_issue_activity,
    "comment.activity.created": create_comment_activity,
    "comment.activity.updated": update_comment_activity,
}


def _row_json(row: dict[str, Any], columns: list[str]) -> dict[str, Any]:
    return {c: _iso(row.get(c)) for c in columns}


USER_LITE = ["id", "first_name", "last_name", "avatar", "is_bot", "display_name"]
ISSUE_FLAT = ["id", "name", "description_json", "description_html", "priority", "start_date", "target_date"]
ISSUE_FLAT += ["sequence_id", "sort_order", "is_draft"]
PROJECT_LITE = ["id", "identifier", "name", "cover_image", "logo_props", "description"]
WORKSPACE_LITE = ["name", "slug", "id", "logo"]


def serialize_activities(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """IssueActivitySerializer(many=True).data: each *_detail a lazy FK, one SELECT per row each."""
    data = []
    for row in rows:
        actor = _one(USER, (row["actor_id"],)) if row["actor_id"] else None
        issue = _one("SELECT * FROM issues WHERE id = %s LIMIT 21", (row["issue_id"],))
        project = _one("SELECT * FROM projects WHERE id = %s LIMIT 21", (row["project_id"],))
        workspace = _one("SELECT * FROM workspaces WHERE id = %s LIMIT 21", (row["workspace_id"],))
        item = {
            "id": str(row["id"]),
            "actor_detail": _row_json(actor, USER_LITE) if actor else None,
            "issue_detail": _row_json(issue, ISSUE_FLAT) if issue else None,
            "project_detail": _row_json(project, PROJECT_LITE) if project else None,
            "workspace_detail": _row_json(workspace, WORKSPACE_LITE) if workspace else None,
            "source_data": None,
            "created_at": _iso(row["created_at"]),
            "updated_at": _iso(row["updated_at"]),
            "deleted_at": None,
            "verb": row["verb"],
            "field": row["field"],
            "old_value": row["old_value"],
            "new_value": row["new_value"],
            "comment": row["comment"],
            "attachments": [],
            "old_identifier": _iso(row["old_identifier"]),
            "new_identifier": _iso(row["new_identifier"]),
            "epoch": row["epoch"],
            "created_by": None,
            "updated_by": None,
            "project": str(row["project_id"]),
            "workspace": str(row["workspace_id"]),
            "issue": _iso(row["issue_id"]),
            "issue_comment": _iso(row["issue_comment_id"]),
            "actor": _iso(row["actor_id"]),
        }
        data.append(item)
    return data


@app.task
def issue_activity(
    type: str,
    requested_data: str | None,
    current_instance: str | None,
    issue_id: str | None,
    actor_id: str,
    project_id: str,
    epoch: int,
    subscriber: bool = True,
    notification: bool = False,
    origin: str | None = None,
    intake: Any = None,
) -> None:
    try:
        if not is_valid_uuid(str(project_id)):
            return
        project = _one(PROJECT, (project_id,))
        if project is None:
            raise LookupError(f"Project {project_id} does not exist")
        if issue_id is not None:
            issue = _one(ISSUE, (issue_id,))
            if issue:
                _exec("UPDATE issues SET updated_at = %s WHERE id = %s", (_now(), issue["id"]))
        ctx = {
            "issue_id": issue_id,
            "project_id": project_id,
            "workspace_id": project["workspace_id"],
            "actor_id": actor_id,
            "epoch": epoch,
        }
        rows: list[dict[str, Any]] = []
        handler = ACTIVITY_MAPPER.get(type)
        if handler is not None:
            handler(requested_data, current_instance, ctx, rows)
        now = _now()
        for row in rows:
            row.update(id=uuid.uuid4(), created_at=now, updated_at=now)
        _values(
            INSERT_ACTIVITIES,
            [tuple(r[c] for c in ACTIVITY_COLUMNS.split(", ")) for r in rows],
        )
        if notification:
            notifications.delay(
                type=type,
                issue_id=issue_id,
                actor_id=actor_id,
                project_id=project_id,
                subscriber=subscriber,
                issue_activities_created=json.dumps(serialize_activities(rows)),
                requested_data=requested_data,
                current_instance=current_instance,
            )
    except Exception:
        logger.exception("issue_activity failed")


# --- notifications (§5.2) ---

SKIPPED_TYPES = {
    f"{kind}.activity.{verb}"
    for kind in ("cycle", "module", "issue_reaction", "comment_reaction", "issue_vote")
    for verb in ("created", "deleted")
} | {f"issue_draft.activity.{verb}" for verb in ("created", "updated", "deleted")}
MEMBERS = "SELECT member_id FROM project_members WHERE project_id = %s AND is_active AND deleted_at IS NULL"
PREFERENCE = "SELECT * FROM user_notification_preferences WHERE user_id = %s AND deleted_at IS NULL LIMIT 21"


def _html_mentions(html: Any) -> list[str]:
    """BeautifulSoup's find_all("mention-component", entity_name="user_mention"): always a parse."""
    tree = LexborHTMLParser(html)
    return [
        n.attributes["entity_identifier"]
        for n in tree.css("mention-component")
        if n.attributes.get("entity_name") == "user_mention"
    ]


def extract_mentions(issue_instance: Any) -> list[str]:
    try:
        html = json.loads(issue_instance).get("description_html")
        if not isinstance(html, str):
            raise TypeError("no description")  # BeautifulSoup(None) raises as well
        return list(set(_html_mentions(html)))
    except Exception:
        return []


def extract_comment_mentions(value: Any) -> list[str]:
    try:
        return list(set(_html_mentions(value)))
    except Exception:
        return []


def extract_mentions_as_subscribers(
    project_id: str, issue_id: str, mentions: list[str]
) -> list[tuple[Any, ...]]:
    found = []
    for mention in mentions:
        if (
            not _one(
                "SELECT 1 FROM issue_subscribers WHERE issue_id = %s AND subscriber_id = %s "
                "AND project_id = %s AND deleted_at IS NULL LIMIT 1",
                (issue_id, mention, project_id),
            )
            and not _one(
                "SELECT 1 FROM issue_assignees WHERE project_id = %s AND issue_id = %s AND assignee_id = %s "
                "AND deleted_at IS NULL LIMIT 1",
                (project_id, issue_id, mention),
            )
            and not _one(
                "SELECT 1 FROM issues WHERE project_id = %s AND id = %s AND created_by_id = %s "
                "AND deleted_at IS NULL LIMIT 1",
                (project_id, issue_id, mention),
            )
            and _one(
                "SELECT 1 FROM project_members WHERE project_id = %s AND member_id = %s AND is_active "
                "AND deleted_at IS NULL LIMIT 1",
                (project_id, mention),
            )
        ):
            project = _one(PROJECT, (project_id,))
            assert project is not None
            now = _now()
            found.append(
                (now, now, uuid.uuid4(), None, None, issue_id, project_id, mention, project["workspace_id"])
            )
    return found


class _Lazy:
    """Django's lazy foreign keys on one instance: the first access queries, later ones are cached."""

    def __init__(self) -> None:
        self.cache: dict[str, Any] = {}

    def get(self, name: str, sql: str, key: Any) -> dict[str, Any]:
        if name not in self.cache:
            self.cache[name] = _one(sql, (key,))
        return self.cache[name]


def _issue_block(issue: dict[str, Any], lazy: _Lazy, full: bool) -> dict[str, Any]:
    project = lazy.get("issue.project", "SELECT * FROM projects WHERE id = %s LIMIT 21", issue["project_id"])
    state = lazy.get("issue.state", "SELECT * FROM states WHERE id = %s LIMIT 21", issue["state_id"])
    block = {
        "id": str(issue["id"]),
        "name": str(issue["name"]),
        "identifier": str(project["identifier"]),
        "sequence_id": issue["sequence_id"],
        "state_name": state["name"],
        "state_group": state["group"],
    }
    if full:
        ws = lazy.get(
            "issue.project.workspace", "SELECT * FROM workspaces WHERE id = %s", project["workspace_id"]
        )
        block |= {"project_id": str(project["id"]), "workspace_slug": str(ws["slug"])}
    return block


def _activity_block(a: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "id": str(a.get("id")),
        "verb": str(a.get("verb")),
        "field": str(a.get("field")),
        "actor": str(a.get("actor_id")),
        "new_value": str(a.get("new_value")),
        "old_value": str(a.get("old_value")),
        "old_identifier": str(a.get("old_identifier")) if a.get("old_identifier") else None,
        "new_identifier": str(a.get("new_identifier")) if a.get("new_identifier") else None,
        **extra,
    }


INSERT_NOTIFICATIONS = (
    "INSERT INTO notifications (created_at, updated_at, id, data, entity_identifier, entity_name, "
    "title, message, message_html, message_stripped, sender, project_id, receiver_id, triggered_by_id, "
    "workspace_id) VALUES %s"
)
INSERT_EMAIL_LOGS = (
    "INSERT INTO email_notification_logs (created_at, updated_at, id, entity_identifier, entity_name, data, "
    "entity, receiver_id, triggered_by_id) VALUES %s ON CONFLICT DO NOTHING"
)
INSERT_MENTIONS = (
    "INSERT INTO issue_mentions (created_at, updated_at, id, created_by_id, updated_by_id, issue_id, "
    "mention_id, project_id, workspace_id) VALUES %s"
)


def _notification(
    project: dict[str, Any], sender: str, actor_id: str, receiver: Any, issue_id: str, data: Any, **v: Any
) -> tuple[Any, ...]:
    now = _now()
    message = v.get("message")
    return (
        now,
        now,
        uuid.uuid4(),
        psycopg2.extras.Json(data),
        issue_id,
        "issue",
        v.get("title") or "",
        psycopg2.extras.Json(message) if message is not None else None,
        "",
        None,
        sender,
        project["id"],
        receiver,
        actor_id,
        project["workspace_id"],
    )


def _email_log(actor_id: str, receiver: Any, issue_id: str, data: Any) -> tuple[Any, ...]:
    now = _now()
    return (now, now, uuid.uuid4(), issue_id, "issue", psycopg2.extras.Json(data), "", receiver, actor_id)


@app.task
def notifications(
    type: str,
    issue_id: str,
    project_id: str,
    actor_id: str,
    subscriber: bool,
    issue_activities_created: str | None,
    requested_data: str | None,
    current_instance: str | None,
) -> None:
    try:
        activities = json.loads(issue_activities_created) if issue_activities_created is not None else None
        if type in SKIPPED_TYPES:
            return
        notes: list[tuple[Any, ...]] = []
        emails: list[tuple[Any, ...]] = []
        members = [r["member_id"] for r in _all(MEMBERS, (project_id,))]  # evaluated once, then cached
        member_ids = set(members)
        older, newer = extract_mentions(current_instance), extract_mentions(requested_data)
        new_mentions = [m for m in newer if m not in older]
        new_mentions = list(set(new_mentions) & {str(m) for m in members})
        older, newer = extract_mentions(current_instance), extract_mentions(requested_data)
        removed_mention = [m for m in older if m not in newer]
        comment_mentions: list[str] = []
        all_comment_mentions: list[str] = []
        requested_mentions = extract_mentions(requested_data)
        mention_subscribers = extract_mentions_as_subscribers(project_id, issue_id, requested_mentions)
        for activity in activities:
            if activity.get("issue_comment") is not None:
                new_value, old_value = activity.get("new_value"), activity.get("old_value")
                all_comment_mentions += extract_comment_mentions(new_value)
                newer = extract_comment_mentions(new_value)
                if old_value is not None:
                    older = extract_comment_mentions(old_value)
                    newer = [m for m in newer if m not in older]
                comment_mentions = [m for m in comment_mentions + newer if uuid.UUID(m) in member_ids]
        comment_mention_subscribers = extract_mentions_as_subscribers(
            project_id, issue_id, all_comment_mentions
        )
        excluded = list({*new_mentions, *comment_mentions, actor_id})
        subscribers = [
            r["subscriber_id"]
            for r in _all(
                "SELECT subscriber_id FROM issue_subscribers WHERE project_id = %s AND issue_id = %s "
                "AND deleted_at IS NULL AND subscriber_id IN (" + MEMBERS + ") "
                "AND NOT (subscriber_id = ANY(%s::uuid[]))",
                (project_id, issue_id, project_id, excluded),
            )
        ]
        issue = _one(ISSUE, (issue_id,))
        assert issue is not None
        lazy = _Lazy()
        if subscriber:
            try:
                got = _one(
                    "SELECT * FROM issue_subscribers WHERE project_id = %s AND issue_id = %s "
                    "AND subscriber_id = %s AND deleted_at IS NULL LIMIT 21",
                    (project_id, issue_id, actor_id),
                )
                if got is None:
                    now = _now()
                    _values(
                        INSERT_SUBSCRIBERS.replace(" ON CONFLICT DO NOTHING", ""),
                        [
                            (
                                now,
                                now,
                                uuid.uuid4(),
                                None,
                                None,
                                issue_id,
                                project_id,
                                actor_id,
                                issue["workspace_id"],
                            )
                        ],
                    )
            except Exception:
                pass
        project = _one(PROJECT, (project_id,))
        assert project is not None
        assignees: list[Any] | None = None
        for receiver in set(subscribers) - {uuid.UUID(actor_id)}:
            if issue["created_by_id"] and issue["created_by_id"] == receiver:
                sender = "in_app:issue_activities:created"
            else:
                if assignees is None:  # the lazy queryset, evaluated on first use
                    assignees = [
                        r["assignee_id"]
                        for r in _all(
                            "SELECT assignee_id FROM issue_assignees WHERE issue_id = %s AND project_id = %s "
                            "AND deleted_at IS NULL AND assignee_id IN (" + MEMBERS + ")",
                            (issue_id, project_id, project_id),
                        )
                    ]
                if receiver in assignees and issue["created_by_id"] not in assignees:
                    sender = "in_app:issue_activities:assigned"
                else:
                    sender = "in_app:issue_activities:subscribed"
            preference = _one(PREFERENCE, (receiver,))
            if preference is None:
                raise LookupError(f"UserNotificationPreference of {receiver} does not exist")
            for activity in activities:
                if (
                    activity.get("issue_detail").get("id") != issue_id
                    or activity.get("field") == "description"
                ):
                    continue
                field = activity.get("field")
                if field == "state" and preference["state_change"]:  # noqa: SIM114 (Plane's branches)
                    send_email = True
                elif (  # noqa: SIM114
                    field == "state"
                    and preference["issue_completed"]
                    and _one(
                        "SELECT 1 FROM states WHERE project_id = %s AND id = %s AND \"group\" = 'completed' "
                        "AND deleted_at IS NULL LIMIT 1",
                        (project_id, activity.get("new_identifier")),
                    )
                ):
                    send_email = True
                elif field == "comment" and preference["comment"]:
                    send_email = True
                else:
                    send_email = bool(preference["property_change"])
                comment = (
                    _one(
                        "SELECT * FROM issue_comments WHERE id = %s AND issue_id = %s AND project_id = %s "
                        "AND workspace_id = %s AND deleted_at IS NULL LIMIT 1",
                        (activity.get("issue_comment"), issue_id, project_id, project["workspace_id"]),
                    )
                    if activity.get("issue_comment")
                    else None
                )
                lazy.get(
                    "project.workspace", "SELECT * FROM workspaces WHERE id = %s", project["workspace_id"]
                )
                stripped = str(comment["comment_stripped"] if comment is not None else "")
                data = {
                    "issue": _issue_block(issue, lazy, full=False),
                    "issue_activity": _activity_block(activity, issue_comment=stripped),
                }
                notes.append(
                    _notification(
                        project, sender, actor_id, receiver, issue_id, data, title=activity.get("comment")
                    )
                )
                if send_email:
                    data = {
                        "issue": _issue_block(issue, lazy, full=True),
                        "issue_activity": _activity_block(activity, activity_time=activity.get("created_at")),
                    }
                    emails.append(_email_log(actor_id, receiver, issue_id, data))
        _values(INSERT_SUBSCRIBERS, mention_subscribers + comment_mention_subscribers)
        last_activity = _one(LATEST_ACTIVITY, (issue_id,))
        actor = _one(USER, (actor_id,))
        assert actor is not None
        for mention in comment_mentions:
            if mention == actor_id:
                continue
            preference = _one(PREFERENCE, (mention,))
            assert preference is not None
            for activity in activities:
                message = f"{actor['display_name']} has mentioned you in a comment in issue {issue['name']}"
                data = {
                    "issue": _issue_block(issue, lazy, full=False),
                    "issue_activity": _activity_block(activity),
                }
                if preference["mention"]:
                    email = {
                        "issue": _issue_block(issue, lazy, full=True),
                        "issue_activity": _activity_block(
                            activity, field="mention", activity_time=activity.get("created_at")
                        ),
                    }
                    emails.append(_email_log(actor_id, mention, issue_id, email))
                notes.append(
                    _notification(
                        project,
                        "in_app:issue_activities:mentioned",
                        actor_id,
                        mention,
                        issue_id,
                        data,
                        message=message,
                    )
                )
        message = f"You have been mentioned in the issue {issue['name']}"
        for mention in new_mentions:
            if mention == actor_id:
                continue
            preference = _one(PREFERENCE, (mention,))
            assert preference is not None
            if (
                last_activity is not None
                and last_activity["field"] == "description"
                and actor_id == str(last_activity["actor_id"])
            ):
                last = {**last_activity, "actor_id": last_activity["actor_id"]}
                data = {
                    "issue": _issue_block(issue, lazy, full=True),
                    "issue_activity": _activity_block(last),
                }
                notes.append(
                    _notification(
                        project,
                        "in_app:issue_activities:mentioned",
                        actor_id,
                        mention,
                        issue_id,
                        data,
                        message=message,
                    )
                )
                if preference["mention"]:
                    email = {
                        "issue": _issue_block(issue, lazy, full=False),
                        "issue_activity": _activity_block(
                            last, field="mention", activity_time=str(last_activity["created_at"])
                        ),
                    }
                    emails.append(_email_log(actor_id, mention, issue_id, email))
            else:
                for activity in activities:
                    data = {
                        "issue": _issue_block(issue, lazy, full=False),
                        "issue_activity": _activity_block(activity),
                    }
                    if preference["mention"]:
                        email = {
                            "issue": _issue_block(issue, lazy, full=False),
                            "issue_activity": _activity_block(
                                activity, field="mention", activity_time=activity.get("created_at")
                            ),
                        }
                        emails.append(_email_log(actor_id, mention, issue_id, email))
                    notes.append(
                        _notification(
                            project,
                            "in_app:issue_activities:mentioned",
                            actor_id,
                            mention,
                            issue_id,
                            data,
                            message=message,
                        )
                    )
        now = _now()
        _values(
            INSERT_MENTIONS,
            [
                (now, now, uuid.uuid4(), None, None, issue_id, m, project_id, project["workspace_id"])
                for m in new_mentions
            ],
        )
        if removed_mention:
            _exec(
                "UPDATE issue_mentions SET deleted_at = %s WHERE issue_id = %s "
                "AND mention_id = ANY(%s::uuid[]) AND deleted_at IS NULL",
                (now, issue_id, removed_mention),
            )
        _values(INSERT_NOTIFICATIONS, notes)
        _values(INSERT_EMAIL_LOGS, emails)
    except Exception as e:
        print(e)  # Plane's handler: the event is lost


# --- worker process ---


def start_worker(database_url: str, concurrency: int = 2, ready_timeout: float = 60.0) -> subprocess.Popen:
    """A prefork worker on a fresh queue, this process's sends routed to it."""
    queue = f"bench-activity-{uuid.uuid4().hex[:12]}"
    return worker.start_worker(app, __name__, queue, database_url, concurrency, ready_timeout=ready_timeout)


def stop_worker(proc: subprocess.Popen, timeout: float = 30.0) -> None:
    worker.stop_worker(app, proc, timeout)
