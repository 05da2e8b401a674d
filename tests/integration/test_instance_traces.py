"""instance-traces against a real OTLP/HTTP receiver on loopback (protobuf decoded with OTel's own
generated classes): off by default, Plane's spans and counts when enabled, a refusal fails the run."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from sqlalchemy import text

from shared import registry
from shared.cron.runtime import EXIT_FAILED, EXIT_OK, run_job
from shared.testing.plane_rows import insert_many, insert_one, insert_user
from tests.integration.http_servers import HttpServer, running, send

SPEC = registry.job("instance-traces")


@contextmanager
def otlp_receiver(status: int = 200) -> Iterator[HttpServer]:
    """A loopback OTLP/HTTP endpoint at /v1/traces answering `status`."""
    answer = {"/v1/traces": lambda h: send(h, status, b"", {"Content-Type": "application/x-protobuf"})}
    server = HttpServer(routes=answer)
    with running(server):
        yield server


def exports(server: HttpServer) -> list[ExportTraceServiceRequest]:
    """What the server received, decoded with OTel's generated protobuf classes."""
    decoded = []
    for recorded in server.requests:
        request = ExportTraceServiceRequest()
        request.ParseFromString(recorded.body)
        decoded.append(request)
    return decoded


def spans_of(requests: list[ExportTraceServiceRequest]) -> list[tuple[str, dict[str, object]]]:
    out = []
    for request in requests:
        for resource_spans in request.resource_spans:
            for scope in resource_spans.scope_spans:
                for span in scope.spans:
                    attrs = {a.key: getattr(a.value, a.value.WhichOneof("value")) for a in span.attributes}
                    out.append((span.name, attrs))
    return out


def seed(engine, telemetry: bool = True) -> dict[str, object]:  # type: ignore[no-untyped-def]
    with engine.begin() as conn:
        user = insert_user(conn)
        insert_one(
            conn, "instances", instance_id="inst-1", instance_name="Acme Plane", current_version="v1.2.3",
            last_checked_at=datetime.now(UTC), is_telemetry_enabled=telemetry, domain="plane.acme.test",
            edition="PLANE_COMMUNITY",
        )  # fmt: skip
        ws = insert_one(conn, "workspaces", name="a", slug="acme", owner_id=user)
        insert_one(conn, "workspace_members", workspace_id=ws, member_id=user, role=20)
        proj = insert_one(conn, "projects", workspace_id=ws, name="p", identifier="P", network=2)
        params = {"p": proj, "w": ws}
        insert_many(conn, "issues", 7, {"project_id": ":p", "workspace_id": ":w", "sequence_id": "g"}, params)
        deleted = {"project_id": ":p", "workspace_id": ":w", "sequence_id": "100 + g", "deleted_at": "now()"}
        insert_many(conn, "issues", 2, deleted, params)  # soft-deleted: not counted
        empty = insert_one(conn, "workspaces", name="b", slug="empty", owner_id=user)
    return {"ws": str(ws), "empty": str(empty)}


def test_off_by_default_sends_nothing(settings, engine):  # type: ignore[no-untyped-def]
    seed(engine)
    with otlp_receiver() as receiver:
        # An endpoint alone is not consent: INSTANCE_TRACES_ENABLED stays 0 by default.
        code, ctx = run_job(SPEC, replace(settings, otlp_endpoint=receiver.url("/v1/traces")))
        assert code == EXIT_OK and ctx is not None and ctx.counts == {"disabled": 1}
        assert receiver.requests == []


def test_enabled_sends_plane_spans_with_counts(settings, engine):  # type: ignore[no-untyped-def]
    ids = seed(engine)
    with otlp_receiver() as receiver:
        enabled = replace(settings, otlp_endpoint=receiver.url("/v1/traces"), instance_traces_enabled=True)
        code, dry = run_job(SPEC, enabled, dry_run=True)
        assert code == EXIT_OK and dry is not None and dry.counts == {"spans_sent": 3}
        assert receiver.requests == []
        code, ctx = run_job(SPEC, enabled)
        assert code == EXIT_OK and ctx is not None and ctx.counts == {"spans_sent": 3}
    received = exports(receiver)
    spans = spans_of(received)
    resource = {a.key: a.value.string_value for a in received[0].resource_spans[0].resource.attributes}
    assert resource["service.name"] == "plane-ce-api"
    instance = [attrs for name, attrs in spans if name == "instance_details"]
    assert len(instance) == 1
    assert instance[0]["instance_name"] == "Acme Plane" and instance[0]["is_telemetry_enabled"] is True
    totals = instance[0]["workspace_count"], instance[0]["issue_count"], instance[0]["user_count"]
    assert totals == (2, 7, 1)
    workspaces = {attrs["workspace_slug"]: attrs for name, attrs in spans if name == "workspace_details"}
    assert workspaces["acme"]["workspace_id"] == ids["ws"]
    assert (workspaces["acme"]["issue_count"], workspaces["acme"]["member_count"]) == (7, 1)
    assert workspaces["empty"]["issue_count"] == 0


def test_instance_opt_out_wins_and_a_refused_export_fails(settings, engine):  # type: ignore[no-untyped-def]
    seed(engine, telemetry=False)
    with otlp_receiver() as receiver:
        enabled = replace(settings, otlp_endpoint=receiver.url("/v1/traces"), instance_traces_enabled=True)
        code, ctx = run_job(SPEC, enabled)
        assert code == EXIT_OK and ctx is not None and ctx.counts == {"disabled": 1}
        assert receiver.requests == []
    with engine.begin() as conn:
        conn.execute(text("UPDATE instances SET is_telemetry_enabled = true"))
    with otlp_receiver(status=400) as receiver:
        enabled = replace(settings, otlp_endpoint=receiver.url("/v1/traces"), instance_traces_enabled=True)
        code, _ = run_job(SPEC, enabled)
        assert code == EXIT_FAILED and len(receiver.requests) == 1


def test_one_report_per_scheduled_time(settings, engine):  # type: ignore[no-untyped-def]
    """A retried or duplicated CronJob run for a time already reported sends nothing; another time,
    or a run without a scheduled time, reports again."""
    seed(engine)
    at = datetime(2026, 5, 1, 0, 20, tzinfo=UTC)
    with otlp_receiver() as receiver:
        enabled = replace(settings, otlp_endpoint=receiver.url("/v1/traces"), instance_traces_enabled=True)
        code, first = run_job(SPEC, enabled, scheduled_for=at)
        assert code == EXIT_OK and first is not None and first.counts == {"spans_sent": 3}
        code, dry = run_job(SPEC, enabled, dry_run=True, scheduled_for=at)
        assert code == EXIT_OK and dry is not None and dry.counts == {}  # what a real run would do now
        code, again = run_job(SPEC, enabled, scheduled_for=at)
        assert code == EXIT_OK and again is not None and again.counts == {}
        assert len(receiver.requests) == 1
        code, later = run_job(SPEC, enabled, scheduled_for=at.replace(hour=6))
        assert code == EXIT_OK and later is not None and later.counts == {"spans_sent": 3}
        code, manual = run_job(SPEC, enabled)
        assert code == EXIT_OK and manual is not None and manual.counts == {"spans_sent": 3}
        assert len(receiver.requests) == 3
