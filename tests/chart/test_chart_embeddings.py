"""Plane AI's embeddings consumer: an add-on, off by default; enabled, profile gpu or cpu."""

from __future__ import annotations

from typing import Any

import helm_python
import pytest
import yaml
from chart_harness import CHART_DIR, EVERYTHING_ON, RELEASE, container, render_chart

from shared import registry

NAME = "embeddings"
OBJECT = f"{RELEASE}-{NAME}"
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
MONITORING = {
    "monitoring": {"prometheusRule": {"enabled": True}},
    "metrics": {"serviceMonitor": {"enabled": True}},
}


def enabled(profile: str | None = None, **values: Any) -> dict[str, Any]:
    settings: dict[str, Any] = {"enabled": True}
    if profile:
        settings["profile"] = profile
    return {"consumers": {NAME: settings}, **values}


def pod_of(values: dict[str, Any]) -> dict[str, Any]:
    deployments = render_chart(values).of_kind("Deployment")
    return deployments[OBJECT]["spec"]["template"]["spec"]


def test_the_registry_marks_it_optional_and_gpu():
    (spec,) = [c for c in registry.CONSUMERS if c.name == NAME]
    assert spec.enabled_by_default is False
    assert spec.resources.gpu == 1
    exported = yaml.safe_load((CHART_DIR / "workloads.yaml").read_text())["consumers"]
    assert exported[NAME]["enabled"] is False and exported[NAME]["gpu"] is True
    # Every other consumer is on by default but ai-plans, Plane AI's too.
    assert {n for n, c in exported.items() if not c["enabled"]} == {NAME, "ai-plans"}


def test_the_gpu_profile_values_enable_all_of_plane_ai():
    # ci/gpu-values.yaml is the one switch README "Plane AI embeddings" points operators at.
    values = yaml.safe_load((CHART_DIR / "ci" / "gpu-values.yaml").read_text())
    rendered = render_chart(values | {"image": {"gpuTag": "0.1.0-gpu"}})
    off = [s for s in (*registry.CONSUMERS, *registry.JOBS) if not s.enabled_by_default]
    names = rendered.names("Deployment") | rendered.names("CronJob")
    assert {f"{RELEASE}-{s.name}" for s in off} <= names
    (reconcile,) = [c for n, c in rendered.of_kind("CronJob").items() if n.endswith("-ai-reconcile")]
    assert reconcile["spec"]["schedule"] == registry.job("ai-reconcile").schedule


@pytest.mark.parametrize(
    "values",
    [{}, EVERYTHING_ON, MONITORING, {"consumerDefaults": {"autoscaling": {"hpa": {"enabled": True}}}}],
    ids=["defaults", "everything-on", "monitoring", "hpa"],
)
def test_off_by_default_with_nothing_of_its_own(values: dict[str, Any]):
    rendered = render_chart(values)
    # No Deployment, ScaledObject, HPA, PDB or metrics Service for it.
    assert not [o for o in rendered.objects if o["metadata"]["name"] == OBJECT]
    # Its alerts are not rendered either, so a consumer that is not there cannot be "down".
    for rule in rendered.of_kind("PrometheusRule").values():
        for group in rule["spec"]["groups"]:
            for r in group["rules"]:
                assert r.get("labels", {}).get("consumer") != NAME, r
                assert f"plane.{NAME}" not in r.get("expr", ""), r
    # Its topic is still made: issue-activity produces to it whether or not it runs.
    assert "embeddings" in yaml.safe_load((CHART_DIR / "workloads.yaml").read_text())["topics"]


def test_enabled_gets_its_own_objects_like_any_consumer():
    rendered = render_chart(enabled(**EVERYTHING_ON) | MONITORING)
    assert OBJECT in rendered.names("Deployment")
    assert OBJECT in rendered.names("ScaledObject")
    rule_consumers = {
        r.get("labels", {}).get("consumer")
        for rule in rendered.of_kind("PrometheusRule").values()
        for group in rule["spec"]["groups"]
        for r in group["rules"]
    }
    assert NAME in rule_consumers


def test_profile_gpu_is_the_default_when_enabled():
    pool = {"nodeSelector": {"nvidia.com/gpu.present": "true"}, "runtimeClassName": "nvidia"}
    pod = pod_of(enabled(gpuNodePool=pool))
    worker = container(pod)
    assert worker["image"] == "plane-workers:0.1.0-gpu"
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert GPU_TOLERATION in pod["tolerations"]
    assert pod["runtimeClassName"] == "nvidia"
    assert pod_of(enabled("gpu", gpuNodePool=pool)) == pod


def test_profile_gpu_without_pool_values_sets_no_node_selector_or_runtime_class():
    pod = pod_of(enabled("gpu"))
    assert container(pod)["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert "nodeSelector" not in pod and "runtimeClassName" not in pod


def test_profile_cpu_keeps_the_gpu_image_without_gpu_placement():
    pool = {"nodeSelector": {"nvidia.com/gpu.present": "true"}, "runtimeClassName": "nvidia"}
    pod = pod_of(enabled("cpu", gpuNodePool=pool))
    worker = container(pod)
    assert worker["image"] == "plane-workers:0.1.0-gpu"  # the only image with torch
    assert "nvidia.com/gpu" not in worker["resources"]["limits"]
    assert worker["resources"]["limits"]["memory"] == "3Gi"
    assert "nodeSelector" not in pod and "tolerations" not in pod and "runtimeClassName" not in pod


@pytest.mark.parametrize("profile", ["gpu", "cpu"])
def test_startup_probe_waits_for_the_model_load(profile: str):
    worker = container(pod_of(enabled(profile)))
    startup = worker["startupProbe"]
    # The health file appears only after warm-up (the model load): ten minutes or more.
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 600
    assert startup["exec"]["command"][:2] == ["plane-workers", "healthcheck"]
    # Other consumers keep the default budget.
    other = render_chart().of_kind("Deployment")[f"{RELEASE}-notifications"]["spec"]["template"]["spec"]
    assert container(other)["startupProbe"]["failureThreshold"] == 30


PINNED = {"image": {"repository": "r/pw", "tag": "v2@sha256:" + "a" * 64}}


def test_a_pinned_digest_without_gpu_tag_renders_while_embeddings_are_off():
    rendered = render_chart(PINNED)
    assert OBJECT not in rendered.names("Deployment")


@pytest.mark.parametrize("profile", ["gpu", "cpu"])
def test_enabling_with_a_pinned_digest_and_no_gpu_tag_fails_clearly(profile: str):
    with pytest.raises(
        helm_python.HelmRenderError,
        match=r"embeddings needs the GPU image.*set image\.gpuTag.*consumers\.embeddings\.enabled=false",
    ):
        render_chart(enabled(profile, **PINNED))


def test_enabling_with_a_pinned_digest_and_a_gpu_tag_renders():
    gpu_ref = "v2-gpu@sha256:" + "b" * 64
    values = enabled(image={**PINNED["image"], "gpuRepository": "r/pw-gpu", "gpuTag": gpu_ref})
    assert container(pod_of(values))["image"] == f"r/pw-gpu:{gpu_ref}"


def test_schema_refuses_an_unknown_profile():
    with pytest.raises(helm_python.HelmValuesError):
        render_chart(enabled("tpu"))
