"""Replicas, HPA xor KEDA, the partition ceiling, PDBs and the metrics scrape objects."""

from __future__ import annotations

from pathlib import Path

import helm_python
import pytest
from chart_harness import (
    DEFAULT_CONSUMERS,
    EVERYTHING_ON,
    EXTRA_GPU_CONSUMER,
    RELEASE,
    Rendered,
    container,
    render_chart,
)

from shared import registry

HPA = {"consumerDefaults": {"autoscaling": {"hpa": {"enabled": True}}}}
KEDA = {"consumerDefaults": {"autoscaling": {"keda": {"enabled": True}}}}
GPU_CONSUMER = f"{RELEASE}-{EXTRA_GPU_CONSUMER.name}"


def replicas(rendered: Rendered) -> dict[str, int | None]:
    return {n: d["spec"].get("replicas") for n, d in rendered.of_kind("Deployment").items()}


def test_fixed_replicas_without_an_autoscaler(default_render: Rendered):
    assert set(replicas(default_render).values()) == {1}
    assert default_render.of_kind("HorizontalPodAutoscaler") == {}
    assert default_render.of_kind("ScaledObject") == {}


@pytest.mark.parametrize(("values", "kind"), [(HPA, "HorizontalPodAutoscaler"), (KEDA, "ScaledObject")])
def test_an_autoscaler_owns_the_replica_count(values: dict, kind: str):
    rendered = render_chart(values)
    assert set(replicas(rendered).values()) == {None}
    assert set(rendered.of_kind(kind)) == set(rendered.of_kind("Deployment"))
    other = {"HorizontalPodAutoscaler", "ScaledObject"} - {kind}
    assert rendered.of_kind(other.pop()) == {}


def test_falsy_per_consumer_values_win_over_the_defaults():
    # Helm's mergeOverwrite keeps a default when the override is "empty" in some versions; the
    # chart relies on 0, false and [] overriding, so pin it.
    consumer = registry.CONSUMERS[0].name
    values = {
        "consumerDefaults": {"replicas": 2, "extraArgs": ["--x"]},
        "consumers": {consumer: {"replicas": 0, "extraArgs": []}},
    }
    deployment = render_chart(values).of_kind("Deployment")[f"{RELEASE}-{consumer}"]
    assert deployment["spec"]["replicas"] == 0
    assert container(deployment["spec"]["template"]["spec"])["args"] == registry.CONSUMERS[0].args


def test_hpa_and_keda_together_fail():
    both = {"consumerDefaults": {"autoscaling": {"hpa": {"enabled": True}, "keda": {"enabled": True}}}}
    with pytest.raises(helm_python.HelmRenderError, match="both enabled"):
        render_chart(both)


def test_per_consumer_autoscaler_choice():
    consumer = registry.CONSUMERS[0].name
    values = {
        **HPA,
        "consumers": {consumer: {"autoscaling": {"hpa": {"enabled": False}, "keda": {"enabled": True}}}},
    }
    rendered = render_chart(values)
    assert f"{RELEASE}-{consumer}" in rendered.of_kind("ScaledObject")
    assert f"{RELEASE}-{consumer}" not in rendered.of_kind("HorizontalPodAutoscaler")


def test_no_more_members_than_partitions(extended_chart: Path):
    # EXTRA_GPU_CONSUMER has 3 partitions; ask for more everywhere.
    many = {"replicas": 10, "autoscaling": {"hpa": {"maxReplicas": 10}, "keda": {"maxReplicaCount": 10}}}
    assert replicas(render_chart({"consumerDefaults": many}, chart_dir=extended_chart))[GPU_CONSUMER] == 3
    hpa = render_chart(
        {"consumerDefaults": {**many, "autoscaling": {"hpa": {"enabled": True, "maxReplicas": 10}}}},
        chart_dir=extended_chart,
    ).of_kind("HorizontalPodAutoscaler")[GPU_CONSUMER]
    assert hpa["spec"]["maxReplicas"] == 3
    keda = render_chart(
        {"consumerDefaults": {**many, "autoscaling": {"keda": {"enabled": True, "maxReplicaCount": 10}}}},
        chart_dir=extended_chart,
    ).of_kind("ScaledObject")[GPU_CONSUMER]
    assert keda["spec"]["maxReplicaCount"] == 3


def test_keda_scales_on_the_consumer_group_lag_of_the_physical_topic(extended_chart: Path):
    values = {**EVERYTHING_ON, "config": {**EVERYTHING_ON["config"], "KAFKA_TOPIC_PREFIX": "prod."}}
    scaled = render_chart(values, chart_dir=extended_chart).of_kind("ScaledObject")
    # None for a consumer that is off (embeddings by default): it would scale a missing Deployment.
    assert set(scaled) == {f"{RELEASE}-{s.name}" for s in (*DEFAULT_CONSUMERS, EXTRA_GPU_CONSUMER)}
    for spec in (*DEFAULT_CONSUMERS, EXTRA_GPU_CONSUMER):
        obj = scaled[f"{RELEASE}-{spec.name}"]
        assert obj["apiVersion"] == "keda.sh/v1alpha1"
        assert obj["spec"]["scaleTargetRef"] == {"name": f"{RELEASE}-{spec.name}"}
        (trigger,) = obj["spec"]["triggers"]
        assert trigger["type"] == "kafka"
        assert trigger["authenticationRef"] == {"name": "kafka-sasl"}
        metadata = trigger["metadata"]
        assert metadata["topic"] == f"prod.{spec.topic}"
        assert metadata["consumerGroup"] == f"prod.{spec.group}"
        assert metadata["bootstrapServers"] == "kafka:9092"
        # KEDA reads trigger metadata as strings.
        assert all(isinstance(value, str) for value in metadata.values())


def test_pod_disruption_budgets(default_render: Rendered):
    assert default_render.of_kind("PodDisruptionBudget") == {}
    rendered = render_chart({"consumerDefaults": {"podDisruptionBudget": {"enabled": True}}})
    budgets = rendered.of_kind("PodDisruptionBudget")
    assert set(budgets) == set(rendered.of_kind("Deployment"))
    for name, budget in budgets.items():
        deployment = rendered.of_kind("Deployment")[name]
        assert budget["spec"]["selector"] == deployment["spec"]["selector"]
        assert budget["spec"]["maxUnavailable"] == 1


def test_service_monitor_scrapes_every_consumer(default_render: Rendered):
    assert default_render.of_kind("Service") == {}
    assert default_render.of_kind("ServiceMonitor") == {}
    rendered = render_chart(EVERYTHING_ON)
    services = rendered.of_kind("Service")
    assert set(services) == set(rendered.of_kind("Deployment"))
    (monitor,) = rendered.of_kind("ServiceMonitor").values()
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert monitor["spec"]["endpoints"] == [{"port": "metrics", "path": "/metrics", "interval": "30s"}]
    selector = monitor["spec"]["selector"]["matchLabels"]
    for name, service in services.items():
        assert service["spec"]["clusterIP"] == "None"
        assert service["spec"]["ports"][0]["name"] == "metrics"
        assert selector.items() <= service["metadata"]["labels"].items()
        pod_labels = rendered.of_kind("Deployment")[name]["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= pod_labels.items()
