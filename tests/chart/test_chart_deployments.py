"""Registry deployments that are not Kafka consumers (the Celery bridge): off by default, and a
valid Deployment running the registry's command line once enabled."""

from __future__ import annotations

from chart_harness import (
    DEFAULT_CONSUMERS,
    KUBE_VERSIONS,
    RELEASE,
    Rendered,
    container,
    render_chart,
    validation_errors,
)

from shared import registry

BRIDGE = registry.DEPLOYMENTS[0]


def test_registry_deployments_are_off_by_default(default_render: Rendered):
    names = default_render.names("Deployment")
    for spec in registry.DEPLOYMENTS:
        assert not spec.enabled
        assert f"{RELEASE}-{spec.name}" not in names


def test_enabled_bridge_is_a_valid_deployment_running_its_command():
    values = {"deployments": {BRIDGE.name: {"enabled": True, "replicas": 2}}}
    rendered = render_chart(values)
    deployment = rendered.of_kind("Deployment")[f"{RELEASE}-{BRIDGE.name}"]
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]["spec"]
    worker = container(pod)
    assert worker["args"] == list(BRIDGE.args)
    # The bridge touches the health file and marks itself ready once connected to RabbitMQ.
    assert worker["livenessProbe"]["exec"]["command"][:2] == ["plane-workers", "healthcheck"]
    assert worker["resources"]["limits"]["memory"] == BRIDGE.resources.memory_limit
    assert pod["terminationGracePeriodSeconds"] > 10  # its writes in flight get 10 s to confirm
    for version in KUBE_VERSIONS:
        assert validation_errors(deployment, version) == []
    # Consumers are unchanged by it.
    assert {f"{RELEASE}-{c.name}" for c in DEFAULT_CONSUMERS} <= rendered.names("Deployment")


def test_bridge_dlq_topic_is_in_the_topic_set():
    assert "celery-bridge.dlq" in dict(registry.all_topics())


def test_enabled_bridge_is_scraped_like_a_consumer():
    values = {
        "deployments": {BRIDGE.name: {"enabled": True}},
        "metrics": {"serviceMonitor": {"enabled": True}},
    }
    rendered = render_chart(values)
    service = rendered.of_kind("Service")[f"{RELEASE}-{BRIDGE.name}"]
    pod = rendered.of_kind("Deployment")[f"{RELEASE}-{BRIDGE.name}"]["spec"]["template"]
    labels = pod["metadata"]["labels"]
    assert all(labels.get(k) == v for k, v in service["spec"]["selector"].items())
    ports = {p["name"]: p["containerPort"] for p in container(pod["spec"])["ports"]}
    assert service["spec"]["ports"][0]["port"] == ports["metrics"]
    assert BRIDGE.name not in {s.split(f"{RELEASE}-", 1)[-1] for s in render_chart().names("Service")}
