"""Samples of the retention jobs outside the log tables: exports, unuploaded assets, worker state."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from sqlalchemy import text

from cronjobs import delete_expired_exports as exports
from cronjobs import delete_unuploaded_assets as assets
from cronjobs import prune_worker_state as prune
from cronjobs.samples._seed import PAUSE_ENV, ids, object_keys, rows_to_act_on, scheduled_time, scope
from shared.conformance import JobSamples, SampleWorld
from shared.storage import s3_client
from shared.testing.plane_rows import insert_many

KEPT = 50
DAYS_OLD = "CAST(:at AS timestamptz) - :days * interval '1 day'"
EXPORT = {"workspace_id": ":w", "initiated_by_id": ":u", "provider": "'csv'", "status": "'completed'",
          "type": "'issue_exports'", "token": "md5(g::text || random()::text)",
          "key": "'exports/' || gen_random_uuid() || '.csv'", "url": "'https://s3.test/export/' || g",
          "created_at": DAYS_OLD}  # fmt: skip
ASSET = {"asset": "'attachments/' || gen_random_uuid()", "workspace_id": ":w", "attributes": "'{}'::jsonb",
         "is_uploaded": "false", "created_at": DAYS_OLD}  # fmt: skip


def delete_expired_exports(world: SampleWorld) -> JobSamples:
    """Exports older than EXPORT_RETENTION_DAYS lose their S3 object and their link (one of them has
    no file: only the link goes). Recent exports, an old one whose link is already cleared (its
    object stays, as in Plane) and a soft-deleted one keep theirs. Effects: the object keys in the
    uploads bucket, and the exports that still have a link."""
    at, days = scheduled_time(), world.settings.export_retention_days
    with world.engine.begin() as conn:
        params = {**scope(conn).params, "at": at}
        old, recent = {**params, "days": days + 1}, {**params, "days": days - 1}
        insert_many(conn, "exporters", rows_to_act_on(world, exports.BATCH_SIZE), EXPORT, old)
        insert_many(conn, "exporters", 1, {**EXPORT, "key": "''"}, old)
        expired = set(ids(conn, "SELECT id FROM exporters"))
        insert_many(conn, "exporters", KEPT, EXPORT, recent)
        insert_many(conn, "exporters", 1, {**EXPORT, "url": "NULL"}, old)
        insert_many(conn, "exporters", 1, {**EXPORT, "deleted_at": ":at"}, old)
        files = dict(conn.execute(text("SELECT id::text, key FROM exporters WHERE key <> ''")).all())
        linked = ids(conn, "SELECT id FROM exporters WHERE url IS NOT NULL")
    s3, bucket = s3_client(world.settings), world.settings.aws_s3_bucket_name
    with ThreadPoolExecutor(8) as pool:  # a few hundred PUTs: in parallel, seeding stays ~1 s
        list(pool.map(lambda key: s3.put_object(Bucket=bucket, Key=key, Body=b"id\n1\n"), files.values()))

    def effects() -> dict[str, list[str]]:
        links = ids(world.engine, "SELECT id FROM exporters WHERE url IS NOT NULL")
        return {"objects": object_keys(world.settings, bucket), "links": links}

    expected = {
        "objects": sorted(key for row, key in files.items() if row not in expired),
        "links": [row for row in linked if row not in expired],
    }
    return JobSamples(effects=effects, expected=expected, env=PAUSE_ENV, scheduled_for=at)


def delete_unuploaded_assets(world: SampleWorld) -> JobSamples:
    """Assets never uploaded and older than UNUPLOADED_ASSET_DELETE_DAYS are soft-deleted. Uploaded
    ones, recent ones, and ones soft-deleted earlier (whose deleted_at, and so retention, must not
    move) stay as they are. Effects: the live assets, and those still carrying the earlier date."""
    at, days = scheduled_time(), world.settings.unuploaded_asset_delete_days
    earlier = at - timedelta(days=30)
    with world.engine.begin() as conn:
        params = {**scope(conn).params, "at": at, "earlier": earlier}
        old, recent = {**params, "days": days + 1}, {**params, "days": days - 1}
        insert_many(conn, "file_assets", rows_to_act_on(world, assets.BATCH_SIZE), ASSET, old)
        stale = set(ids(conn, "SELECT id FROM file_assets"))
        insert_many(conn, "file_assets", KEPT, {**ASSET, "is_uploaded": "true"}, old)
        insert_many(conn, "file_assets", KEPT, ASSET, recent)
        insert_many(conn, "file_assets", 10, {**ASSET, "deleted_at": ":earlier"}, old)
        earlier_ids = ids(conn, "SELECT id FROM file_assets WHERE deleted_at IS NOT NULL")
        live = [a for a in ids(conn, "SELECT id FROM file_assets WHERE deleted_at IS NULL") if a not in stale]

    def effects() -> dict[str, list[str]]:
        with world.engine.connect() as conn:
            return {
                "live": ids(conn, "SELECT id FROM file_assets WHERE deleted_at IS NULL"),
                "deleted_earlier": ids(conn, "SELECT id FROM file_assets WHERE deleted_at = :e", e=earlier),
            }

    expected = {"live": live, "deleted_earlier": earlier_ids}
    return JobSamples(effects=effects, expected=expected, env=PAUSE_ENV, scheduled_for=at)


SEEDED = "seeded"  # consumer and job name of the seeded state, apart from the prune job's own runs
INSERT_KEYS = text(
    """
    INSERT INTO plane_workers.processed_events (consumer, event_id, processed_at)
    SELECT :seeded, gen_random_uuid(), CAST(:at AS timestamptz) - :days * interval '1 day'
    FROM generate_series(1, :n)
    """
)
INSERT_RUN = text(
    """
    INSERT INTO plane_workers.job_runs (job, status, dry_run, started_at, counts)
    VALUES (:seeded, :status, false, CAST(:at AS timestamptz) - :days * interval '1 day', '{}')
    """
)
INSERT_DELIVERIES = text(
    """
    INSERT INTO plane_workers.webhook_deliveries (delivery_id, webhook_id, status, attempts, event_time,
                                                  finished_at)
    SELECT gen_random_uuid(), gen_random_uuid(), 'succeeded', 1, t, t
    FROM (SELECT CAST(:at AS timestamptz) - :days * interval '1 day' AS t FROM generate_series(1, :n)) times
    """
)


def prune_worker_state(world: SampleWorld) -> JobSamples:
    """Dedupe keys past PROCESSED_EVENTS_RETENTION_DAYS, finished job runs past
    JOB_RUNS_RETENTION_DAYS and webhook delivery records past HARD_DELETE_AFTER_DAYS go; newer ones,
    and an old run still marked running (the trace of a killed run), stay."""
    at, s = scheduled_time(), world.settings
    keys_days, runs_days, deliveries_days = (
        s.processed_events_retention_days, s.job_runs_retention_days, s.hard_delete_after_days
    )  # fmt: skip
    with world.engine.begin() as conn:
        p: dict[str, Any] = {"seeded": SEEDED, "at": at}
        conn.execute(INSERT_KEYS, {**p, "days": keys_days + 1, "n": rows_to_act_on(world, prune.BATCH_SIZE)})
        stale_keys = set(ids(conn, "SELECT event_id FROM plane_workers.processed_events"))
        conn.execute(INSERT_KEYS, {**p, "days": keys_days - 1, "n": KEPT})
        for status, days in (("success", runs_days + 1), ("failure", runs_days + 1)):
            conn.execute(INSERT_RUN, {**p, "status": status, "days": days})
        stale_runs = set(_seeded_runs(conn))
        for status, days in (("running", runs_days + 100), ("success", runs_days - 1)):
            conn.execute(INSERT_RUN, {**p, "status": status, "days": days})
        conn.execute(INSERT_DELIVERIES, {**p, "days": deliveries_days + 1, "n": 3})
        stale_deliveries = set(_deliveries(conn))
        conn.execute(INSERT_DELIVERIES, {**p, "days": deliveries_days - 1, "n": 2})
        expected = {
            "processed_events": [k for k in _keys(conn) if k not in stale_keys],
            "job_runs": [r for r in _seeded_runs(conn) if r not in stale_runs],
            "webhook_deliveries": [d for d in _deliveries(conn) if d not in stale_deliveries],
        }

    def effects() -> dict[str, list[str]]:
        with world.engine.connect() as conn:
            return {"processed_events": _keys(conn), "job_runs": _seeded_runs(conn),
                    "webhook_deliveries": _deliveries(conn)}  # fmt: skip

    return JobSamples(effects=effects, expected=expected, env=PAUSE_ENV, scheduled_for=at)


def _keys(conn: Any) -> list[str]:
    return ids(conn, "SELECT event_id FROM plane_workers.processed_events")


def _seeded_runs(conn: Any) -> list[str]:
    # Only the seeded runs: the prune job's own runs (this suite's) are recent and never pruned.
    return ids(conn, "SELECT id FROM plane_workers.job_runs WHERE job = :j", j=SEEDED)


def _deliveries(conn: Any) -> list[str]:
    return ids(conn, "SELECT delivery_id FROM plane_workers.webhook_deliveries")
