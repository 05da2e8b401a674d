"""Render the chart offline and validate what comes out, as `helm template | kubeconform` would.

Helm's own Go engine renders (helm-python-sdk, no helm binary, no cluster), so `fail`, `required`
and values.schema.json behave exactly as at `helm install`. Every object is then validated with
kubernetes-validate in strict mode (unknown fields are errors) against several Kubernetes versions.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import helm_python
import kubernetes_validate
import yaml

from shared import registry

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = REPO_ROOT / "charts" / "plane-workers"
RELEASE = "plane-workers"
NAMESPACE = "plane"

# The chart's floor (Chart.yaml kubeVersion: CronJob timeZone is GA in 1.27) and the newest release
# kubernetes-validate knows.
KUBE_VERSIONS = ("1.27.0", "1.37.0")

# Release names at the edges: Helm's shortest, and one long enough that names must be shortened.
SHORT_RELEASE = "p"
LONG_RELEASE = "plane-production-eu-central-1-blue-green"  # 40 characters

# Custom resources kubernetes-validate has no schema for; tests check their fields directly.
CRD_KINDS = frozenset({"ScaledObject", "ServiceMonitor", "KafkaTopic"})

Manifest = dict[str, Any]


# A consumer the registry does not have (yet): on the GPU pool, with fewer partitions than the
# autoscalers' default ceilings, so the caps and the GPU placement have something to show.
EXTRA_GPU_CONSUMER = registry.ConsumerSpec(
    name="test-embedder",
    topic="test-embeddings",
    handler="services.test_embedder.handler:handle",
    event_types=("plane.embed.v1",),
    description="A GPU consumer that exists only in the chart tests.",
    partitions=3,
    resources=registry.Resources(cpu_request="1", memory_request="2Gi", memory_limit="4Gi", gpu=1),
)

# The consumers a default install runs: the registry's, less optional add-ons (Plane AI's
# embeddings), which render only where consumers.<name>.enabled is set.
DEFAULT_CONSUMERS = tuple(s for s in registry.CONSUMERS if s.enabled_by_default)
# The CronJobs a default install runs: the registry's, less Plane AI's (cronjobs.<name>.enabled).
DEFAULT_JOBS = tuple(s for s in registry.JOBS if s.enabled_by_default)

# Every optional feature at once (KEDA flavour; HPA is exclusive with it).
EVERYTHING_ON: dict[str, Any] = {
    "imagePullSecrets": ["registry-credentials"],
    "serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/pw"}},
    "consumerDefaults": {
        "extraArgs": ["--log-level", "DEBUG"],
        "autoscaling": {"keda": {"enabled": True}},
        "podDisruptionBudget": {"enabled": True},
        "podAnnotations": {"example.com/team": "platform"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "workers"}],
        "affinity": {
            "podAntiAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "weight": 100,
                        "podAffinityTerm": {
                            "topologyKey": "kubernetes.io/hostname",
                            "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "plane-workers"}},
                        },
                    }
                ]
            }
        },
    },
    "cronjobDefaults": {"nodeSelector": {"kubernetes.io/os": "linux"}},
    "image": {"gpuTag": "0.1.0-gpu"},
    "gpuNodePool": {
        "nodeSelector": {"nvidia.com/gpu.present": "true"},
        "runtimeClassName": "nvidia",
    },
    "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}}},
    "keda": {"triggerAuthenticationName": "kafka-sasl"},
    # Configuration from Plane's own Secrets and ConfigMaps, and mutual TLS to the brokers.
    "config": {"KAFKA_SECURITY_PROTOCOL": "SSL"},
    "secretEnv": {"DATABASE_URL": {"name": "plane-app-secrets", "key": "DATABASE_URL"}},
    "extraEnv": [{"name": "OTEL_SERVICE_NAME", "value": "plane-workers"}],
    "extraEnvFrom": [{"configMapRef": {"name": "plane-app-vars"}}],
    "kafkaTls": {
        "enabled": True,
        "ca": {"secretName": "kafka-cluster-ca-cert", "key": "ca.crt"},
        "clientCertificate": {
            "secretName": "plane-workers-kafka-user",
            "certificateKey": "user.crt",
            "keyKey": "user.key",
        },
    },
    "topics": {"config": {"min.insync.replicas": "2"}},
}

# Every per-pod placement and scheduling key, consumers and jobs.
PLACEMENT = {
    "podLabels": {"example.com/cost-centre": "plane"},
    "priorityClassName": "plane-workers",
    "topologySpreadConstraints": [
        {"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "ScheduleAnyway"}
    ],
}
EVERYTHING_ON["consumerDefaults"] |= PLACEMENT | {
    "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}}
}
EVERYTHING_ON["cronjobDefaults"] |= PLACEMENT | {"timeZone": "Europe/Berlin"}


@dataclass(frozen=True)
class Rendered:
    objects: list[Manifest]
    notes: str

    def of_kind(self, kind: str) -> dict[str, Manifest]:
        return {o["metadata"]["name"]: o for o in self.objects if o["kind"] == kind}

    def names(self, kind: str) -> set[str]:
        return set(self.of_kind(kind))

    def pod_specs(self) -> Iterator[tuple[str, Manifest]]:
        """(object name, pod spec) of every Deployment and CronJob (the registry's workloads)."""
        for name, deployment in self.of_kind("Deployment").items():
            yield name, deployment["spec"]["template"]["spec"]
        for name, cronjob in self.of_kind("CronJob").items():
            yield name, cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]

    def all_pod_specs(self) -> Iterator[tuple[str, Manifest]]:
        """pod_specs, plus the hook Jobs' and the `helm test` Pod's."""
        yield from self.pod_specs()
        for name, job in self.of_kind("Job").items():
            yield name, job["spec"]["template"]["spec"]
        for name, pod in self.of_kind("Pod").items():
            yield name, pod["spec"]

    def hooks(self) -> dict[str, Manifest]:
        """Objects Helm runs as hooks (pre-install, test...), by name."""
        return {
            o["metadata"]["name"]: o
            for o in self.objects
            if "helm.sh/hook" in (o["metadata"].get("annotations") or {})
        }


def render_chart(
    values: dict[str, Any] | None = None, chart_dir: Path = CHART_DIR, release: str = RELEASE
) -> Rendered:
    """`helm template RELEASE` with `values` over the chart's values.yaml (hooks and tests included,
    as `helm template` prints them).

    Raises helm_python.HelmValuesError (schema) or HelmRenderError (a template's `fail`).
    """
    with helm_python.Chart.load(chart_dir) as chart:
        manifests = chart.render(values, name=release, namespace=NAMESPACE)
    objects: list[Manifest] = []
    notes = ""
    for path, text in sorted(manifests.items()):
        if path.endswith("NOTES.txt"):
            notes = text
        else:
            objects.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return Rendered(objects, notes)


def validation_errors(obj: Manifest, kube_version: str) -> list[str]:
    """Strict schema errors of one object (empty: valid). CRD kinds are skipped."""
    if obj["kind"] in CRD_KINDS:
        return []
    where = f"{obj['kind']}/{obj['metadata']['name']} on {kube_version}"
    try:
        kubernetes_validate.validate(obj, kube_version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = ".".join(str(part) for part in exc.path)
        return [f"{where}: {path}: {exc.message}"]
    except kubernetes_validate.SchemaNotFoundError as exc:
        return [f"{where}: {exc.message}"]
    return []


def copy_chart(destination: Path, workloads_yaml: str) -> Path:
    """The chart with another workloads.yaml, to render workloads the registry does not have yet."""
    chart_dir = destination / "plane-workers"
    shutil.copytree(CHART_DIR, chart_dir)
    (chart_dir / "workloads.yaml").write_text(workloads_yaml)
    return chart_dir


def manual_job(cronjob: Manifest, suffix: str = "manual-1700000000") -> Manifest:
    """The Job `kubectl create job --from=cronjob/NAME <workload>-manual-...` creates (the name
    NOTES.txt suggests): the jobTemplate's metadata and spec, plus kubectl's instantiate
    annotation. Nothing else of the CronJob."""
    template = cronjob["spec"]["jobTemplate"]
    metadata = template.get("metadata", {})
    workload = metadata["labels"]["app.kubernetes.io/component"]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": f"{workload}-{suffix}",
            "labels": metadata.get("labels", {}),
            "annotations": {
                **metadata.get("annotations", {}),
                "cronjob.kubernetes.io/instantiate": "manual",
            },
        },
        "spec": template["spec"],
    }


def container(pod_spec: Manifest) -> Manifest:
    (only,) = pod_spec["containers"]
    return only
