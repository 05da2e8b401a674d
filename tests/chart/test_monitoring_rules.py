"""The chart's PrometheusRule: rendered, checked for structure, and run through `promtool test rules`.

kubernetes-validate has no schema for the Prometheus Operator's CRDs, so PrometheusRule is checked
against RULE_SCHEMA below (the fields of the CRD this chart uses, closed). The promtool unit tests
(tests/chart/monitoring/*.test.yaml) feed input series and expect alerts; they need promtool
(Debian/Ubuntu: `apt-get install prometheus`) and are skipped without it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import helm_python
import jsonschema
import pytest
import yaml
from chart_harness import (
    CHART_DIR,
    DEFAULT_CONSUMERS,
    DEFAULT_JOBS,
    KUBE_VERSIONS,
    NAMESPACE,
    REPO_ROOT,
    render_chart,
    validation_errors,
)

from shared import helm_export, registry

PROMTOOL_TESTS = Path(__file__).parent / "monitoring"
RUNBOOKS = "https://runbooks.example/plane-workers"
ALERTS = {
    "PlaneWorkersConsumerLagHigh",
    "PlaneWorkersConsumerDown",
    "PlaneWorkersDeadLetters",
    "PlaneWorkersWebhookEndpointsDisabled",
    "PlaneWorkersJobFailed",
    "PlaneWorkersJobNoRecentSuccess",
    "PlaneWorkersCeleryBridgeDown",
    "PlaneWorkersCeleryBridgeBacklog",
    "PlaneWorkersCeleryBridgeDeadLetters",
}
BRIDGE_ALERTS = {a for a in ALERTS if a.startswith("PlaneWorkersCeleryBridge")}
DURATION = r"^([0-9]+(ms|s|m|h|d|w|y))+$"
LABEL_NAME = r"^[a-zA-Z_][a-zA-Z0-9_]*$"
STRING_MAP = {
    "type": "object",
    "propertyNames": {"pattern": LABEL_NAME},
    "additionalProperties": {"type": "string"},
}
# monitoring.coreos.com/v1 PrometheusRule, as far as this chart uses it.
RULE_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "PrometheusRule"},
        "metadata": {
            "type": "object",
            "additionalProperties": False,
            "required": ["name", "labels"],
            "properties": {
                "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$"},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        },
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["groups"],
            "properties": {
                "groups": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["name", "rules"],
                        "properties": {
                            "name": {"type": "string", "minLength": 1},
                            "rules": {
                                "type": "array",
                                "minItems": 1,
                                "items": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "required": ["alert", "expr", "labels", "annotations"],
                                    "properties": {
                                        "alert": {"enum": sorted(ALERTS)},
                                        "expr": {"type": "string", "minLength": 1},
                                        "for": {"type": "string", "pattern": DURATION},
                                        "labels": {**STRING_MAP, "required": ["severity"]},
                                        "annotations": {
                                            **STRING_MAP,
                                            "required": ["summary", "description"],
                                            "propertyNames": {
                                                "enum": ["summary", "description", "runbook_url"]
                                            },
                                        },
                                    },
                                },
                            },
                        },
                    },
                },
            },
        },
    },
}

ENABLED: dict[str, Any] = {
    "monitoring": {"prometheusRule": {"enabled": True, "runbookBaseUrl": RUNBOOKS}},
    "metrics": {"serviceMonitor": {"enabled": True}},
}
WITH_BRIDGE: dict[str, Any] = {**ENABLED, "deployments": {"celery-bridge": {"enabled": True}}}


def rule_of(values: dict[str, Any] | None = None) -> dict[str, Any]:
    (rule,) = render_chart(values or ENABLED).of_kind("PrometheusRule").values()
    return rule


def rules(rule: dict[str, Any], alert: str | None = None) -> list[dict[str, Any]]:
    found = [r for group in rule["spec"]["groups"] for r in group["rules"]]
    return [r for r in found if alert is None or r["alert"] == alert]


def merged(*overrides: dict[str, Any]) -> dict[str, Any]:
    """ENABLED with prometheusRule keys (and other top-level values) laid over it."""
    values: dict[str, Any] = {"metrics": ENABLED["metrics"], "monitoring": {"prometheusRule": {}}}
    values["monitoring"]["prometheusRule"].update(ENABLED["monitoring"]["prometheusRule"])
    for override in overrides:
        for key, value in override.items():
            if key == "prometheusRule":
                values["monitoring"]["prometheusRule"].update(value)
            else:
                values[key] = value
    return values


def test_the_celery_bridge_alerts_come_with_the_bridge_and_go_with_its_switches():
    assert not {r["alert"] for r in rules(rule_of())} & BRIDGE_ALERTS  # the bridge is off by default
    with_bridge = rule_of(WITH_BRIDGE)
    assert {r["alert"] for r in rules(with_bridge)} >= BRIDGE_ALERTS
    (backlog,) = rules(with_bridge, "PlaneWorkersCeleryBridgeBacklog")
    assert 'queue="celery"' in backlog["expr"] and 'namespace="plane"' in backlog["expr"]
    renamed = rule_of({**WITH_BRIDGE, "config": {"CELERY_BRIDGE_QUEUE": "plane-tasks"}})
    assert 'queue="plane-tasks"' in rules(renamed, "PlaneWorkersCeleryBridgeBacklog")[0]["expr"]
    # Down needs the ServiceMonitor (it names the scrape job); disabledAlerts drops any of them.
    unscraped = rule_of({**WITH_BRIDGE, "metrics": {"serviceMonitor": {"enabled": False}}})
    assert not rules(unscraped, "PlaneWorkersCeleryBridgeDown")
    quiet = merged(
        {"prometheusRule": {"disabledAlerts": ["PlaneWorkersCeleryBridgeDeadLetters"]}},
        {"deployments": WITH_BRIDGE["deployments"]},
    )
    assert not rules(rule_of(quiet), "PlaneWorkersCeleryBridgeDeadLetters")


def test_off_by_default(default_render):
    assert default_render.of_kind("PrometheusRule") == {}


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
def test_renders_valid_objects_and_a_well_formed_prometheus_rule(kube_version):
    rendered = render_chart(WITH_BRIDGE)
    errors = [
        e
        for o in rendered.objects
        if o["kind"] != "PrometheusRule"
        for e in validation_errors(o, kube_version)
    ]
    assert errors == []
    rule = rule_of(WITH_BRIDGE)
    jsonschema.Draft202012Validator(RULE_SCHEMA).validate(rule)
    names = [group["name"] for group in rule["spec"]["groups"]]
    assert len(names) == len(set(names))
    assert {r["alert"] for r in rules(rule)} == ALERTS


def test_every_alert_links_its_runbook_and_the_readme_has_it():
    readme = (CHART_DIR / "README.md").read_text()
    headings = {
        re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in readme.splitlines()
        if line.startswith("#")
    }
    for r in rules(rule_of(WITH_BRIDGE)):
        anchor = r["alert"].lower()
        assert r["annotations"]["runbook_url"] == f"{RUNBOOKS}#{anchor}"
        assert anchor in headings, f"README has no runbook section for {r['alert']}"
    # Without a base URL there is no link to nowhere.
    plain = rule_of(merged({"prometheusRule": {"runbookBaseUrl": ""}}))
    assert all("runbook_url" not in r["annotations"] for r in rules(plain))


def test_consumer_alerts_are_scoped_to_the_release_namespace_and_its_main_groups():
    rule = rule_of()
    (lag,) = rules(rule, "PlaneWorkersConsumerLagHigh")
    groups = [f"plane\\\\.{spec.group}" for spec in sorted(DEFAULT_CONSUMERS, key=lambda s: s.name)]
    assert f'namespace="{NAMESPACE}"' in lag["expr"]
    assert f'group=~"{"|".join(groups)}"' in lag["expr"]
    for alert in ("PlaneWorkersDeadLetters", "PlaneWorkersWebhookEndpointsDisabled"):
        (r,) = rules(rule, alert)
        assert r["expr"].count(f'namespace="{NAMESPACE}"') == 3, r["expr"]
    custom = rule_of(merged({"prometheusRule": {"consumerSelector": 'cluster="eu", namespace="plane"'}}))
    (lag,) = rules(custom, "PlaneWorkersConsumerLagHigh")
    assert 'cluster="eu", namespace="plane", group=~' in lag["expr"]


def test_consumer_down_needs_the_service_monitor_and_skips_consumers_that_may_scale_to_zero():
    rule = rule_of()
    down = {r["labels"]["consumer"]: r for r in rules(rule, "PlaneWorkersConsumerDown")}
    # Only consumers that run: a disabled one (embeddings by default) is never "down".
    assert set(down) == {spec.name for spec in DEFAULT_CONSUMERS}
    for name, r in down.items():
        assert r["expr"] == f'absent(up{{namespace="{NAMESPACE}", job="plane-workers-{name}"}} == 1)'
    without_monitor = merged({"metrics": {"serviceMonitor": {"enabled": False}}})
    assert rules(rule_of(without_monitor), "PlaneWorkersConsumerDown") == []
    name = registry.CONSUMERS[0].name
    to_zero = merged(
        {"consumers": {name: {"autoscaling": {"keda": {"enabled": True, "minReplicaCount": 0}}}}}
    )
    assert name not in {r["labels"]["consumer"] for r in rules(rule_of(to_zero), "PlaneWorkersConsumerDown")}


def test_a_job_without_success_alerts_after_the_schedules_longest_gap_plus_its_deadlines():
    rule = rule_of()
    stale = [r for r in rules(rule, "PlaneWorkersJobNoRecentSuccess") if "for" not in r]
    never = [r for r in rules(rule, "PlaneWorkersJobNoRecentSuccess") if "for" in r]
    scheduled = [job for job in DEFAULT_JOBS if not job.manual]  # a back-fill is never due
    assert {r["labels"]["cronjob"] for r in stale} == {job.name for job in scheduled}
    assert {r["labels"]["cronjob"] for r in never} == {job.name for job in scheduled}
    for job in scheduled:
        limit = (
            helm_export.expected_interval_seconds(job.schedule)
            + job.active_deadline_seconds
            + job.starting_deadline_seconds
            + 3600
        )
        (r,) = [r for r in stale if r["labels"]["cronjob"] == job.name]
        assert r["expr"].endswith(f'{{job="plane-workers-{job.name}"}}) > {limit}'), r["expr"]
        (r,) = [r for r in never if r["labels"]["cronjob"] == job.name]
        assert r["for"] == f"{limit}s"


def test_expected_interval_is_the_longest_gap_of_the_schedule():
    assert helm_export.expected_interval_seconds("30 2 * * *") == 86400
    assert helm_export.expected_interval_seconds("20 */6 * * *") == 6 * 3600
    assert helm_export.expected_interval_seconds("0 3 * * 0") == 7 * 86400
    assert helm_export.expected_interval_seconds("*/5 * * * 1-5") == 2 * 86400 + 5 * 60  # the weekend
    assert helm_export.expected_interval_seconds("0 0 1 * *") == 31 * 86400
    exported = yaml.safe_load((CHART_DIR / "workloads.yaml").read_text())["cronjobs"]
    for job in registry.JOBS:
        assert exported[job.name]["expectedIntervalSeconds"] == helm_export.expected_interval_seconds(
            job.schedule
        )


def staleness_limit(values: dict[str, Any], job: str) -> int:
    (r,) = [
        r
        for r in rules(rule_of(values), "PlaneWorkersJobNoRecentSuccess")
        if r["labels"]["cronjob"] == job and "for" not in r
    ]
    return int(r["expr"].rsplit(">", 1)[1])


def test_a_changed_schedule_keeps_its_limit_or_asks_for_one():
    job = next(j for j in registry.JOBS if j.schedule.endswith("* * *") and j.schedule.split()[1].isdigit())
    default = staleness_limit(ENABLED, job.name)
    minute, hour = job.schedule.split()[:2]
    other_time = f"{(int(minute) + 7) % 60} {(int(hour) + 5) % 24} * * *"
    assert staleness_limit(merged({"cronjobs": {job.name: {"schedule": other_time}}}), job.name) == default

    hourly = merged({"cronjobs": {job.name: {"schedule": "0 */2 * * *"}}})
    with pytest.raises(helm_python.HelmRenderError, match=f"jobNoRecentSuccess.maxAgeSeconds.{job.name}"):
        render_chart(hourly)
    explicit = merged(
        hourly, {"prometheusRule": {"jobNoRecentSuccess": {"maxAgeSeconds": {job.name: 10800}}}}
    )
    assert staleness_limit(explicit, job.name) == 10800
    both = merged({"prometheusRule": {"jobNoRecentSuccess": {"missedRuns": 2, "graceSeconds": 0}}})
    assert staleness_limit(both, job.name) == default + 86400 - 3600

    with pytest.raises(helm_python.HelmRenderError, match=r"maxAgeSeconds\.no-such-job: no such job"):
        render_chart(
            merged({"prometheusRule": {"jobNoRecentSuccess": {"maxAgeSeconds": {"no-such-job": 60}}}})
        )


def test_suspended_disabled_and_switched_off_alerts_are_left_out():
    job = registry.JOBS[0].name
    suspended = rule_of(merged({"cronjobs": {job: {"suspend": True}}}))
    assert job not in {r["labels"]["cronjob"] for r in rules(suspended, "PlaneWorkersJobNoRecentSuccess")}
    off = rule_of(
        merged({"prometheusRule": {"disabledAlerts": ["PlaneWorkersDeadLetters", "PlaneWorkersJobFailed"]}})
    )
    expected = ALERTS - BRIDGE_ALERTS - {"PlaneWorkersDeadLetters", "PlaneWorkersJobFailed"}
    assert {r["alert"] for r in rules(off)} == expected


def test_alert_labels_severities_and_the_pushgateway_job_label():
    values = merged(
        {
            "prometheusRule": {
                "additionalAlertLabels": {"team": "platform"},
                "pushgatewayJobLabel": "exported_job",
                "jobFailed": {"severity": "critical"},
            }
        }
    )
    rule = rule_of(values)
    assert all(r["labels"]["team"] == "platform" for r in rules(rule))
    (failed,) = rules(rule, "PlaneWorkersJobFailed")
    assert failed["labels"]["severity"] == "critical"
    assert (
        "max by (exported_job, outcome)" in failed["expr"]
        and 'exported_job=~"plane-workers-(' in failed["expr"]
    )
    assert "{{ $labels.exported_job }}" in failed["annotations"]["summary"]
    assert all("exported_job=" in r["expr"] for r in rules(rule, "PlaneWorkersJobNoRecentSuccess"))


@pytest.mark.parametrize(
    "bad",
    [
        {"prometheusRule": {"enabled": "yes"}},
        {"prometheusRule": {"colour": "red"}},
        {"prometheusRule": {"consumerLag": {"source": "keda"}}},
        {"prometheusRule": {"consumerLag": {"threshold": 0}}},
        {"prometheusRule": {"consumerLag": {"for": "15 minutes"}}},
        {"prometheusRule": {"deadLetters": {"window": "1hour"}}},
        {"prometheusRule": {"pushgatewayJobLabel": "instance"}},
        {"prometheusRule": {"runbookBaseUrl": "runbooks.example"}},
        {"prometheusRule": {"disabledAlerts": ["PlaneWorkersEverything"]}},
        {"prometheusRule": {"consumerSelector": "namespace=plane"}},
        {"prometheusRule": {"jobNoRecentSuccess": {"missedRuns": 0}}},
        {"prometheusRule": {"jobNoRecentSuccess": {"maxAgeSeconds": {"hard-delete": "1d"}}}},
        {"prometheusRule": {"labels": {"release": 1}}},
        {"dashboard": {"sidecarLabel": "not a label"}},
        {"dashboard": {"sidecarLabelValue": "-1-"}},
        {"dashboard": {"namespace": "Monitoring"}},
        {"dashboard": {"folder": "Plane"}},
    ],
)
def test_schema_refuses_bad_monitoring_values(bad):
    with pytest.raises(helm_python.HelmValuesError):
        render_chart({"monitoring": bad})


def write_rules(rule: dict[str, Any], path: Path, *, annotations: bool = True) -> None:
    groups = rule["spec"]["groups"]
    if not annotations:  # promtool compares annotations exactly: the label tests leave them out
        groups = [
            {**g, "rules": [{k: v for k, v in r.items() if k != "annotations"} for r in g["rules"]]}
            for g in groups
        ]
    path.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.skip("promtool not installed (apt-get install prometheus); .ci/run installs it")
    return found


def test_promtool_checks_and_unit_tests_the_rules(tmp_path):
    binary = promtool()
    write_rules(rule_of(), tmp_path / "rules.yaml")
    write_rules(rule_of(), tmp_path / "rules-labels.yaml", annotations=False)
    kafka_exporter = rule_of(merged({"prometheusRule": {"consumerLag": {"source": "kafka-exporter"}}}))
    write_rules(kafka_exporter, tmp_path / "rules-kafka-exporter.yaml", annotations=False)
    write_rules(rule_of(WITH_BRIDGE), tmp_path / "rules-bridge.yaml", annotations=False)
    tests = sorted(PROMTOOL_TESTS.glob("*.test.yaml"))
    assert {t.name for t in tests} == {
        "alerts.test.yaml",
        "annotations.test.yaml",
        "celery-bridge.test.yaml",
        "kafka-exporter.test.yaml",
    }
    for test in tests:
        shutil.copy(test, tmp_path / test.name)

    check = subprocess.run(
        [binary, "check", "rules", "rules.yaml", "rules-kafka-exporter.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    unit = subprocess.run(
        [binary, "test", "rules", *(t.name for t in tests)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert unit.returncode == 0, unit.stdout + unit.stderr
    assert unit.stdout.count("SUCCESS") == len(tests)


def test_ci_installs_promtool():
    script = (REPO_ROOT / ".ci" / "run").read_text()
    install = script.index("command -v promtool")
    assert install < script.index("make test")
