"""Day one with `helm install`: names that fit any release, the migrate and topics hooks (or
Strimzi KafkaTopics), `helm test`, configuration from existing Secrets, Kafka TLS, probes and
scheduling, per-job policy, and the GPU image only where CUDA is needed."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import helm_python
import pytest
from chart_harness import (
    CHART_DIR,
    DEFAULT_JOBS,
    EVERYTHING_ON,
    EXTRA_GPU_CONSUMER,
    KUBE_VERSIONS,
    LONG_RELEASE,
    RELEASE,
    SHORT_RELEASE,
    Manifest,
    Rendered,
    container,
    manual_job,
    render_chart,
    validation_errors,
)

from shared import registry
from shared.kafka.topics import TopicOptions, desired_topics
from shared.settings import Settings

CONSUMER = registry.CONSUMERS[0]
JOB = registry.JOBS[0]
LONGEST_JOB = max(DEFAULT_JOBS, key=lambda j: len(j.name))
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
STRIMZI = {"topics": {"provisioner": "strimzi", "strimzi": {"clusterName": "plane-kafka"}}}


def env(pod: Manifest) -> dict[str, Any]:
    """name -> value (or valueFrom) of the worker container's env."""
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(pod)["env"]}


def hook_jobs(rendered: Rendered) -> dict[str, Manifest]:
    return {name: o for name, o in rendered.hooks().items() if o["kind"] == "Job"}


# --- names -------------------------------------------------------------------------------------


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize("release", [SHORT_RELEASE, LONG_RELEASE, "plane-prod"])
@pytest.mark.parametrize(
    "values", [pytest.param(EVERYTHING_ON, id="everything-on"), pytest.param(STRIMZI, id="strimzi")]
)
def test_any_release_name_renders_valid_objects_within_the_limits(
    extended_chart: Path, values: dict, release: str, kube_version: str
):
    rendered = render_chart(values, chart_dir=extended_chart, release=release)
    errors = [e for obj in rendered.objects for e in validation_errors(obj, kube_version)]
    assert errors == []
    for obj in rendered.objects:
        name = obj["metadata"]["name"]
        assert DNS_LABEL.match(name) and len(name) <= 63, name
        labels = obj["metadata"]["labels"]
        assert all(len(value) <= 63 for value in labels.values()), labels
    cronjobs = rendered.of_kind("CronJob")
    assert cronjobs
    for name, cronjob in cronjobs.items():
        # The controller names a run `<cronjob>-<minutes since epoch, 8 digits>`: 63 at most.
        assert len(name) <= 52, name
        job = manual_job(cronjob)
        assert len(job["metadata"]["name"]) <= 63
        assert validation_errors(job, kube_version) == []
    kinds = [(o["kind"], o["metadata"]["name"]) for o in rendered.objects]
    assert len(kinds) == len(set(kinds)), "two objects of one kind share a name"


def test_short_names_are_left_as_they_are(default_render: Rendered):
    assert f"{RELEASE}-{LONGEST_JOB.name}" in default_render.of_kind("CronJob")


def test_long_names_keep_the_workload_name_and_are_deterministic():
    first = render_chart(release=LONG_RELEASE)
    again = render_chart(release=LONG_RELEASE)
    assert first.names("CronJob") == again.names("CronJob")
    fullname = f"{LONG_RELEASE}-plane-workers"
    for job in DEFAULT_JOBS:
        (name,) = [n for n in first.names("CronJob") if n.endswith(f"-{job.name}")]
        assert len(name) <= 52
        if len(f"{fullname}-{job.name}") > 52:
            # <fullname cut>-<8 hex digits of its SHA-256>-<workload>
            assert re.fullmatch(rf"[a-z0-9-]+-[0-9a-f]{{8}}-{re.escape(job.name)}", name), name
            assert fullname.startswith(name.split("-")[0])
    # Every name of one release shares the one hash, so `kubectl get cronjobs` reads as a set.
    hashes = {m.group(1) for n in first.names("CronJob") if (m := re.search(r"-([0-9a-f]{8})-", n))}
    assert len(hashes) == 1


def test_releases_that_share_a_long_prefix_get_different_names():
    a = render_chart(release=LONG_RELEASE[:-1] + "a").names("CronJob")
    b = render_chart(release=LONG_RELEASE[:-1] + "b").names("CronJob")
    assert a.isdisjoint(b)


def test_a_long_fullname_override_is_shortened_not_refused():
    rendered = render_chart({"fullnameOverride": "x" * 70})
    (configmap,) = rendered.of_kind("ConfigMap")
    assert len(configmap) == 63 and re.fullmatch(r"x{54}-[0-9a-f]{8}", configmap)
    for name in rendered.names("Deployment"):
        assert len(name) <= 63


def test_notes_print_the_names_to_use(extended_chart: Path):
    rendered = render_chart(chart_dir=extended_chart, release=LONG_RELEASE)
    notes = rendered.notes
    for name in (*rendered.names("CronJob"), *rendered.names("Deployment")):
        assert f"  {name}  " in notes, name
    (command,) = [line for line in notes.splitlines() if "create job --from=cronjob/" in line]
    cronjob = re.search(r"--from=cronjob/(\S+)", command).group(1)
    assert cronjob in rendered.names("CronJob")
    for name, _ in rendered.hooks().items():
        if name.endswith(("-migrate", "-topics")):
            assert f"logs job/{name}" in notes
    assert f"helm test {LONG_RELEASE}" in notes


# --- hooks -------------------------------------------------------------------------------------


def test_migrate_and_topics_hooks_run_before_install_and_upgrade(default_render: Rendered):
    jobs = hook_jobs(default_render)
    assert set(jobs) == {f"{RELEASE}-migrate", f"{RELEASE}-topics"}
    weights = {}
    for name, job in jobs.items():
        annotations = job["metadata"]["annotations"]
        assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
        assert annotations["helm.sh/hook-delete-policy"] == "before-hook-creation"
        weights[name] = int(annotations["helm.sh/hook-weight"])
        spec = job["spec"]
        assert spec["activeDeadlineSeconds"] > 0 and 0 <= spec["backoffLimit"] <= 2
        assert spec["podFailurePolicy"]["rules"][0]["onExitCodes"]["values"] == [2]
        pod = spec["template"]["spec"]
        assert pod["restartPolicy"] == "Never"
        assert pod["serviceAccountName"] == f"{RELEASE}-hooks"
        assert container(pod)["image"] == "plane-workers:0.1.0"
        # Hooks run before the ConfigMap exists: its settings are inline, the Secret is external.
        sources = container(pod)["envFrom"]
        assert sources == [{"secretRef": {"name": "plane-workers"}}]
        (configmap,) = default_render.of_kind("ConfigMap").values()
        assert configmap["data"].items() <= env(pod).items()
    assert container(jobs[f"{RELEASE}-migrate"]["spec"]["template"]["spec"])["args"] == ["migrate"]
    (account,) = [o for o in default_render.hooks().values() if o["kind"] == "ServiceAccount"]
    # The hooks' account exists before them and goes once they all succeeded.
    assert int(account["metadata"]["annotations"]["helm.sh/hook-weight"]) < min(weights.values())
    assert account["metadata"]["annotations"]["helm.sh/hook-delete-policy"] == (
        "before-hook-creation,hook-succeeded"
    )


def topics_args(rendered: Rendered) -> list[str]:
    job = rendered.of_kind("Job")[f"{RELEASE}-topics"]
    return container(job["spec"]["template"]["spec"])["args"]


def test_topics_hook_applies_partitions_replication_and_configs():
    values = {
        "consumers": {CONSUMER.name: {"partitions": 12}},
        "topics": {
            "replicationFactor": 2,
            "config": {"min.insync.replicas": 2},
            "dlqConfig": {"retention.ms": 1209600000},
        },
    }
    args = topics_args(render_chart(values))
    assert args[:4] == ["topics", "create", "--replication-factor", "2"]
    pairs = list(zip(args[4::2], args[5::2], strict=True))
    assert ("--partitions", f"{CONSUMER.topic}=12") in pairs
    # Integers are passed as written, not as floats.
    assert ("--config", "min.insync.replicas=2") in pairs
    assert ("--dlq-config", "retention.ms=1209600000") in pairs
    assert ("--retry-config", "retention.ms=604800000") in pairs  # the default
    assert ("--timeout", "60") in pairs
    deployment = render_chart(values).of_kind("Deployment")[f"{RELEASE}-{CONSUMER.name}"]
    many = render_chart({**values, "consumers": {CONSUMER.name: {"partitions": 12, "replicas": 20}}})
    assert many.of_kind("Deployment")[f"{RELEASE}-{CONSUMER.name}"]["spec"]["replicas"] == 12
    assert deployment["metadata"]["annotations"]["plane-workers/topic"] == f"plane.{CONSUMER.topic}"


def test_the_topics_hook_args_are_accepted_by_the_cli():
    from typer.testing import CliRunner

    from shared.cli.main import app

    args = topics_args(render_chart({"consumers": {CONSUMER.name: {"partitions": 12}}}))
    result = CliRunner().invoke(app, [*args, "--help"])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"migrations": {"enabled": False}}, {f"{RELEASE}-topics", f"{RELEASE}-hooks"}),
        ({"topics": {"provisioner": "none"}}, {f"{RELEASE}-migrate", f"{RELEASE}-hooks"}),
        ({"migrations": {"enabled": False}, "topics": {"provisioner": "none"}}, set()),
        ({"helmTest": {"enabled": True}}, {f"{RELEASE}-migrate", f"{RELEASE}-topics", f"{RELEASE}-hooks"}),
    ],
)
def test_hooks_can_be_switched_off(values: dict, expected: set[str]):
    hooks = {
        n
        for n, o in render_chart(values).hooks().items()
        if o["metadata"]["annotations"]["helm.sh/hook"] != "test"
    }
    assert hooks == expected


def test_hooks_use_an_existing_service_account_when_the_chart_makes_none():
    rendered = render_chart({"serviceAccount": {"create": False, "name": "plane-irsa"}})
    assert rendered.of_kind("ServiceAccount") == {}
    for _, pod in rendered.all_pod_specs():
        assert pod["serviceAccountName"] == "plane-irsa"


def test_strimzi_topics_instead_of_the_topics_hook():
    values = {**STRIMZI, "consumers": {CONSUMER.name: {"partitions": 12}}}
    rendered = render_chart(values)
    assert f"{RELEASE}-topics" not in rendered.of_kind("Job")
    topics = {t["spec"]["topicName"]: t for t in rendered.of_kind("KafkaTopic").values()}
    settings = Settings.from_env({"KAFKA_TOPIC_PREFIX": "plane."})
    # What `topics create` would make with the same options, topic for topic.
    options = TopicOptions(
        replication_factor=3,
        partitions={CONSUMER.topic: 12},
        retry_config={"retention.ms": "604800000"},
        dlq_config={"retention.ms": "2592000000"},
    )
    wanted = {t.name: t for t in desired_topics(settings, options)}
    assert set(topics) == set(wanted)
    for name, topic in topics.items():
        assert topic["apiVersion"] == "kafka.strimzi.io/v1beta2"
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == "plane-kafka"
        # Deleting a KafkaTopic deletes the topic: `helm uninstall` leaves them.
        assert topic["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
        assert "helm.sh/hook" not in topic["metadata"]["annotations"]
        spec = topic["spec"]
        assert spec["partitions"] == wanted[name].partitions
        assert spec["replicas"] == 3
        assert spec.get("config", {}) == wanted[name].config


def test_workloads_yaml_lists_the_topics_topics_create_makes(extended_chart: Path):
    import yaml

    exported = yaml.safe_load((CHART_DIR / "workloads.yaml").read_text())["topics"]
    settings = Settings.from_env({"KAFKA_TOPIC_PREFIX": ""})
    assert {name: (t["kind"], t["partitions"]) for name, t in exported.items()} == {
        t.name: (t.kind, t.partitions) for t in desired_topics(settings)
    }


# --- helm test ---------------------------------------------------------------------------------


def test_helm_test_pod_runs_the_check(default_render: Rendered):
    (pod,) = default_render.of_kind("Pod").values()
    annotations = pod["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "test"
    assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
    spec = pod["spec"]
    assert container(spec)["args"] == ["check", "--timeout", "10"]
    assert spec["restartPolicy"] == "Never" and spec["activeDeadlineSeconds"] == 120
    # After install: the workers' own account and ConfigMap.
    assert spec["serviceAccountName"] == RELEASE
    assert {"configMapRef": {"name": RELEASE}} in container(spec)["envFrom"]
    assert render_chart({"helmTest": {"enabled": False}}).of_kind("Pod") == {}


def test_check_is_a_command():
    from typer.testing import CliRunner

    from shared.cli.main import app

    assert CliRunner().invoke(app, ["check", "--help"]).exit_code == 0


# --- configuration -----------------------------------------------------------------------------


def test_secrets_by_key_extra_env_and_sources_reach_every_pod():
    rendered = render_chart(EVERYTHING_ON)
    pods = list(rendered.all_pod_specs())
    assert len(pods) > len(registry.CONSUMERS) + len(DEFAULT_JOBS)
    for name, pod in pods:
        variables = env(pod)
        assert variables["DATABASE_URL"] == {
            "secretKeyRef": {"name": "plane-app-secrets", "key": "DATABASE_URL"}
        }, name
        # extraEnv comes last, so it may override what comes before.
        assert container(pod)["env"][-1] == {"name": "OTEL_SERVICE_NAME", "value": "plane-workers"}
        sources = container(pod)["envFrom"]
        assert sources[-2:] == [
            {"secretRef": {"name": "plane-workers"}},
            {"configMapRef": {"name": "plane-app-vars"}},
        ]


def test_no_existing_secret_when_secrets_come_by_key():
    values = {
        "existingSecret": "",
        "secretEnv": {"DATABASE_URL": {"name": "plane-app-secrets", "key": "DATABASE_URL"}},
    }
    for name, pod in render_chart(values).all_pod_specs():
        assert not any("secretRef" in s for s in container(pod).get("envFrom", [])), name


def test_kafka_tls_mounts_the_secrets_and_points_the_settings_at_them():
    rendered = render_chart(EVERYTHING_ON)
    for name, pod in rendered.all_pod_specs():
        variables = env(pod)
        assert variables["KAFKA_SSL_CA_LOCATION"] == "/etc/plane-workers/kafka-tls/ca.crt", name
        assert variables["KAFKA_SSL_CERTIFICATE_LOCATION"] == "/etc/plane-workers/kafka-tls/client.crt"
        assert variables["KAFKA_SSL_KEY_LOCATION"] == "/etc/plane-workers/kafka-tls/client.key"
        mounts = {m["name"]: m for m in container(pod)["volumeMounts"]}
        assert mounts["kafka-tls"] == {
            "name": "kafka-tls",
            "mountPath": "/etc/plane-workers/kafka-tls",
            "readOnly": True,
        }
        (volume,) = [v for v in pod["volumes"] if v["name"] == "kafka-tls"]
        sources = [s["secret"] for s in volume["projected"]["sources"]]
        assert sources == [
            {"name": "kafka-cluster-ca-cert", "items": [{"key": "ca.crt", "path": "ca.crt"}]},
            {
                "name": "plane-workers-kafka-user",
                "items": [
                    {"key": "user.crt", "path": "client.crt"},
                    {"key": "user.key", "path": "client.key"},
                ],
            },
        ]
    ca_only = render_chart(
        {
            "config": {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL"},
            "kafkaTls": {"enabled": True, "ca": {"secretName": "kafka-ca"}},
        }
    )
    for _, pod in ca_only.pod_specs():
        assert "KAFKA_SSL_CA_LOCATION" in env(pod) and "KAFKA_SSL_KEY_LOCATION" not in env(pod)
    for _, pod in render_chart().all_pod_specs():
        assert not any(e.startswith("KAFKA_SSL_") for e in env(pod))


def test_readiness_probe_next_to_liveness_and_startup(default_render: Rendered):
    for name, deployment in default_render.of_kind("Deployment").items():
        worker = container(deployment["spec"]["template"]["spec"])
        probe = worker["readinessProbe"]
        assert probe["exec"]["command"] == ["plane-workers", "healthcheck", "--ready", "--max-age", "10"], (
            name
        )
        assert probe["periodSeconds"] == 10 and probe["failureThreshold"] == 3
    off = render_chart({"consumerDefaults": {"readinessProbe": {"enabled": False}}})
    for deployment in off.of_kind("Deployment").values():
        assert "readinessProbe" not in container(deployment["spec"]["template"]["spec"])
    # Not-ready consumers are still scraped.
    for service in render_chart(EVERYTHING_ON).of_kind("Service").values():
        assert service["spec"]["publishNotReadyAddresses"] is True


def test_pod_labels_priority_and_spread(extended_chart: Path):
    rendered = render_chart(EVERYTHING_ON, chart_dir=extended_chart)
    for name, deployment in rendered.of_kind("Deployment").items():
        template = deployment["spec"]["template"]
        assert template["metadata"]["labels"]["example.com/cost-centre"] == "plane", name
        assert "example.com/cost-centre" not in deployment["spec"]["selector"]["matchLabels"]
        pod = template["spec"]
        assert pod["priorityClassName"] == "plane-workers"
        (spread,) = pod["topologySpreadConstraints"]
        # No labelSelector given: the consumer's own selector, so it spreads its own pods.
        assert spread["labelSelector"] == {"matchLabels": deployment["spec"]["selector"]["matchLabels"]}
        assert deployment["spec"]["strategy"] == {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0},
        }
    for cronjob in rendered.of_kind("CronJob").values():
        pod_template = cronjob["spec"]["jobTemplate"]["spec"]["template"]
        assert pod_template["metadata"]["labels"]["example.com/cost-centre"] == "plane"
        assert pod_template["spec"]["priorityClassName"] == "plane-workers"
        assert cronjob["spec"]["timeZone"] == "Europe/Berlin"
    own = {
        "maxSkew": 2,
        "topologyKey": "kubernetes.io/hostname",
        "whenUnsatisfiable": "DoNotSchedule",
        "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "plane-workers"}},
    }
    kept = render_chart({"consumerDefaults": {"topologySpreadConstraints": [own]}})
    for deployment in kept.of_kind("Deployment").values():
        assert deployment["spec"]["template"]["spec"]["topologySpreadConstraints"] == [own]


def test_recreate_strategy_carries_no_rolling_parameters():
    values = {"consumers": {CONSUMER.name: {"updateStrategy": {"type": "Recreate"}}}}
    deployments = render_chart(values).of_kind("Deployment")
    assert deployments[f"{RELEASE}-{CONSUMER.name}"]["spec"]["strategy"] == {"type": "Recreate"}
    others = [d for n, d in deployments.items() if n != f"{RELEASE}-{CONSUMER.name}"]
    assert all(d["spec"]["strategy"]["rollingUpdate"]["maxSurge"] == 1 for d in others)
    assert validation_errors(deployments[f"{RELEASE}-{CONSUMER.name}"], KUBE_VERSIONS[0]) == []


def test_per_job_backoff_deadline_and_time_zone():
    values = {
        "cronjobs": {
            JOB.name: {"backoffLimit": 0, "startingDeadlineSeconds": 120, "timeZone": "America/New_York"}
        }
    }
    cronjobs = render_chart(values).of_kind("CronJob")
    spec = cronjobs[f"{RELEASE}-{JOB.name}"]["spec"]
    assert spec["startingDeadlineSeconds"] == 120 and spec["timeZone"] == "America/New_York"
    assert spec["jobTemplate"]["spec"]["backoffLimit"] == 0  # 0 wins over the registry's 1
    for other in DEFAULT_JOBS[1:]:
        spec = cronjobs[f"{RELEASE}-{other.name}"]["spec"]
        assert spec["startingDeadlineSeconds"] == other.starting_deadline_seconds
        assert spec["jobTemplate"]["spec"]["backoffLimit"] == other.backoff_limit
        assert spec["timeZone"] == "Etc/UTC"


def test_a_configuration_error_fails_a_job_at_once(default_render: Rendered):
    jobs = [c["spec"]["jobTemplate"]["spec"] for c in default_render.of_kind("CronJob").values()]
    jobs += [j["spec"] for j in hook_jobs(default_render).values()]
    for job in jobs:
        fail, ignore = job["podFailurePolicy"]["rules"]
        assert fail["action"] == "FailJob"
        assert fail["onExitCodes"] == {"containerName": "worker", "operator": "In", "values": [2]}
        assert ignore == {
            "action": "Ignore",
            "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
        }
        # podFailurePolicy needs restartPolicy Never, and the rule names the one container.
        assert job["template"]["spec"]["restartPolicy"] == "Never"
        assert container(job["template"]["spec"])["name"] == "worker"


# --- images ------------------------------------------------------------------------------------


def images(rendered: Rendered) -> dict[str, str]:
    return {name: container(pod)["image"] for name, pod in rendered.all_pod_specs()}


GPU = f"{RELEASE}-{EXTRA_GPU_CONSUMER.name}"


def test_only_cuda_workloads_pull_the_gpu_image(extended_chart: Path):
    default = images(render_chart(chart_dir=extended_chart))
    assert default.pop(GPU) == "plane-workers:0.1.0-gpu"
    assert set(default.values()) == {"plane-workers:0.1.0"}
    own = images(
        render_chart(
            {"image": {"repository": "r/pw", "tag": "v2", "gpuRepository": "r/pw-cuda", "gpuTag": "v2-cu13"}},
            chart_dir=extended_chart,
        )
    )
    assert own.pop(GPU) == "r/pw-cuda:v2-cu13"
    assert set(own.values()) == {"r/pw:v2"}


def test_a_pinned_cpu_digest_needs_a_gpu_tag(extended_chart: Path):
    pinned = {"image": {"tag": "v2@sha256:" + "a" * 64}}
    with pytest.raises(helm_python.HelmRenderError, match=r"needs the GPU image.*image\.gpuTag"):
        render_chart(pinned, chart_dir=extended_chart)
    # Without a GPU workload, nothing needs it.
    assert set(images(render_chart(pinned)).values()) == {"plane-workers:v2@sha256:" + "a" * 64}
    disabled = {**pinned, "consumers": {EXTRA_GPU_CONSUMER.name: {"enabled": False}}}
    render_chart(disabled, chart_dir=extended_chart)


# --- bad values --------------------------------------------------------------------------------

A_CONSUMER, A_JOB = CONSUMER.name, JOB.name
SSL = {"KAFKA_SECURITY_PROTOCOL": "SSL"}


@pytest.mark.parametrize(
    "values",
    [
        {"image": {"gpuTag": 1}},
        {"gpuNodePool": {"imageTag": "x"}},  # moved to image.gpuTag
        {"gpuNodePool": {"enabled": True}},  # replaced by consumers.<name>.profile
        {"existingSecret": ""},
        {"existingSecret": "", "secretEnv": {"SECRET_KEY": {"name": "s", "key": "k"}}},
        {"secretEnv": {"DATABASE_URL": {"name": "plane-secrets"}}},
        {"secretEnv": {"DATABASE_URL": {"name": "Plane_Secrets", "key": "k"}}},
        {"secretEnv": {"database-url": {"name": "s", "key": "k"}}},
        {"secretEnv": {"HEALTH_FILE": {"name": "s", "key": "k"}}},
        {"secretEnv": {"DATABASE_URL": {"name": "s", "key": "k", "optinal": True}}},
        {"extraEnv": {"A": "b"}},
        {"extraEnv": [{"value": "x"}]},
        {"extraEnv": [{"name": "METRICS_PORT", "value": "1"}]},
        {"extraEnvFrom": [{"configMapRef": {}}]},
        {"extraEnvFrom": [{"secret": {"name": "s"}}]},
        {"extraEnvFrom": [{"configMapRef": {"name": "a"}, "secretRef": {"name": "b"}}]},
        {"kafkaTls": {"enabled": True, "ca": {"secretName": "ca"}}},  # PLAINTEXT protocol
        {"config": SSL, "kafkaTls": {"enabled": True}},  # no Secret
        {"config": SSL, "kafkaTls": {"enabled": True, "ca": {"secretNme": "ca"}}},
        {"config": SSL, "kafkaTls": {"enabled": True, "ca": {"secretName": "ca", "key": "a/b"}}},
        {"consumerDefaults": {"readinessProbe": {"periodSeconds": 0}}},
        {"consumerDefaults": {"readinessProbe": {"command": ["true"]}}},
        {"consumerDefaults": {"updateStrategy": {"type": "BlueGreen"}}},
        {
            "consumerDefaults": {
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "lots"}}
            }
        },
        {"consumerDefaults": {"podLabels": {"app.kubernetes.io/component": "x"}}},
        {"cronjobDefaults": {"podLabels": {"team": "x" * 64}}},
        {"consumerDefaults": {"priorityClassName": "Not Valid"}},
        {
            "consumerDefaults": {
                "topologySpreadConstraints": [{"maxSkew": 1, "whenUnsatisfiable": "DoNotSchedule"}]
            }
        },
        {
            "cronjobDefaults": {
                "topologySpreadConstraints": [
                    {"maxSkew": 1, "topologyKey": "k", "whenUnsatisfiable": "Maybe"}
                ]
            }
        },
        {"consumerDefaults": {"partitions": 12}},
        {"consumers": {A_CONSUMER: {"partitions": 0}}},
        {"cronjobDefaults": {"backoffLimit": 3}},
        {"cronjobDefaults": {"startingDeadlineSeconds": 100}},
        {"cronjobDefaults": {"timeZone": "Europe Paris"}},
        {"cronjobs": {A_JOB: {"timeZone": "UTC+2:00"}}},
        {"cronjobs": {A_JOB: {"startingDeadlineSeconds": 5}}},
        {"cronjobs": {A_JOB: {"backoffLimit": -1}}},
        {"cronjobs": {A_JOB: {"backoffLimit": 11}}},
        {"migrations": {"activeDeadlineSeconds": 0}},
        {"migrations": {"enabld": False}},
        {"migrations": {"backoffLimit": "1"}},
        {"topics": {"provisioner": "kafka"}},
        {"topics": {"replicationFactor": 0}},
        {"topics": {"config": {"Retention": "1"}}},
        {"topics": {"dlqConfig": {"retention.ms": ["1"]}}},
        {"topics": {"provisioner": "strimzi"}},  # no cluster name
        {"topics": {"job": {"requestTimeoutSeconds": 0}}},
        {"topics": {"job": {"enabled": True}}},
        {"topics": {"strimzi": {"cluster": "x"}}},
        {"helmTest": {"checkTimeoutSeconds": 0}},
        {"helmTest": {"command": ["true"]}},
    ],
    ids=lambda values: json.dumps(values, separators=(",", ":"))[:90],
)
def test_bad_values_for_new_keys_are_refused(values: dict):
    with pytest.raises(helm_python.HelmValuesError):
        render_chart(values)


@pytest.mark.parametrize(
    "values",
    [
        {"existingSecret": "", "extraEnvFrom": [{"secretRef": {"name": "plane-app-secrets"}}]},
        {"config": SSL, "kafkaTls": {"enabled": True, "clientCertificate": {"secretName": "user"}}},
        {"consumerDefaults": {"updateStrategy": {"type": "Recreate"}}},
        {"cronjobs": {A_JOB: {"timeZone": "America/Argentina/Buenos_Aires", "backoffLimit": 0}}},
        {"topics": {"provisioner": "none", "retryConfig": {}, "dlqConfig": {}}},
        {"topics": {"config": {"min.cleanable.dirty.ratio": 0.5, "unclean.leader.election.enable": False}}},
    ],
    ids=lambda values: json.dumps(values, separators=(",", ":"))[:90],
)
def test_good_values_for_new_keys_render_valid_objects(values: dict):
    rendered = render_chart(values)
    errors = [e for obj in rendered.objects for e in validation_errors(obj, KUBE_VERSIONS[-1])]
    assert errors == []
