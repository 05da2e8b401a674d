"""values.yaml and values.schema.json: closed at every level, and in step with the code."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import helm_python
import jsonschema
import pytest
import yaml
from chart_harness import CHART_DIR, render_chart

from shared import registry, settings

SCHEMA = json.loads((CHART_DIR / "values.schema.json").read_text())
VALUES = yaml.safe_load((CHART_DIR / "values.yaml").read_text())

# Settings the chart sets itself (the probes and the metrics port depend on them) or that only
# make sense outside a cluster.
CHART_OWNED_SETTINGS = {
    "HEALTH_FILE",
    "METRICS_PORT",
    "PLANE_WORKERS_STATE_DIR",
    # Paths inside the pod where kafkaTls mounts its Secrets.
    "KAFKA_SSL_CA_LOCATION",
    "KAFKA_SSL_CERTIFICATE_LOCATION",
    "KAFKA_SSL_KEY_LOCATION",
}
# Not flagged `secret` in settings.py, but a DSN carries the database password.
# URLs that carry a password: from existingSecret or secretEnv, never the ConfigMap.
CREDENTIAL_SETTINGS = {"DATABASE_URL", "AMQP_URL"}
# Where the schema deliberately accepts anything: Helm's `global`, and Kubernetes objects passed
# through untouched (the API server validates those).
OPEN_OBJECTS = {"/properties/global", "/$defs/kubernetesObject"}


def object_schemas(node: Any, pointer: str = "") -> Iterator[tuple[str, dict]]:
    """(JSON pointer, schema) of every schema in the document that describes an object."""
    if isinstance(node, dict):
        types = node.get("type")
        if types == "object" or (isinstance(types, list) and "object" in types):
            yield pointer, node
        for key, child in node.items():
            yield from object_schemas(child, f"{pointer}/{key}")
    elif isinstance(node, list):
        for index, child in enumerate(node):
            yield from object_schemas(child, f"{pointer}/{index}")


def test_schema_is_valid_draft_2020_12():
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


def test_every_object_level_is_closed():
    open_levels = [
        pointer
        for pointer, node in object_schemas(SCHEMA)
        if pointer not in OPEN_OBJECTS
        and node.get("additionalProperties", True) is True
        and "patternProperties" not in node
    ]
    assert open_levels == []


def test_values_yaml_passes_the_schema():
    jsonschema.Draft202012Validator(SCHEMA).validate(VALUES)
    with helm_python.Chart.load(CHART_DIR) as chart:
        chart.validate_schema()


@pytest.mark.parametrize(
    "values",
    [
        {"imagee": {}},
        {"image": {"tagg": "1"}},
        {"config": {"LOG_LEVELL": "INFO"}},
        {"consumerDefaults": {"replica": 2}},
        {"consumerDefaults": {"autoscaling": {"keda": {"lagTreshold": 5}}}},
        {"consumers": {registry.CONSUMERS[0].name: {"replica": 2}}},
        {"cronjobs": {registry.JOBS[0].name: {"scheduel": "* * * * *"}}},
        {"securityContext": {"runAsNonroot": True}},
        {"metrics": {"serviceMonitor": {"enable": True}}},
    ],
    ids=lambda values: json.dumps(values, separators=(",", ":")),
)
def test_unknown_keys_are_rejected(values: dict):
    with pytest.raises(helm_python.HelmValuesError, match="additional properties"):
        render_chart(values)


@pytest.mark.parametrize(
    "values",
    [
        pytest.param({"config": {"KAFKA_SASL_PASSWORD": "hunter2"}}, id="secret-in-config"),
        pytest.param({"config": {"DATABASE_URL": "postgresql://u:p@db/plane"}}, id="dsn-in-config"),
        pytest.param({"config": {"OPENSEARCH_PASSWORD": "hunter2"}}, id="opensearch-password"),
        pytest.param({"config": {"OPENSEARCH_URL": "https://u:pw@os:9200"}}, id="opensearch-url-userinfo"),
        pytest.param({"config": {"EMBEDDING_INDEX": "elastic"}}, id="unknown-vector-index"),
        pytest.param({"config": {"KAFKA_BOOTSTRAP_SERVERS": ""}}, id="embedded-broker-in-cluster"),
        pytest.param({"existingSecret": ""}, id="no-secret"),
        pytest.param({"cronjobDefaults": {"schedule": "0 * * * *"}}, id="schedule-for-every-job"),
        pytest.param({"cronjobs": {"Bad_Name": {}}}, id="invalid-workload-name"),
        pytest.param(
            {"cronjobs": {registry.JOBS[0].name: {"schedule": "TZ=Europe/Paris 0 1 * * *"}}},
            id="schedule-with-time-zone",
        ),
        pytest.param({"consumerDefaults": {"resources": {"limits": {"memory": "lots"}}}}, id="bad-quantity"),
    ],
)
def test_invalid_values_are_rejected(values: dict):
    with pytest.raises(helm_python.HelmValuesError):
        render_chart(values)


def test_config_accepts_exactly_the_non_secret_settings():
    settable = {
        v.env
        for v in settings.VARIABLES
        if not v.secret and v.env not in CHART_OWNED_SETTINGS | CREDENTIAL_SETTINGS
    }
    accepted = set(SCHEMA["$defs"]["config"]["properties"])
    assert accepted == settable, "add new settings to the `config` schema (or mark them secret)"


def test_workload_names_follow_the_registry_pattern():
    assert SCHEMA["$defs"]["workloadName"]["pattern"] == registry.NAME_PATTERN.pattern
