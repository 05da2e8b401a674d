"""Consumer lag per partition, from librdkafka's own statistics: no extra broker requests.

With `statistics.interval.ms` set, librdkafka hands the client a JSON report every interval
(inside poll(), on the consumer's thread). For every partition the consumer is assigned it carries
`consumer_lag`: the partition's high watermark minus the group's committed offset, both as the
client last saw them. This module turns that into

    plane_workers_consumer_lag_messages{group, topic, partition}   (shared.metrics.CONSUMER_LAG)

Each process reports only its own partitions; a partition it lost in a rebalance is dropped at
its next report, so at most one interval of overlap, and `max by (group, topic, partition)` gives
one value per partition. Limits: a paused partition (backpressure) fetches nothing, so its high
watermark, and the lag, are only as fresh as its last fetch; a consumer that is down reports
nothing (the PrometheusRule's ConsumerDown alert covers that).

Hooked in with `with_lag_stats(config)` around a consumer's librdkafka configuration.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from prometheus_client import Gauge

from shared import metrics

log = logging.getLogger(__name__)

STATS_INTERVAL_MS = 10_000

# (group, topic, partition) label sets each client reported last time, by the client's name.
_reported: dict[str, set[tuple[str, str, str]]] = {}
_lock = threading.Lock()


def with_lag_stats(config: Mapping[str, Any], gauge: Gauge | None = None) -> dict[str, Any]:
    """`config` (a confluent-kafka consumer configuration with group.id) plus the statistics
    callback that keeps the lag gauge current. A stats_cb already there is still called."""
    group = str(config["group.id"])
    previous = config.get("stats_cb")
    return {
        **config,
        "statistics.interval.ms": config.get("statistics.interval.ms") or STATS_INTERVAL_MS,
        "stats_cb": stats_callback(group, gauge or metrics.CONSUMER_LAG, previous),
    }


def stats_callback(
    group: str, gauge: Gauge, previous: Callable[[str], None] | None = None
) -> Callable[[str], None]:
    def on_stats(stats_json: str) -> None:
        try:
            record(group, json.loads(stats_json), gauge)
        except Exception:  # statistics must never take a consumer down
            log.exception("could not read librdkafka statistics")
        if previous is not None:
            previous(stats_json)

    return on_stats


def record(group: str, stats: Mapping[str, Any], gauge: Gauge) -> dict[tuple[str, str, str], int]:
    """Set the gauge from one statistics report; drop the partitions this client no longer has."""
    lags: dict[tuple[str, str, str], int] = {}
    for topic, topic_stats in (stats.get("topics") or {}).items():
        for partition, p in (topic_stats.get("partitions") or {}).items():
            lag = p.get("consumer_lag", -1)
            # -1: internal UA partition, not assigned, or no committed offset / watermark yet.
            if int(partition) < 0 or lag is None or lag < 0 or p.get("fetch_state") == "none":
                continue
            lags[(group, topic, str(partition))] = int(lag)
    client = f"{group}/{stats.get('name', '')}"
    with _lock:
        for gone in _reported.get(client, set()) - lags.keys():
            with contextlib.suppress(KeyError):  # already removed
                gauge.remove(*gone)
        for labels, lag in lags.items():
            gauge.labels(*labels).set(lag)
        _reported[client] = set(lags)
    return lags
