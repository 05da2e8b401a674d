"""backfill-issue-versions / backfill-description-versions: Plane's one-off `sync_issue_version` and
`sync_issue_description_version` (issue_version_sync.py, issue_description_version_sync.py).

Plane's management commands enqueue a task that reads `Issue.objects` (every issue not soft-deleted:
drafts, archived and triage ones included) in offset pages ordered by `created_at`, writes one version
row per issue, and re-enqueues itself. Offset pages skip or repeat issues created meanwhile, and a
second run writes every version again. Here the rows written per issue are Plane's, but:

- Keyset batches in id order, BATCH_SIZE issues per transaction (one INSERT ... SELECT each).
- An issue that already has a live version row (deleted_at IS NULL) in the target table is skipped:
  the back-fill exists to give issues from before versioning a first version. That is what makes a
  run idempotent (a second run adds nothing) and resumable without a checkpoint table: a run killed
  half-way loses at most its uncommitted batch, and the next run skips what the killed one wrote.
  (An issue whose only versions are soft-deleted gets a new one, as its history shows none.)
- The price of no checkpoint: a re-run reads every issue again (an index probe each) before it
  reaches the ones left to do. run_job's advisory lock keeps two runs from racing each other.

Columns, as Plane's `bulk_create` writes them (no `save()`, so `created_by_id` is the issue's):
- both: workspace/project/created_by/updated_by from the issue; `owned_by_id` = the issue's
  `updated_by_id`, else `created_by_id`, else the first live project admin (role 20) by id
  (`ProjectMember.objects...first()`: no Meta ordering, so the primary key); none of those: the issue
  is skipped (logged with a count at the end), as Plane logs and skips it. `last_saved_at`, `created_at` and
  `updated_at` are the batch's now(); `id` a random uuid.
- issue_versions: the issue's scalar fields; `parent`/`state`/`estimate_point`/`type` its ids;
  `assignees`, `labels`, `modules` the ids of its live link rows (`{}` when none); `cycle` its live
  cycle link (the oldest, which Plane's dict keeps); `activity_id` its newest live activity;
  `properties` and `meta` `{}` (Issue has neither field: Plane's `getattr` default).
- issue_description_versions: the issue's description_binary/html/stripped/json.

Counts: `created` only (so a run with nothing left reports no work); skipped issues are logged.
Dry run: the same selection without the INSERT; `created` says what a real run would write.
Progress (done/total issues, rate, ETA) goes to stderr (shared/progress.py).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from sqlalchemy import text

from shared.cron.runtime import JobContext, set_statement_timeout
from shared.progress import Progress

log = logging.getLogger(__name__)

BATCH_SIZE = 500
STATEMENT_TIMEOUT_S = 60.0
FIRST_ID = uuid.UUID(int=0)
ADMIN_ROLE = 20

OWNER = f"""COALESCE(i.updated_by_id, i.created_by_id, (
        SELECT pm.member_id FROM project_members pm
        WHERE pm.project_id = i.project_id AND pm.role = {ADMIN_ROLE} AND pm.deleted_at IS NULL
        ORDER BY pm.id LIMIT 1))"""


@dataclass(frozen=True)
class Target:
    job: str
    table: str
    # Column name -> SQL expression over the `todo` row `t` (and `now()`).
    columns: dict[str, str]
    # Extra columns `todo` must carry from issue `i` (beyond id, workspace, project, users, owner).
    issue_columns: str


COMMON = {
    "id": "gen_random_uuid()",
    "created_at": "now()",
    "updated_at": "now()",
    "last_saved_at": "now()",
    "workspace_id": "t.workspace_id",
    "project_id": "t.project_id",
    "created_by_id": "t.created_by_id",
    "updated_by_id": "t.updated_by_id",
    "owned_by_id": "t.owner_id",
    "issue_id": "t.id",
}


def _ids(table: str, column: str) -> str:
    """The ids of an issue's live link rows as a uuid[] (Plane's lists; `{}` when none)."""
    return f"""COALESCE((SELECT array_agg(x.{column} ORDER BY x.created_at, x.id) FROM {table} x
        WHERE x.issue_id = t.id AND x.deleted_at IS NULL), '{{}}')"""


ISSUE_VERSIONS = Target(
    job="backfill-issue-versions",
    table="issue_versions",
    columns={
        **COMMON,
        "parent": "t.parent_id",
        "state": "t.state_id",
        "estimate_point": "t.estimate_point_id",
        "type": "t.type_id",
        "name": "t.name",
        "priority": "t.priority",
        "start_date": "t.start_date",
        "target_date": "t.target_date",
        "sequence_id": "t.sequence_id",
        "sort_order": "t.sort_order",
        "completed_at": "t.completed_at",
        "archived_at": "t.archived_at",
        "is_draft": "t.is_draft",
        "external_source": "t.external_source",
        "external_id": "t.external_id",
        "assignees": _ids("issue_assignees", "assignee_id"),
        "labels": _ids("issue_labels", "label_id"),
        "modules": _ids("module_issues", "module_id"),
        # Plane's dict over CycleIssue's "-created_at" ordering keeps the last, i.e. the oldest.
        "cycle": """(SELECT c.cycle_id FROM cycle_issues c WHERE c.issue_id = t.id AND c.deleted_at IS NULL
            ORDER BY c.created_at, c.id LIMIT 1)""",
        "activity_id": """(SELECT a.id FROM issue_activities a
            WHERE a.issue_id = t.id AND a.deleted_at IS NULL
            ORDER BY a.created_at DESC, a.id DESC LIMIT 1)""",
        "properties": "'{}'::jsonb",
        "meta": "'{}'::jsonb",
    },
    issue_columns="""i.parent_id, i.state_id, i.estimate_point_id, i.type_id, i.name, i.priority,
        i.start_date, i.target_date, i.sequence_id, i.sort_order, i.completed_at, i.archived_at,
        i.is_draft, i.external_source, i.external_id""",
)

DESCRIPTION_VERSIONS = Target(
    job="backfill-description-versions",
    table="issue_description_versions",
    columns={
        **COMMON,
        "description_binary": "t.description_binary",
        "description_html": "t.description_html",
        "description_stripped": "t.description_stripped",
        "description_json": "t.description_json",
    },
    issue_columns="i.description_binary, i.description_html, i.description_stripped, i.description_json",
)


def batch_sql(target: Target, *, dry_run: bool) -> str:
    """One batch: the next BATCH_SIZE live issues after `:after`, versions for those without one.
    Returns the batch's last id and its counts (one row; `last_id` NULL when no issue is left)."""
    names = ", ".join(f'"{c}"' for c in target.columns)
    exprs = ",\n            ".join(target.columns.values())
    insert = (
        "SELECT 1 FROM todo t WHERE t.owner_id IS NOT NULL"
        if dry_run
        else f"""INSERT INTO {target.table} ({names})
        SELECT {exprs}
        FROM todo t WHERE t.owner_id IS NOT NULL
        RETURNING 1"""
    )
    return f"""
    WITH batch AS (
        SELECT i.id FROM issues i
        WHERE i.deleted_at IS NULL AND i.id > :after
        ORDER BY i.id LIMIT :limit
    ), todo AS (
        SELECT i.id, i.workspace_id, i.project_id, i.created_by_id, i.updated_by_id,
               {OWNER} AS owner_id,
               {target.issue_columns}
        FROM issues i JOIN batch b ON b.id = i.id
        WHERE NOT EXISTS (
            SELECT 1 FROM {target.table} v WHERE v.issue_id = i.id AND v.deleted_at IS NULL)
    ), written AS (
        {insert}
    )
    SELECT (SELECT id FROM batch ORDER BY id DESC LIMIT 1) AS last_id,
           (SELECT count(*) FROM batch) AS seen,
           (SELECT count(*) FROM todo) AS todo,
           (SELECT count(*) FROM written) AS created
    """


LIVE_ISSUES = text("SELECT count(*) FROM issues WHERE deleted_at IS NULL")


def backfill(ctx: JobContext, target: Target) -> None:
    statement = text(batch_sql(target, dry_run=ctx.dry_run))
    with ctx.engine.connect() as conn:
        total = conn.scalar(LIVE_ISSUES) or 0
    progress = Progress(target.job, total, unit="issues")
    after, done = FIRST_ID, 0
    # Only writes go to ctx.counts (a run with nothing left to do reports no work); what was
    # skipped, and why, goes to the log at the end.
    skipped = {"already_versioned": 0, "no_owner": 0}
    while True:
        with ctx.engine.begin() as conn:
            set_statement_timeout(conn, STATEMENT_TIMEOUT_S)
            row = conn.execute(statement, {"after": after, "limit": BATCH_SIZE}).one()
        if row.last_id is None:
            break
        after, done = row.last_id, done + row.seen
        ctx.count("created", row.created)
        skipped["already_versioned"] += row.seen - row.todo
        skipped["no_owner"] += row.todo - row.created
        if row.seen < BATCH_SIZE:
            break  # the last batch: the final line says so
        progress.update(done)
        ctx.batch_done()
    progress.update(done, final=True)
    log.info("issues skipped", extra={"fields": {"table": target.table, **skipped}})
    if skipped["no_owner"]:
        # Plane logs and skips these too: no updater, no creator and no live project admin.
        log.warning("%d issue(s) have no possible owner and got no version", skipped["no_owner"])


def run_issue_versions(ctx: JobContext) -> None:
    backfill(ctx, ISSUE_VERSIONS)


def run_description_versions(ctx: JobContext) -> None:
    backfill(ctx, DESCRIPTION_VERSIONS)
