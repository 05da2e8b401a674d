"""The Grafana dashboard: shipped as a sidecar ConfigMap, valid JSON, and every query asks for
metrics that exist (shared/metrics.py, the process collectors, the arroyo bridge)."""

from __future__ import annotations

import inspect
import json
import re
from typing import Any

import pytest
from arroyo.utils import metric_defs
from chart_harness import CHART_DIR, KUBE_VERSIONS, NAMESPACE, render_chart, validation_errors
from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector

from shared import metrics
from shared.arroyo_metrics import prometheus_name

DASHBOARD = CHART_DIR / "dashboards" / "plane-workers.json"
ENABLED = {"monitoring": {"dashboard": {"enabled": True}}}
KEYWORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "offset",
    "and",
    "or",
    "unless",
    "bool",
}
SAMPLE_SUFFIXES = ("", "_bucket", "_sum", "_count")


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for panel in board["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (a small lexer, enough for these queries)."""
    expr = re.sub(r'"(\\.|[^"\\])*"', '""', expr)  # strings
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    expr = re.sub(r"\$\w+", "", expr)  # dashboard variables
    expr = re.sub(r"(?<![\w.])[0-9][0-9.e+]*(ms|s|m|h|d|w|y)?\b", "", expr)  # numbers, durations
    names = set()
    for match in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr):
        name = match.group(0)
        rest = expr[match.end() :].lstrip()
        if name in KEYWORDS or rest.startswith("("):  # a keyword or a function
            continue
        names.add(name)
    return names


def exported_names() -> set[str]:
    """Every sample name /metrics can carry: shared/metrics.py's metrics, the process collectors',
    and what the arroyo bridge makes of each metric arroyo declares (arroyo/utils/metric_defs.py
    says of each whether it is a Counter, a Gauge or a Time)."""
    names = set()
    for family in metrics.REGISTRY.collect():
        names |= {family.name + suffix for suffix in ("", "_total", *SAMPLE_SUFFIXES)}
    process = CollectorRegistry()
    ProcessCollector(registry=process)
    PlatformCollector(registry=process)
    GCCollector(registry=process)
    for family in process.collect():
        names |= {sample.name for sample in family.samples}
    kinds = {"Counter": "increment", "Gauge": "gauge", "Time": "timing"}
    kind = None
    for line in inspect.getsource(metric_defs).splitlines():
        if declared := re.match(r"\s*# (Counter|Gauge|Time)\b", line):
            kind = kinds[declared.group(1)]
        elif (named := re.match(r'\s*"([a-z0-9_.]+)",', line)) and kind:
            prom = prometheus_name(kind, named.group(1))
            names |= {prom + suffix for suffix in SAMPLE_SUFFIXES}
            kind = None
    return names


def test_off_by_default(default_render):
    assert "plane-workers-dashboard" not in default_render.of_kind("ConfigMap")


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
def test_configmap_carries_the_sidecar_label_and_the_dashboard(kube_version):
    rendered = render_chart(ENABLED)
    configmap = rendered.of_kind("ConfigMap")["plane-workers-dashboard"]
    assert validation_errors(configmap, kube_version) == []
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert configmap["metadata"]["namespace"] == NAMESPACE
    assert json.loads(configmap["data"]["plane-workers.json"]) == dashboard()

    custom = render_chart(
        {
            "monitoring": {
                "dashboard": {
                    "enabled": True,
                    "sidecarLabel": "example.com/dashboard",
                    "sidecarLabelValue": "plane",
                    "labels": {"team": "platform"},
                    "annotations": {"grafana_folder": "Plane"},
                    "namespace": "monitoring",
                }
            }
        }
    ).of_kind("ConfigMap")["plane-workers-dashboard"]
    assert validation_errors(custom, kube_version) == []
    labels = custom["metadata"]["labels"]
    assert labels["example.com/dashboard"] == "plane" and labels["team"] == "platform"
    assert "grafana_dashboard" not in labels
    assert custom["metadata"]["annotations"] == {"grafana_folder": "Plane"}
    assert custom["metadata"]["namespace"] == "monitoring"


def test_dashboard_is_well_formed():
    board = dashboard()
    assert board["uid"] == "plane-workers" and board["title"]
    variables = {v["name"] for v in board["templating"]["list"]}
    assert {"datasource", "namespace"} <= variables
    all_panels = panels(board)
    ids = [p["id"] for p in all_panels]
    assert len(ids) == len(set(ids))
    for panel in all_panels:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        used = set(re.findall(r"\$(\w+)", json.dumps(panel["targets"])))
        assert used <= variables | {"__rate_interval", "__range"}, panel["title"]


def test_dashboard_covers_what_operators_look_at():
    titles = " | ".join(p["title"].lower() for p in panels(dashboard()))
    for topic in (
        "by outcome",
        "latency",
        "dead-lettered",
        "lag",
        "last success",
        "last run",
        "webhook deliveries",
    ):
        assert topic in titles, topic


def test_every_query_uses_metrics_that_exist():
    exported = exported_names()
    board = dashboard()
    queries = [t["expr"] for p in panels(board) for t in p.get("targets", [])]
    for variable in board["templating"]["list"]:
        if isinstance(variable.get("query"), dict):  # label_values(SELECTOR, LABEL)
            selector = re.fullmatch(r"label_values\((.*),\s*\w+\)", variable["query"]["query"])
            assert selector, variable["name"]
            queries.append(selector.group(1))
    used = set()
    for expr in queries:
        names = metric_names(expr)
        assert names, expr
        used |= names
    assert used - exported == set()
    # The lexer is not fooled: it finds the names, and only them.
    assert metric_names('sum by (a) (rate(x_total{b="c"}[5m])) / on (a) y offset 1h') == {"x_total", "y"}
    assert {n for n in used if n.startswith("arroyo_")}, "the dashboard shows arroyo's metrics"
