"""Every rendered object is valid Kubernetes, and carries the policies DESIGN.md asks for."""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path

import helm_python
import pytest
import yaml
from chart_harness import (
    CHART_DIR,
    EVERYTHING_ON,
    KUBE_VERSIONS,
    RELEASE,
    Rendered,
    container,
    manual_job,
    render_chart,
    validation_errors,
)
from croniter import croniter

from shared import registry, settings

CHART = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())


def test_lint_is_clean():
    report = helm_python.lint(CHART_DIR, strict=True)
    assert report["errors"] == []
    # Severity 2 is a warning, 3 an error; 1 (info, e.g. "icon is recommended") is fine.
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize(
    "values",
    [
        pytest.param({}, id="defaults"),
        pytest.param(EVERYTHING_ON, id="everything-on"),
        pytest.param({"consumerDefaults": {"autoscaling": {"hpa": {"enabled": True}}}}, id="hpa"),
    ],
)
def test_every_object_is_valid(extended_chart: Path, values: dict, kube_version: str):
    rendered = render_chart(values, chart_dir=extended_chart)
    errors = [e for obj in rendered.objects for e in validation_errors(obj, kube_version)]
    assert errors == []


def test_objects_carry_the_standard_labels(default_render: Rendered):
    for obj in default_render.objects:
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "plane-workers"
        assert labels["app.kubernetes.io/instance"] == RELEASE
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["helm.sh/chart"] == f"plane-workers-{CHART['version']}"
        assert labels["app.kubernetes.io/version"] == CHART["appVersion"]


@pytest.fixture(scope="module")
def cronjobs(default_render: Rendered) -> dict:
    cronjobs = default_render.of_kind("CronJob")
    assert cronjobs
    return cronjobs


class TestCronJobs:
    def test_scheduling_policy(self, cronjobs: dict):
        for cronjob in cronjobs.values():
            spec = cronjob["spec"]
            assert spec["concurrencyPolicy"] == "Forbid"
            assert spec["timeZone"] == "Etc/UTC"
            # Without it, a controller that missed 100 schedules stops starting the job at all.
            assert spec["startingDeadlineSeconds"] > 0
            assert spec["successfulJobsHistoryLimit"] == 3
            assert spec["failedJobsHistoryLimit"] == 3
            # A manual job (a back-fill) is only ever a template for `kubectl create job --from`.
            manual = registry.job(cronjob["metadata"]["labels"]["app.kubernetes.io/component"]).manual
            assert spec["suspend"] is manual

    def test_deadlines_fit_the_schedule(self, cronjobs: dict):
        """R20: a late start is skipped before the next one is due; no run outlives its interval."""
        for cronjob in cronjobs.values():
            spec = cronjob["spec"]
            runs = croniter(spec["schedule"], datetime(2026, 1, 1, tzinfo=UTC))
            times = [runs.get_next(datetime) for _ in range(200)]
            interval = min((b - a).total_seconds() for a, b in pairwise(times))
            assert 10 <= spec["startingDeadlineSeconds"] < interval
            job = spec["jobTemplate"]["spec"]
            assert job["activeDeadlineSeconds"] < interval
            grace = job["template"]["spec"].get("terminationGracePeriodSeconds", 30)
            assert grace >= 15  # the cron runtime stops at the end of its current batch

    def test_job_policy(self, cronjobs: dict):
        for cronjob in cronjobs.values():
            job = cronjob["spec"]["jobTemplate"]["spec"]
            assert 0 <= job["backoffLimit"] <= 2
            assert job["activeDeadlineSeconds"] > 0
            assert job["ttlSecondsAfterFinished"] == 86400
            assert job["template"]["spec"]["restartPolicy"] == "Never"

    @pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
    def test_manual_run_is_a_complete_job(self, cronjobs: dict, kube_version: str):
        # `kubectl create job --from=cronjob/X` copies only the jobTemplate: all policy must be there.
        for cronjob in cronjobs.values():
            job = manual_job(cronjob)
            assert validation_errors(job, kube_version) == []
            assert len(job["metadata"]["name"]) <= 63
            spec = job["spec"]
            for field in ("backoffLimit", "activeDeadlineSeconds", "ttlSecondsAfterFinished"):
                assert field in spec
            pod = spec["template"]["spec"]
            assert pod["restartPolicy"] == "Never"
            assert container(pod)["envFrom"]
            assert container(pod)["args"][0] == "job"

    def test_per_job_overrides(self, default_render: Rendered):
        name = next(iter(default_render.of_kind("CronJob"))).removeprefix(f"{RELEASE}-")
        override = {"schedule": "45 3 * * 1", "suspend": True, "activeDeadlineSeconds": 120}
        cronjob = render_chart({"cronjobs": {name: override}}).of_kind("CronJob")[f"{RELEASE}-{name}"]
        assert cronjob["spec"]["schedule"] == "45 3 * * 1"
        assert cronjob["spec"]["suspend"] is True
        assert cronjob["spec"]["jobTemplate"]["spec"]["activeDeadlineSeconds"] == 120


def test_pods_run_non_root_on_a_read_only_root(default_render: Rendered):
    for name, pod in default_render.pod_specs():
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] == 10001, name
        assert pod["automountServiceAccountToken"] is False, name
        security = container(pod)["securityContext"]
        assert security["runAsNonRoot"] is True, name
        assert security["readOnlyRootFilesystem"] is True, name
        assert security["allowPrivilegeEscalation"] is False, name
        assert security["capabilities"]["drop"] == ["ALL"], name
        assert security["seccompProfile"]["type"] == "RuntimeDefault", name
        # The health file and tempfiles need one writable place.
        mounts = {m["mountPath"]: m["name"] for m in container(pod)["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert "emptyDir" in volumes[mounts["/tmp"]], name


def test_pods_load_config_and_the_existing_secret(default_render: Rendered):
    (configmap,) = default_render.of_kind("ConfigMap")
    # Hooks run before the ConfigMap exists and carry the same settings inline (test_chart_operations).
    for name, pod in default_render.pod_specs():
        sources = container(pod)["envFrom"]
        assert {"configMapRef": {"name": configmap}} in sources, name
        assert {"secretRef": {"name": "plane-workers"}} in sources, name
    assert default_render.of_kind("Secret") == {}


def test_consumer_pods(default_render: Rendered):
    for deployment in default_render.of_kind("Deployment").values():
        pod = deployment["spec"]["template"]["spec"]
        worker = container(pod)
        # Longer than arroyo's 25 s join timeout: a SIGTERM'd consumer commits before SIGKILL.
        assert pod["terminationGracePeriodSeconds"] > 25
        healthcheck = ["plane-workers", "healthcheck", "--max-age", "60"]
        assert worker["livenessProbe"]["exec"]["command"] == healthcheck
        assert worker["startupProbe"]["exec"]["command"] == healthcheck
        startup = worker["startupProbe"]
        assert startup["periodSeconds"] * startup["failureThreshold"] >= 300
        assert {"name": "metrics", "containerPort": 9100, "protocol": "TCP"} in worker["ports"]
        env = {e["name"]: e["value"] for e in worker["env"]}
        assert env == {"HEALTH_FILE": "/tmp/plane-workers-health", "METRICS_PORT": "9100"}
        assert "checksum/config" in deployment["spec"]["template"]["metadata"]["annotations"]


def test_config_change_rolls_the_pods(default_render: Rendered):
    def checksums(rendered: Rendered) -> set[str]:
        return {
            d["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
            for d in rendered.of_kind("Deployment").values()
        }

    changed = render_chart({"config": {"LOG_LEVEL": "DEBUG"}})
    assert checksums(default_render).isdisjoint(checksums(changed))


def test_configmap_holds_settings_only(default_render: Rendered):
    (configmap,) = default_render.of_kind("ConfigMap").values()
    data = configmap["data"]
    known = {v.env for v in settings.VARIABLES}
    secret = {v.env for v in settings.VARIABLES if v.secret} | {"DATABASE_URL"}
    assert set(data) <= known - secret
    assert all(isinstance(value, str) and value for value in data.values())
    # Empty values are left out, so the application's defaults apply.
    assert "AWS_S3_ENDPOINT_URL" not in data


def test_configmap_prints_numbers_as_written():
    values = {"config": {"EVENT_MAX_BYTES": 1048576, "DLQ_MAX_RATIO": 0.25, "EMAIL_USE_TLS": False}}
    (configmap,) = render_chart(values).of_kind("ConfigMap").values()
    assert configmap["data"]["EVENT_MAX_BYTES"] == "1048576"
    assert configmap["data"]["DLQ_MAX_RATIO"] == "0.25"
    assert configmap["data"]["EMAIL_USE_TLS"] == "false"


def test_image_reference():
    def image(values: dict) -> set[str]:
        return {container(pod)["image"] for _, pod in render_chart(values).pod_specs()}

    assert image({}) == {"plane-workers:0.1.0"}
    digest = "sha256:" + "a" * 64
    pinned = {"image": {"repository": "registry.example/pw", "tag": f"v1@{digest}"}}
    assert image(pinned) == {f"registry.example/pw:v1@{digest}"}
    # Skaffold's `TAG@DIGEST` template with no digest (image loaded, not pushed).
    assert image({"image": {"tag": "abc123@"}}) == {"plane-workers:abc123"}


def test_service_accounts_never_mount_a_token(default_render: Rendered):
    # The workers' account and the hooks' (a hook itself: pre-install runs before the other).
    accounts = default_render.of_kind("ServiceAccount")
    assert set(accounts) == {RELEASE, f"{RELEASE}-hooks"}
    for account in accounts.values():
        assert account["automountServiceAccountToken"] is False


def test_notes_explain_operations(default_render: Rendered):
    notes = default_render.notes
    assert "create job --from=cronjob/plane-workers-" in notes
    assert "-manual-$(date +%s)" in notes
    assert "plane-workers produce" in notes
    assert "kubectl -n plane get deployments,cronjobs,jobs" in notes


def test_extra_volumes_reach_every_pod_next_to_tmp():
    """How an operator mounts Plane's templates folder (PLANE_TEMPLATES_DIR) into every pod."""
    templates = {"name": "plane-templates", "configMap": {"name": "plane-templates"}}
    mount = {"name": "plane-templates", "mountPath": "/plane/templates", "readOnly": True}
    rendered = render_chart({"extraVolumes": [templates], "extraVolumeMounts": [mount]})
    pods = list(rendered.pod_specs())
    assert pods
    for name, pod in pods:
        assert [v["name"] for v in pod["volumes"]] == ["tmp", "plane-templates"], name
        assert container(pod)["volumeMounts"][1] == mount, name
    errors = [e for obj in rendered.objects for e in validation_errors(obj, "1.33.0")]
    assert errors == []
    with pytest.raises(helm_python.HelmValuesError):  # a mount without its path fails install
        render_chart({"extraVolumeMounts": [{"name": "plane-templates"}]})
