"""Samples of instance-traces: Plane's telemetry spans, sent to the world's loopback receiver."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text

from cronjobs import instance_traces as traces
from cronjobs.samples._seed import scope
from shared.conformance import JobSamples, SampleWorld
from shared.testing.plane_rows import insert_many, insert_one

PATH = "/v1/traces"
# The span attributes the seed decides; the rest are the instance row's neutral values.
SHOWN = {
    "instance_details": ("instance_id", "user_count", "workspace_count", "project_count", "issue_count"),
    "workspace_details": ("workspace_slug", "member_count", "project_count", "issue_count"),
}

SLUGS = text("SELECT id, slug FROM workspaces WHERE id = ANY(:ids)")

Span = tuple[str, str, tuple[tuple[str, Any], ...]]  # (service.name, span name, shown attributes)


def instance_traces(world: SampleWorld) -> JobSamples:
    """One instance with telemetry on, a workspace with a member, a project and `world.size` live
    issues (plus soft-deleted ones, not counted), and an empty workspace: three spans in one export.

    Not interruptible: the whole run is one OTLP request, so a kill lands before it (the next run
    sends it) or after it (the next run sends nothing: one report per scheduled time). Effects are
    the distinct spans received: a run killed after its export but before recording its success
    sends the same spans again, which telemetry tolerates (at least once)."""
    with world.engine.begin() as conn:
        s = scope(conn)
        insert_one(conn, "instances", instance_id="inst-conformance", instance_name="Conformance",
                   current_version="v1.0.0", last_checked_at=datetime.now(UTC), is_telemetry_enabled=True,
                   domain="plane.test", edition="PLANE_COMMUNITY")  # fmt: skip
        insert_one(conn, "workspace_members", workspace_id=s.workspace, member_id=s.user, role=20)
        issue = {"project_id": ":p", "workspace_id": ":w", "sequence_id": "g", "priority": "'none'"}
        insert_many(conn, "issues", world.size, issue, s.params)
        insert_many(conn, "issues", 3, {**issue, "sequence_id": "-g", "deleted_at": "now()"}, s.params)
        other = insert_one(
            conn, "workspaces", name="empty", slug=f"empty-{s.workspace.hex[:8]}", owner_id=s.user
        )
        slugs = dict(conn.execute(SLUGS, {"ids": [s.workspace, other]}).all())
    full, empty = slugs[s.workspace], slugs[other]
    n = world.size
    expected = sorted(
        [
            _span("instance_details", instance_id="inst-conformance", user_count=1, workspace_count=2,
                  project_count=1, issue_count=n),
            _span("workspace_details", workspace_slug=full, member_count=1, project_count=1, issue_count=n),
            _span("workspace_details", workspace_slug=empty, member_count=0, project_count=0, issue_count=0),
        ],
        key=repr,
    )  # fmt: skip
    env = {"INSTANCE_TRACES_ENABLED": "1", "OTLP_ENDPOINT": world.receiver.url(PATH)}
    return JobSamples(effects=lambda: received(world), expected=expected, env=env, interruptible=False)


def _span(name: str, service: str = traces.SERVICE_NAME, **attributes: Any) -> Span:
    return (service, name, tuple(sorted(attributes.items())))


def received(world: SampleWorld) -> list[Span]:
    """The distinct spans of every export the receiver got, decoded with OTel's protobuf classes."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    spans: set[Span] = set()
    for request in world.receiver.requests():
        if request.path != PATH:
            continue
        export = ExportTraceServiceRequest()
        export.ParseFromString(request.body)
        for resource_spans in export.resource_spans:
            resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    attrs = {a.key: getattr(a.value, a.value.WhichOneof("value")) for a in span.attributes}
                    shown = {k: attrs.get(k) for k in SHOWN.get(span.name, ())}
                    spans.add(_span(span.name, resource.get("service.name", ""), **shown))
    return sorted(spans, key=repr)  # attribute values of mixed types: order by their repr
