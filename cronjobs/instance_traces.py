"""instance-traces: Plane's instance telemetry (license/bgtasks/tracer.py), opt-in and explicit.

Plane sends workspace slugs and usage counts to telemetry.plane.so whenever the instance row says
`is_telemetry_enabled`. Here nothing leaves the cluster unless the operator sets both
INSTANCE_TRACES_ENABLED=1 and OTLP_ENDPOINT (an OTLP/HTTP traces URL, e.g.
`https://collector:4318/v1/traces`), and the instance row still has telemetry enabled.

What is sent is Plane's: one `instance_details` span with the instance's fields and totals, and one
`workspace_details` span per workspace with its counts (rows not soft-deleted), under resource
`service.name=plane-ce-api`. Counts are one GROUP BY per table, not queries per workspace. The
spans are exported in one request whose result is checked, so a refused export fails the run.

Once per scheduled time: a run for a `--scheduled-for` that an earlier run already sent (a
`success` row for it in job_runs) sends nothing, so a retried or duplicated CronJob run does not
report the instance twice. A run killed after the export but before it recorded its success is
sent again by the next one (at least once).
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import Connection, text

from shared.cron.runtime import JobContext

log = logging.getLogger(__name__)

SERVICE_NAME = "plane-ce-api"
# Span attribute -> table, counted where deleted_at IS NULL (Plane's default managers).
COUNTED = {
    "project": "projects",
    "issue": "issues",
    "module": "modules",
    "cycle": "cycles",
    "cycle_issue": "cycle_issues",
    "module_issue": "module_issues",
    "page": "pages",
}
INSTANCE = text(
    """
    SELECT instance_id, instance_name, current_version, latest_version, is_telemetry_enabled,
           is_support_required, is_setup_done, is_signup_screen_visited, is_verified, edition,
           domain, is_test
    FROM instances ORDER BY created_at LIMIT 1
    """
)
ALREADY_SENT = text(
    """
    SELECT EXISTS (SELECT 1 FROM plane_workers.job_runs
                   WHERE job = :job AND scheduled_for = :at AND status = 'success' AND NOT dry_run)
    """
)


class TelemetryExportFailed(RuntimeError):
    pass


def run(ctx: JobContext) -> None:
    settings = ctx.settings
    if not (settings.instance_traces_enabled and settings.otlp_endpoint):
        log.info("instance telemetry is off (INSTANCE_TRACES_ENABLED and OTLP_ENDPOINT); nothing sent")
        ctx.count("disabled")
        return
    with ctx.engine.connect() as conn:
        # (Runs without --scheduled-for record none, so each of them is its own schedule.)
        if conn.scalar(ALREADY_SENT, {"job": ctx.name, "at": ctx.now}):
            log.info("telemetry for %s was already sent by an earlier run; nothing sent", ctx.now)
            return
        instance = conn.execute(INSTANCE).mappings().first()
        if instance is None or not instance["is_telemetry_enabled"]:
            log.info("no instance row, or telemetry disabled on it; nothing sent")
            ctx.count("disabled")
            return
        totals, per_workspace = _counts(conn)
    spans = [("instance_details", {**_clean(instance), **totals})]
    spans += [("workspace_details", {"instance_id": instance["instance_id"], **ws}) for ws in per_workspace]
    if ctx.dry_run:
        ctx.count("spans_sent", len(spans))
        return
    _export(settings.otlp_endpoint, spans)
    ctx.count("spans_sent", len(spans))


def _counts(conn: Connection) -> tuple[dict[str, int], list[dict[str, Any]]]:
    totals = {"user_count": conn.scalar(text("SELECT count(*) FROM users")) or 0}
    workspaces = {
        ws_id: {"workspace_id": str(ws_id), "workspace_slug": slug}
        for ws_id, slug in conn.execute(text("SELECT id, slug FROM workspaces WHERE deleted_at IS NULL"))
    }
    totals["workspace_count"] = len(workspaces)
    tables = {**COUNTED, "member": "workspace_members"}
    for name, table in tables.items():
        by_workspace = dict(
            conn.execute(
                text(f'SELECT workspace_id, count(*) FROM "{table}" WHERE deleted_at IS NULL GROUP BY 1')
            ).all()
        )
        if name != "member":
            totals[f"{name}_count"] = sum(by_workspace.values())
        for ws_id, attributes in workspaces.items():
            attributes[f"{name}_count"] = by_workspace.get(ws_id, 0)
    return totals, list(workspaces.values())


def _clean(row: Any) -> dict[str, Any]:
    """Span attributes must be str/bool/int/float: drop NULLs, stringify the rest."""
    return {
        k: v if isinstance(v, bool | int | float | str) else str(v) for k, v in row.items() if v is not None
    }


def _export(endpoint: str, spans: list[tuple[str, dict[str, Any]]]) -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    # Spans are collected in memory and exported in one call whose result we can act on; a
    # span processor would only log a failed export.
    collected = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": SERVICE_NAME}))
    provider.add_span_processor(SimpleSpanProcessor(collected))
    tracer = provider.get_tracer("plane-workers.instance-traces")
    for name, attributes in spans:
        with tracer.start_as_current_span(name) as span:
            span.set_attributes(attributes)
    provider.shutdown()
    exporter = OTLPSpanExporter(endpoint=endpoint, timeout=15)
    try:
        result = exporter.export(collected.get_finished_spans())
    finally:
        exporter.shutdown()
    if result is not SpanExportResult.SUCCESS:
        raise TelemetryExportFailed(f"the OTLP endpoint refused {len(spans)} span(s)")
