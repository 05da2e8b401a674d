"""arroyo's own metrics (poll/processing/backpressure time, commits, rebalances...) on /metrics.

arroyo reports through `arroyo.utils.metrics.configure_metrics(backend)`, statsd style: a dotted
name, a value and free-form tags. This backend turns each name into one prometheus_client metric
on shared.metrics.REGISTRY, created the first time arroyo reports it:

* increment -> Counter `arroyo_<name>_total` (a trailing `.count` is dropped: `_total` says it);
* gauge -> Gauge `arroyo_<name>`;
* timing -> for `arroyo.consumer.<phase>.time`, which arroyo sums per second before reporting
  (seconds spent polling, processing, in backpressure...), Counter `arroyo_consumer_<phase>_seconds_total`,
  so `rate()` is the fraction of wall time spent there; for the durations listed in SECONDS,
  Histogram `arroyo_<name>_seconds`; anything else (batch sizes: `.msg` becomes `_messages`)
  Histogram `arroyo_<name>`.

Names are sanitised to [a-zA-Z0-9_]. Tags become labels; a metric's label names are fixed the first
time it is seen: a later call without one of them gets "", extra tags are dropped.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Mapping
from typing import Any

from arroyo.utils import metrics as arroyo_metrics
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from shared import metrics

log = logging.getLogger(__name__)

# arroyo's timings measured in seconds (arroyo/utils/metric_defs.py) that are one duration each.
SECONDS = frozenset(
    {
        "arroyo.consumer.latency",
        "arroyo.consumer.run.callback",
        "arroyo.consumer.run.close_strategy",
        "arroyo.consumer.run.create_strategy",
        "arroyo.strategies.reduce.batch_time",
        "arroyo.strategies.run_task_with_multiprocessing.batch.submit.time",
        "arroyo.producer.callback_latency",
    }
)
# arroyo.consumer.latency is also a retry tier's hold (up to hours), hence the long tail.
SECONDS_BUCKETS = (
    0.001,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
    300,
    900,
    3600,
    21600.0,
)
OTHER_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000, 10_000, 100_000, 1_000_000)

_ACCUMULATED_TIME = re.compile(r"^arroyo\.consumer\.([a-z_]+)\.time$")


def _sanitize(name: str) -> str:
    name = re.sub(r"[^a-zA-Z0-9_]+", "_", name).strip("_")
    if not name.startswith("arroyo_"):
        name = f"arroyo_{name}"
    return name


def prometheus_name(kind: str, name: str) -> str:
    """The Prometheus name of arroyo's metric `name` reported as `kind` (increment, gauge, timing)."""
    if kind == "increment":
        base = _sanitize(name.removesuffix(".count"))
        return f"{base}_total"
    if kind == "gauge":
        return _sanitize(name)
    if match := _ACCUMULATED_TIME.match(name):
        return f"arroyo_consumer_{match.group(1)}_seconds_total"
    if name in SECONDS:
        return f"{_sanitize(name.removesuffix('.time').removesuffix('_time'))}_seconds"
    if name.endswith(".msg"):  # batch sizes in messages
        return f"{_sanitize(name.removesuffix('.msg'))}_messages"
    return _sanitize(name)


def _label(name: str) -> str:
    label = re.sub(r"[^a-zA-Z0-9_]+", "_", name)
    return f"tag_{label}" if not label or label[0].isdigit() or label.startswith("__") else label


class PrometheusMetrics(arroyo_metrics.Metrics):
    """arroyo's Metrics protocol on prometheus_client."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry
        self._lock = threading.Lock()
        # prometheus name -> (metric, label names, kind)
        self._metrics: dict[str, tuple[Any, tuple[str, ...], str]] = {}
        self._refused: set[str] = set()

    def increment(self, name: str, value: int | float = 1, tags: Mapping[str, str] | None = None) -> None:
        if (child := self._child("increment", name, tags)) is not None and value >= 0:
            child.inc(value)

    def gauge(self, name: str, value: int | float, tags: Mapping[str, str] | None = None) -> None:
        if (child := self._child("gauge", name, tags)) is not None:
            child.set(value)

    def timing(self, name: str, value: int | float, tags: Mapping[str, str] | None = None) -> None:
        if (child := self._child("timing", name, tags)) is None:
            return
        if prometheus_name("timing", name).endswith("_total"):  # seconds summed by arroyo
            if value >= 0:
                child.inc(value)
        else:
            child.observe(value)

    def _child(self, kind: str, name: str, tags: Mapping[str, str] | None) -> Any:
        prom_name = prometheus_name(kind, name)
        tags = {_label(k): str(v) for k, v in (tags or {}).items()}
        with self._lock:
            entry = self._metrics.get(prom_name)
            if entry is None:
                entry = self._create(kind, name, prom_name, tuple(sorted(tags)))
                if entry is None:
                    return None
            metric, labels, created_as = entry
        if created_as != kind:
            self._refuse(prom_name, f"reported as {kind} after {created_as}")
            return None
        if not labels:
            return metric
        return metric.labels(*(tags.get(label, "") for label in labels))

    def _create(
        self, kind: str, name: str, prom_name: str, labels: tuple[str, ...]
    ) -> tuple[Any, tuple[str, ...], str] | None:
        doc = f"arroyo's {name} ({kind}), bridged by shared/arroyo_metrics.py."
        try:
            metric: Any
            if kind == "increment" or prom_name.endswith("_seconds_total"):
                metric = Counter(prom_name, doc, labels, registry=self._registry)
            elif kind == "gauge":
                metric = Gauge(prom_name, doc, labels, registry=self._registry)
            else:
                buckets = SECONDS_BUCKETS if prom_name.endswith("_seconds") else OTHER_BUCKETS
                metric = Histogram(prom_name, doc, labels, buckets=buckets, registry=self._registry)
        except ValueError as exc:  # a name another metric of the registry already has
            self._refuse(prom_name, str(exc))
            return None
        entry = (metric, labels, kind)
        self._metrics[prom_name] = entry
        return entry

    def _refuse(self, prom_name: str, why: str) -> None:
        if prom_name not in self._refused:
            self._refused.add(prom_name)
            log.warning("arroyo metric %s not exported: %s", prom_name, why)


_installed: PrometheusMetrics | None = None


def install(registry: CollectorRegistry | None = None) -> PrometheusMetrics:
    """Make arroyo report to `registry` (default shared.metrics.REGISTRY). Once per process: later
    calls return the same backend. Must run before the StreamProcessors are built."""
    global _installed
    if _installed is None:
        _installed = PrometheusMetrics(registry or metrics.REGISTRY)
        arroyo_metrics.configure_metrics(_installed, force=True)
    return _installed
