"""Samples of the five cleanups (cronjobs.cleanup_logs): due rows are archived, then deleted.

Which rows are due is known by construction (they are inserted apart from the kept ones), not by
restating the jobs' SQL. Effects: the ids left in the table, and the ids found in the archive
objects (deduplicated: archiving is at-least-once across a kill).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import Connection

from cronjobs import cleanup_logs
from cronjobs.samples._seed import (
    PAUSE_ENV,
    archived_ids,
    ids,
    rows_to_act_on,
    scheduled_time,
    scope,
)
from shared.conformance import JobSamples, SampleWorld
from shared.testing.plane_rows import insert_many, insert_one

KEPT = 50
SOFT_DELETED_EVERY_7TH = "CASE WHEN g % 7 = 0 THEN CAST(:at AS timestamptz) END"
BEFORE_CUTOFF = "CAST(:cutoff AS timestamptz) - g * interval '1 minute'"
AFTER_CUTOFF = "CAST(:cutoff AS timestamptz) + interval '1 day' + g * interval '1 minute'"

API_LOG = {"token_identifier": "'plane_api_' || g", "path": "'/api/v1/issues/' || g || '/'",
           "method": "'GET'", "response_code": "200", "ip_address": "CAST('10.0.0.1' AS inet)",
           "created_by_id": ":u"}  # fmt: skip
EMAIL_LOG = {"receiver_id": ":u", "triggered_by_id": ":u", "entity_identifier": "gen_random_uuid()",
             "entity_name": "'issue'", "entity": "'issue'", "data": "jsonb_build_object('n', g)",
             "processed_at": ":at"}  # fmt: skip
WEBHOOK_LOG = {"workspace_id": ":w", "webhook": "gen_random_uuid()", "event_type": "'issue'",
               "request_method": "'POST'", "request_body": "'{\"n\": ' || g || '}'",
               "response_status": "'200'", "retry_count": "g % 3"}  # fmt: skip
VERSION = {"owned_by_id": ":u", "workspace_id": ":w", "description_html": "'<p>v' || g || '</p>'",
           "description_binary": "decode(lpad(to_hex(g), 8, '0') || '00ff', 'hex')",  # not UTF-8, as Yjs
           "created_at": "CAST(:at AS timestamptz) - (g + :older) * interval '1 hour'",
           "deleted_at": SOFT_DELETED_EVERY_7TH}  # fmt: skip


def cleanup_api_logs(world: SampleWorld) -> JobSamples:
    """API logs past HARD_DELETE_AFTER_DAYS go; newer ones stay."""
    return past_retention(world, "api_activity_logs", "created_at", API_LOG)


def cleanup_email_logs(world: SampleWorld) -> JobSamples:
    """Sent e-mail logs past retention go; newer ones and old never-sent ones (sent_at NULL) stay."""
    never_sent = {**EMAIL_LOG, "created_at": "CAST(:cutoff AS timestamptz) - interval '100 days'",
                  "sent_at": "NULL", "processed_at": "NULL"}  # fmt: skip
    return past_retention(world, "email_notification_logs", "sent_at", EMAIL_LOG, also_kept=never_sent)


def cleanup_webhook_logs(world: SampleWorld) -> JobSamples:
    """Webhook logs past retention go; newer ones stay."""
    return past_retention(world, "webhook_logs", "created_at", WEBHOOK_LOG)


def cleanup_page_versions(world: SampleWorld) -> JobSamples:
    """Versions beyond the newest VERSION_HISTORY_KEEP of each page go; a page with fewer keeps all."""

    def pages(conn: Connection, s: Any, n: int) -> list[dict[str, Any]]:
        return [{"page_id": insert_one(conn, "pages", name=f"page {i}", owned_by_id=s.user,
                                       workspace_id=s.workspace)} for i in range(n)]  # fmt: skip

    return beyond_newest(world, "page_versions", pages)


def cleanup_description_versions(world: SampleWorld) -> JobSamples:
    """Versions beyond the newest VERSION_HISTORY_KEEP of each issue go; an issue with fewer keeps all."""

    def issues(conn: Connection, s: Any, n: int) -> list[dict[str, Any]]:
        return [{"issue_id": insert_one(conn, "issues", name=f"i{i}", sequence_id=i + 1, priority="none",
                                        project_id=s.project, workspace_id=s.workspace),
                 "project_id": s.project} for i in range(n)]  # fmt: skip

    return beyond_newest(world, "issue_description_versions", issues)


def past_retention(
    world: SampleWorld,
    table: str,
    column: str,
    columns: dict[str, str],
    also_kept: dict[str, str] | None = None,
) -> JobSamples:
    """`rows_to_act_on` rows with `column` before the cut-off (every 7th soft-deleted: they go too),
    KEPT after it, and `also_kept` rows that must survive whatever their age."""
    at = scheduled_time()
    n = rows_to_act_on(world, cleanup_logs.BATCH_SIZE)
    with world.engine.begin() as conn:
        cutoff = at - timedelta(days=world.settings.hard_delete_after_days)
        params = {**scope(conn).params, "at": at, "cutoff": cutoff}
        due = {column: BEFORE_CUTOFF, "created_at": BEFORE_CUTOFF, "deleted_at": SOFT_DELETED_EVERY_7TH}
        insert_many(conn, table, n, {**columns, **due}, params)
        due_ids = ids(conn, f"SELECT id FROM {table}")
        insert_many(conn, table, KEPT, {**columns, column: AFTER_CUTOFF, "created_at": AFTER_CUTOFF}, params)
        if also_kept:
            insert_many(conn, table, KEPT, also_kept, params)
        kept_ids = sorted(set(ids(conn, f"SELECT id FROM {table}")) - set(due_ids))
    return archive_then_delete(world, table, due_ids, kept_ids, at)


def beyond_newest(world: SampleWorld, table: str, owners: Any) -> JobSamples:
    """Four owners with KEEP versions to keep plus a quarter of the due ones each (older), and one
    owner with fewer than KEEP versions. Versions are an hour apart, newest first."""
    at, keep = scheduled_time(), world.settings.version_history_keep
    per_owner = -(-rows_to_act_on(world, cleanup_logs.VERSION_BATCH_SIZE) // 4)
    with world.engine.begin() as conn:
        s = scope(conn)
        params = {**s.params, "at": at}
        full, short = owners(conn, s, 4), owners(conn, s, 1)[0]

        def versions(owner: dict[str, Any], n: int, older: int) -> None:
            columns = {**VERSION, **{name: f":{name}" for name in owner}}
            insert_many(conn, table, n, columns, {**params, **owner, "older": older})

        for owner in full:
            versions(owner, per_owner, older=keep)  # behind the newest `keep`: due
        due_ids = ids(conn, f"SELECT id FROM {table}")
        for owner in full:
            versions(owner, keep, older=0)
        versions(short, keep - 5, older=0)
        kept_ids = sorted(set(ids(conn, f"SELECT id FROM {table}")) - set(due_ids))
    return archive_then_delete(world, table, due_ids, kept_ids, at)


def archive_then_delete(
    world: SampleWorld, table: str, due: list[str], kept: list[str], at: Any
) -> JobSamples:
    archiving = bool(world.settings.archive_s3_bucket)

    def effects() -> dict[str, list[str]]:
        archived = archived_ids(world.settings, table) if archiving else []
        return {"rows": ids(world.engine, f"SELECT id FROM {table}"), "archived": archived}

    return JobSamples(
        effects=effects,
        expected={"rows": kept, "archived": due if archiving else []},
        env=PAUSE_ENV,
        scheduled_for=at,
    )
