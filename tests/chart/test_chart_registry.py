"""The chart renders exactly the registry's workloads, and nothing in it names one by hand."""

from __future__ import annotations

import re
from pathlib import Path

import helm_python
import pytest
import yaml
from chart_harness import (
    CHART_DIR,
    DEFAULT_CONSUMERS,
    DEFAULT_JOBS,
    EXTRA_GPU_CONSUMER,
    RELEASE,
    Rendered,
    container,
    render_chart,
)

from shared import helm_export, registry


def object_name(workload: str) -> str:
    return f"{RELEASE}-{workload}"


def test_workloads_yaml_is_current():
    assert helm_export.is_current(), (
        "charts/plane-workers/workloads.yaml is stale: run `plane-workers export-helm`"
    )


def test_helm_packages_workloads_yaml():
    # .helmignore must not drop the file the templates read with .Files.Get.
    with helm_python.Chart.load(CHART_DIR) as chart:
        assert "workloads.yaml" in {f["name"] for f in chart.files}


def test_templates_name_no_workload():
    # Workloads come from workloads.yaml only; a name in a template would be a second list.
    names = [s.name for s in (*registry.CONSUMERS, *registry.JOBS)]
    for template in (CHART_DIR / "templates").rglob("*"):
        if not template.is_file():
            continue
        text = template.read_text()
        named = [n for n in names if re.search(rf"(?<![\w-]){re.escape(n)}(?![\w-])", text)]
        assert named == [], f"{template.name} hard-codes a workload"


def test_one_deployment_per_consumer_enabled_by_default(default_render: Rendered):
    assert default_render.names("Deployment") == {object_name(s.name) for s in DEFAULT_CONSUMERS}
    # The optional ones appear when enabled by name.
    optional = {s.name for s in registry.CONSUMERS} - {s.name for s in DEFAULT_CONSUMERS}
    assert optional, "no consumer is off by default: drop this half of the test"
    rendered = render_chart({"consumers": {name: {"enabled": True} for name in optional}})
    assert rendered.names("Deployment") == {object_name(s.name) for s in registry.CONSUMERS}


# Every job on: the optional ones (Plane AI's) by name, as an operator enabling Plane AI sets them.
OPTIONAL_JOBS = [s for s in registry.JOBS if not s.enabled_by_default]
ALL_JOBS_ON = {"cronjobs": {s.name: {"enabled": True} for s in OPTIONAL_JOBS}}


def test_one_cronjob_per_job_enabled_by_default(default_render: Rendered):
    assert default_render.names("CronJob") == {object_name(s.name) for s in DEFAULT_JOBS}
    # Plane AI is an add-on: a default install runs none of its CronJobs.
    assert OPTIONAL_JOBS, "no job is off by default: drop this half of the test"
    assert not [n for n in default_render.names("CronJob") if n.startswith(f"{RELEASE}-ai-")]
    rendered = render_chart(ALL_JOBS_ON)
    assert rendered.names("CronJob") == {object_name(s.name) for s in registry.JOBS}
    # One enabled by name brings exactly that one; cronjobDefaults.enabled does not switch them on.
    one = render_chart({"cronjobs": {"ai-reconcile": {"enabled": True}}})
    assert one.names("CronJob") == {object_name(s.name) for s in DEFAULT_JOBS} | {object_name("ai-reconcile")}
    assert render_chart({"cronjobDefaults": {"enabled": True}}).names("CronJob") == default_render.names(
        "CronJob"
    )


def test_cronjob_schedules_and_deadlines_come_from_the_registry():
    cronjobs = render_chart(ALL_JOBS_ON).of_kind("CronJob")
    assert cronjobs[object_name("ai-reconcile")]["spec"]["schedule"] == "* * * * *"
    for spec in registry.JOBS:
        cronjob = cronjobs[object_name(spec.name)]["spec"]
        assert cronjob["schedule"] == spec.schedule
        assert cronjob["startingDeadlineSeconds"] == spec.starting_deadline_seconds
        job = cronjob["jobTemplate"]["spec"]
        assert job["activeDeadlineSeconds"] == spec.active_deadline_seconds
        assert job["backoffLimit"] == spec.backoff_limit


def test_container_args_are_the_registry_args(default_render: Rendered):
    expected = {object_name(s.name): s.args for s in (*DEFAULT_CONSUMERS, *DEFAULT_JOBS)}
    assert {name: container(pod)["args"] for name, pod in default_render.pod_specs()} == expected


def test_extra_args_follow_the_registry_args():
    consumer, job = registry.CONSUMERS[0], registry.JOBS[0]
    rendered = render_chart(
        {
            "consumerDefaults": {"extraArgs": ["--a"]},
            "consumers": {consumer.name: {"extraArgs": ["--b", "1"]}},
            "cronjobs": {job.name: {"extraArgs": ["--dry-run"]}},
        }
    )
    args = {name: container(pod)["args"] for name, pod in rendered.pod_specs()}
    # Lists are replaced, not concatenated, by the per-name values (Helm's merge semantics).
    assert args[object_name(consumer.name)] == [*consumer.args, "--b", "1"]
    assert args[object_name(job.name)] == [*job.args, "--dry-run"]


@pytest.mark.parametrize(
    ("section", "name"),
    [("consumers", s.name) for s in (*DEFAULT_CONSUMERS, EXTRA_GPU_CONSUMER)]
    + [("cronjobs", s.name) for s in DEFAULT_JOBS],
)
def test_disabling_a_workload_removes_exactly_its_objects(extended_chart: Path, section: str, name: str):
    # Every optional per-consumer object on, so "exactly" covers Services, PDBs and autoscalers.
    # The extended chart has two consumers, so release-wide objects (the ServiceMonitor) stay.
    features = {
        "consumerDefaults": {
            "autoscaling": {"keda": {"enabled": True}},
            "podDisruptionBudget": {"enabled": True},
        },
        "metrics": {"serviceMonitor": {"enabled": True}},
    }

    def objects(values: dict) -> set[tuple[str, str]]:
        rendered = render_chart(values, chart_dir=extended_chart)
        return {(o["kind"], o["metadata"]["name"]) for o in rendered.objects}

    before = objects(features)
    after = objects({**features, section: {name: {"enabled": False}}})
    assert after <= before
    removed = before - after
    assert removed, f"disabling {name} removed nothing"
    assert {obj_name for _, obj_name in removed} == {object_name(name)}


def test_defaults_off_and_one_enabled_by_name():
    consumer = registry.CONSUMERS[0]
    rendered = render_chart(
        {
            "consumerDefaults": {"enabled": False},
            "cronjobDefaults": {"enabled": False},
            "consumers": {consumer.name: {"enabled": True}},
        }
    )
    assert rendered.names("Deployment") == {object_name(consumer.name)}
    assert rendered.names("CronJob") == set()


@pytest.mark.parametrize("section", ["consumers", "cronjobs"])
def test_values_for_an_unknown_workload_fail(section: str):
    with pytest.raises(helm_python.HelmRenderError, match=f"{section}.no-such-worker"):
        render_chart({section: {"no-such-worker": {"enabled": False}}})


def test_a_new_registry_consumer_needs_no_template_change(extended_chart: Path):
    rendered = render_chart(chart_dir=extended_chart)
    assert object_name(EXTRA_GPU_CONSUMER.name) in rendered.names("Deployment")
    exported = yaml.safe_load((extended_chart / "workloads.yaml").read_text())
    assert exported["consumers"][EXTRA_GPU_CONSUMER.name]["gpu"] is True


def test_gpu_consumer_on_the_gpu_pool(extended_chart: Path):
    values = {
        "image": {"gpuTag": "0.1.0-gpu"},
        "gpuNodePool": {
            "nodeSelector": {"nvidia.com/gpu.present": "true"},
            "runtimeClassName": "nvidia",
        },
    }
    deployments = render_chart(values, chart_dir=extended_chart).of_kind("Deployment")
    gpu_pod = deployments[object_name(EXTRA_GPU_CONSUMER.name)]["spec"]["template"]["spec"]
    assert container(gpu_pod)["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert container(gpu_pod)["image"] == "plane-workers:0.1.0-gpu"
    assert gpu_pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in gpu_pod["tolerations"]
    assert gpu_pod["runtimeClassName"] == "nvidia"
    # CPU workloads stay off the GPU pool and keep the main image.
    for name, deployment in deployments.items():
        if name != object_name(EXTRA_GPU_CONSUMER.name):
            pod = deployment["spec"]["template"]["spec"]
            assert "nodeSelector" not in pod and "tolerations" not in pod
            assert container(pod)["image"] == "plane-workers:0.1.0"


def test_gpu_consumer_with_profile_cpu_runs_on_cpu(extended_chart: Path):
    values = {
        "consumers": {EXTRA_GPU_CONSUMER.name: {"profile": "cpu"}},
        "gpuNodePool": {"runtimeClassName": "nvidia"},
    }
    deployments = render_chart(values, chart_dir=extended_chart).of_kind("Deployment")
    pod = deployments[object_name(EXTRA_GPU_CONSUMER.name)]["spec"]["template"]["spec"]
    assert "nvidia.com/gpu" not in container(pod)["resources"]["limits"]
    # Still the GPU image: the only one with torch.
    assert container(pod)["image"] == "plane-workers:0.1.0-gpu"
    assert "nodeSelector" not in pod and "tolerations" not in pod
    assert "runtimeClassName" not in pod
