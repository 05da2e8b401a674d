"""Every Prometheus metric of plane-workers, in one place.

Consumers serve them on `/metrics` (METRICS_PORT); jobs push them to a Pushgateway when
PUSHGATEWAY_URL is set. Names follow Prometheus conventions (`_total`, `_seconds`).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    make_wsgi_app,
    pushadd_to_gateway,
    start_http_server,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

REGISTRY = CollectorRegistry()

EVENTS_PROCESSED = Counter(
    "plane_workers_events_processed_total",
    "Events a consumer finished, by outcome (ok, duplicate, retried, dead_lettered, skipped).",
    ["consumer", "outcome"],
    registry=REGISTRY,
)
EVENT_PROCESSING_SECONDS = Histogram(
    "plane_workers_event_processing_seconds",
    "Time a handler spent on one event, including its database transaction.",
    ["consumer"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
EVENTS_PRODUCED = Counter(
    "plane_workers_events_produced_total",
    "Events produced and confirmed by the broker, by logical topic.",
    ["topic"],
    registry=REGISTRY,
)
JOB_RUNS = Counter(
    "plane_workers_job_runs_total",
    "Job runs by outcome (success, failure, interrupted, skipped_locked, dry_run).",
    ["job", "outcome"],
    registry=REGISTRY,
)
JOB_ROWS = Counter(
    "plane_workers_job_rows_total",
    "Rows a job affected (deleted, archived, updated...).",
    ["job", "action"],
    registry=REGISTRY,
)
JOB_DURATION_SECONDS = Gauge(
    "plane_workers_job_duration_seconds",
    "Wall time of the job's last run.",
    ["job"],
    registry=REGISTRY,
)
JOB_LAST_SUCCESS = Gauge(
    "plane_workers_job_last_success_timestamp_seconds",
    "Unix time of the job's last successful run (alert when it gets old).",
    ["job"],
    registry=REGISTRY,
)

log = logging.getLogger(__name__)


# `/health` on the metrics port: (healthy, what to show as JSON). 200 when healthy, else 503.
HealthCheck = Callable[[], tuple[bool, dict[str, Any]]]


def serve(port: int, health: HealthCheck | None = None) -> None:
    """A consumer's metrics: its own, the process's (CPU, memory, open files, GC) and arroyo's;
    with `health`, also `/health` on the same port (shared/consumer_health.py).

    Called by `consume` before any StreamProcessor is built: arroyo reads its metrics backend
    when a processor is created. Jobs never call it, so nothing of this is pushed.
    """
    from shared import arroyo_metrics

    _register_process_collectors()
    arroyo_metrics.install()
    if not port:
        return
    if health is None:
        start_http_server(port, registry=REGISTRY)
        return
    _serve_with_health(port, health)


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Not one line per scrape or probe."""


def _serve_with_health(port: int, health: HealthCheck) -> None:
    """prometheus_client's own WSGI app for everything but /health (start_http_server takes no
    other route), on a threaded wsgiref server as start_http_server's is."""
    metrics_app = make_wsgi_app(REGISTRY)

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("PATH_INFO") != "/health":
            return metrics_app(environ, start_response)
        try:
            healthy, report = health()
        except Exception as exc:  # a check that fails is an unhealthy answer, not a dead server
            log.warning("health check failed: %s", exc)
            healthy, report = False, {"healthy": False, "error": f"{type(exc).__name__}: {exc}"}
        body = json.dumps(report, default=str).encode()
        status = "200 OK" if healthy else "503 Service Unavailable"
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]

    httpd = make_server("0.0.0.0", port, app, _ThreadingServer, handler_class=_QuietHandler)
    threading.Thread(target=httpd.serve_forever, name="metrics-http", daemon=True).start()


def push(gateway: str, job: str) -> None:
    """Push job metrics; a Pushgateway outage must not fail the job itself.

    A push-add (POST): the Pushgateway replaces, in the job's group, only the metric families
    pushed, and only families with samples are pushed. A failed or interrupted run has never
    set plane_workers_job_last_success_timestamp_seconds, so it does not send it, and the last
    success pushed before stays (a PUT of the whole registry replaced the group and erased it).
    Callers push nothing for a dry run (shared/cron/runtime.py)."""
    if not gateway:
        return
    try:
        pushadd_to_gateway(gateway, job=f"plane-workers-{job}", registry=_WithSamples(REGISTRY), timeout=10)
    except OSError as exc:
        log.warning("could not push metrics to %s: %s", gateway, exc)


class _WithSamples(Collector):
    """The families of `registry` that have samples (a labelled metric never set has none)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Metric]:
        return (family for family in self._registry.collect() if family.samples)


# --- appended with the monitoring (PrometheusRule, dashboard) ------------------------------------

CONSUMER_LAG = Gauge(
    "plane_workers_consumer_lag_messages",
    "Messages between a partition's high watermark and the group's committed offset, for the "
    "partitions this process is assigned (librdkafka statistics, shared/kafka/lag_metrics.py).",
    ["group", "topic", "partition"],
    registry=REGISTRY,
)
WEBHOOK_ENDPOINTS_DISABLED = Counter(
    "plane_workers_webhook_endpoints_disabled_total",
    "Webhooks this process switched off (410 Gone, receiver asked, failing past the limit), "
    "counted once their transaction committed.",
    registry=REGISTRY,
)

_process_collectors: list[object] = []


def _register_process_collectors() -> None:
    """process_* (CPU, memory, open files, start time), python_info and python_gc_*: the default
    registry has them built in, REGISTRY (a registry of its own) only once this ran."""
    from prometheus_client import GCCollector, PlatformCollector, ProcessCollector

    if not _process_collectors:
        _process_collectors.extend(
            [
                ProcessCollector(registry=REGISTRY),
                PlatformCollector(registry=REGISTRY),
                GCCollector(registry=REGISTRY),
            ]
        )
