"""Static checks of the Dockerfile and skaffold.yaml (no Docker engine or skaffold binary here)."""

from __future__ import annotations

import re
import tomllib
from copy import deepcopy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import helm_python
import pytest
import yaml
from chart_harness import (
    CHART_DIR,
    EXTRA_GPU_CONSUMER,
    KUBE_VERSIONS,
    REPO_ROOT,
    container,
    render_chart,
    validation_errors,
)
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

DOCKERFILE = (REPO_ROOT / "Dockerfile").read_text()
DOCKERIGNORE = (REPO_ROOT / ".dockerignore").read_text().splitlines()
SKAFFOLD = yaml.safe_load((REPO_ROOT / "skaffold.yaml").read_text())
PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
LOCKS = {"cpu": REPO_ROOT / "requirements.lock", "gpu": REPO_ROOT / "requirements-gpu.lock"}


def instructions(dockerfile: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", dockerfile)
    lines = [line.strip() for line in joined.splitlines()]
    return [
        (line.split(maxsplit=1)[0].upper(), line.split(maxsplit=1)[1] if " " in line else "")
        for line in lines
        if line and not line.startswith("#")
    ]


def stages(dockerfile: str) -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for instruction in instructions(dockerfile):
        if instruction[0] == "FROM":
            result.append([])
        if result:
            result[-1].append(instruction)
    return result


class TestDockerfile:
    def test_multi_stage_on_a_base_pinned_by_digest(self):
        froms = [args for stage in stages(DOCKERFILE) for name, args in stage if name == "FROM"]
        assert froms == [
            "${PYTHON_IMAGE}@${PYTHON_DIGEST} AS builder",
            "${PYTHON_IMAGE}@${PYTHON_DIGEST} AS runtime",
        ]
        args = dict(a.split("=", 1) for name, a in instructions(DOCKERFILE) if name == "ARG" and "=" in a)
        assert args["PYTHON_IMAGE"] == "python:3.12-slim-bookworm"
        assert re.fullmatch(r"sha256:[0-9a-f]{64}", args["PYTHON_DIGEST"])

    def test_dependencies_are_installed_from_the_lock_before_the_sources_are_copied(self):
        builder = stages(DOCKERFILE)[0]
        copies = [(i, args) for i, (name, args) in enumerate(builder) if name == "COPY"]
        runs = [(i, args) for i, (name, args) in enumerate(builder) if name == "RUN"]
        (lock_copy,) = [i for i, args in copies if "requirements.lock" in args]
        assert copies[0] == (lock_copy, "pyproject.toml requirements.lock requirements-gpu.lock ./")
        (deps,) = [i for i, args in runs if "--require-hashes" in args]
        assert "--no-deps" in builder[deps][1]
        sources = [i for i, args in copies if args.split()[0] in {"shared", "services", "cronjobs"}]
        assert lock_copy < deps < min(sources), "a code change must not reinstall the dependencies"
        (package,) = [args for i, args in runs if "install --no-deps ." in args]
        assert "pip check" in package

    def test_runtime_runs_plane_workers_under_tini_as_a_numeric_non_root_user(self):
        runtime = stages(DOCKERFILE)[-1]
        users = [args for name, args in runtime if name == "USER"]
        assert users == ["10001:10001"], "a numeric UID lets Kubernetes check runAsNonRoot"
        # tini (Debian's package) is PID 1 and forwards SIGTERM; the chart passes only args.
        assert [args for name, args in runtime if name == "ENTRYPOINT"] == [
            '["/usr/bin/tini", "--", "plane-workers"]'
        ]
        assert any("apt-get install" in args and " tini" in args for name, args in runtime if name == "RUN")
        # Nothing but the built virtualenv comes from the builder.
        copies = [args for name, args in runtime if name == "COPY"]
        assert copies == ["--from=builder /opt/venv /opt/venv"]

    def test_variants(self):
        assert ("ARG", "VARIANT=cpu") in instructions(DOCKERFILE)
        assert re.search(r"cpu\) lock=requirements\.lock ;;", DOCKERFILE)
        assert re.search(r"gpu\) lock=requirements-gpu\.lock ;;", DOCKERFILE)

    def test_no_secrets_or_remote_files_in_the_image(self):
        names = [name for name, _ in instructions(DOCKERFILE)]
        assert "ADD" not in names, "COPY only: ADD fetches URLs and unpacks archives"
        for name, args in instructions(DOCKERFILE):
            if name in {"ENV", "ARG"}:
                assert not re.search(r"PASSWORD|SECRET|TOKEN|_KEY", args), args

    def test_build_context_is_an_allowlist(self):
        rules = [line for line in DOCKERIGNORE if line and not line.startswith("#")]
        assert rules[0] == "*"
        allowed = {rule.removeprefix("!").rstrip("/") for rule in rules if rule.startswith("!")}
        assert allowed == {
            "pyproject.toml",
            "requirements.lock",
            "requirements-gpu.lock",
            "README.md",
            "shared",
            "services",
            "cronjobs",
        }
        copied = {
            part.rstrip("/").removeprefix("./")
            for name, args in instructions(DOCKERFILE)
            if name == "COPY" and not args.startswith("--from")
            for part in args.split()[:-1]
        }
        assert copied <= allowed, "the Dockerfile copies something .dockerignore leaves out"


def pins(lock: Path) -> dict[str, tuple[str, int]]:
    """name -> (version, number of hashes) of a `uv pip compile --generate-hashes` file."""
    found: dict[str, tuple[str, int]] = {}
    name = None
    for line in lock.read_text().splitlines():
        if match := re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^ \\]+)", line):
            name = canonicalize_name(match.group(1))
            found[name] = (match.group(2), 0)
        elif name and line.strip().startswith("--hash=sha256:"):
            version, hashes = found[name]
            found[name] = (version, hashes + 1)
    return found


class TestLock:
    """requirements.lock / requirements-gpu.lock (`make lock`) against pyproject.toml."""

    @pytest.mark.parametrize("variant", ["cpu", "gpu"])
    def test_every_dependency_is_pinned_with_hashes_and_satisfies_pyproject(self, variant: str):
        locked = pins(LOCKS[variant])
        assert locked, f"{LOCKS[variant].name} is empty"
        assert all(hashes > 0 for _, hashes in locked.values()), "pip --require-hashes needs them"
        wanted = list(PYPROJECT["project"]["dependencies"])
        if variant == "gpu":
            wanted += PYPROJECT["project"]["optional-dependencies"]["embeddings"]
            wanted += ["torch"]
        stale = []
        for text in wanted:
            requirement = Requirement(text)
            if requirement.marker and not requirement.marker.evaluate({"python_version": "3.12"}):
                continue
            pinned = locked.get(canonicalize_name(requirement.name))
            if pinned is None or not requirement.specifier.contains(pinned[0], prereleases=True):
                stale.append(f"{text} (locked: {pinned[0] if pinned else 'missing'})")
        assert stale == [], f"{LOCKS[variant].name} is stale: run `make lock`: {stale}"

    def test_the_gpu_lock_extends_the_cpu_lock(self):
        cpu, gpu = pins(LOCKS["cpu"]), pins(LOCKS["gpu"])
        assert {name: v for name, (v, _) in cpu.items()} == {name: gpu[name][0] for name in cpu}
        assert "torch" in gpu and "torch" not in cpu
        assert "sentence-transformers" in gpu

    def test_make_lock_writes_both(self):
        makefile = (REPO_ROOT / "Makefile").read_text()
        target = makefile[makefile.index("\nlock:") :]
        assert "-o requirements.lock" in target and "-o requirements-gpu.lock" in target
        assert "--generate-hashes" in makefile
        for lock in LOCKS.values():
            assert "make lock" in lock.read_text().splitlines()[1]


def apply_patches(config: dict[str, Any], patches: list[dict[str, Any]]) -> dict[str, Any]:
    """The JSON-patch subset skaffold profiles use here: add (`-` appends) and replace."""
    config = deepcopy(config)
    for patch in patches:
        path = [p.replace("~1", "/").replace("~0", "~") for p in patch["path"].split("/")[1:]]
        *parents, last = path
        node: Any = config
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if patch["op"] == "add" and isinstance(node, list):
            node.insert(len(node) if last == "-" else int(last), patch["value"])
        elif patch["op"] == "add" or (patch["op"] == "replace" and last in node):
            node[last] = patch["value"]
        else:
            raise AssertionError(f"cannot apply {patch}")
    return config


def deep_merge(*layers: dict[str, Any]) -> dict[str, Any]:
    """Helm's coalescing of -f files and --set values: later layers win, maps merge."""
    result: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            both_maps = isinstance(value, dict) and isinstance(result.get(key), dict)
            result[key] = deep_merge(result[key], value) if both_maps else value
    return result


# What skaffold's templates become once it has built and pushed the image.
BUILT_IMAGE = {
    "{{.IMAGE_REPO_plane_workers_gpu}}": "registry.example/plane-workers-gpu",
    "{{.IMAGE_TAG_plane_workers_gpu}}": "abc1234",
    "{{.IMAGE_DIGEST_plane_workers_gpu}}": "sha256:" + "1" * 64,
    "{{.IMAGE_REPO_plane_workers}}": "registry.example/plane-workers",
    "{{.IMAGE_TAG_plane_workers}}": "abc1234",
    "{{.IMAGE_DIGEST_plane_workers}}": "sha256:" + "0" * 64,
}
BUILT_REFERENCE = "registry.example/plane-workers:abc1234@sha256:" + "0" * 64
BUILT_GPU_REFERENCE = "registry.example/plane-workers-gpu:abc1234@sha256:" + "1" * 64


@dataclass(frozen=True)
class SkaffoldRun:
    """What `skaffold run -p PROFILES` builds and hands to Helm."""

    config: dict[str, Any]

    @classmethod
    def with_profiles(cls, *profiles: str) -> SkaffoldRun:
        config = SKAFFOLD
        for profile in SKAFFOLD["profiles"]:
            if profile["name"] in profiles:
                config = apply_patches(config, profile.get("patches", []))
        return cls(config)

    @property
    def release(self) -> dict[str, Any]:
        (release,) = self.config["deploy"]["helm"]["releases"]
        return release

    @property
    def values_files(self) -> list[Path]:
        return [REPO_ROOT / path for path in self.release.get("valuesFiles", [])]

    def set_values(self) -> list[dict[str, Any]]:
        """setValues and setValueTemplates, as the `--set` flags skaffold passes."""
        flags = []
        for key, template in {
            **self.release.get("setValues", {}),
            **self.release.get("setValueTemplates", {}),
        }.items():
            value = str(template)
            for placeholder, replacement in BUILT_IMAGE.items():
                value = value.replace(placeholder, replacement)
            assert "{{" not in value, f"{key}: unknown skaffold template in {template!r}"
            flags.append(helm_python.parse_set_string(f"{key}={value}"))
        return flags

    def values(self) -> dict[str, Any]:
        files = [yaml.safe_load(path.read_text()) for path in self.values_files]
        return deep_merge(*files, *self.set_values())


PROFILE_SETS = [(), ("local",), ("gpu",), ("local", "gpu")]


class TestSkaffold:
    def test_one_cpu_artifact_built_from_the_dockerfile(self):
        assert SKAFFOLD["apiVersion"].startswith("skaffold/v4")
        (artifact,) = SKAFFOLD["build"]["artifacts"]
        assert artifact["image"] == "plane-workers"
        assert artifact["docker"] == {"dockerfile": "Dockerfile", "buildArgs": {"VARIANT": "cpu"}}
        assert SkaffoldRun.with_profiles().release["chartPath"] == "charts/plane-workers"

    def test_gpu_profile_adds_the_gpu_variant_for_gpu_workloads_only(self, extended_chart: Path):
        run = SkaffoldRun.with_profiles("gpu")
        cpu, gpu = run.config["build"]["artifacts"]
        assert cpu["docker"]["buildArgs"]["VARIANT"] == "cpu"
        assert gpu == {
            "image": "plane-workers-gpu",
            "docker": {"dockerfile": "Dockerfile", "buildArgs": {"VARIANT": "gpu"}},
        }
        values = run.values()
        # The profile switches Plane AI's embeddings on, on the GPU pool.
        assert values["consumers"]["embeddings"]["enabled"] is True
        assert values["consumers"]["embeddings"]["profile"] == "gpu"
        rendered = render_chart(values, chart_dir=extended_chart)
        pods = dict(rendered.all_pod_specs())
        images = {name: container(pod)["image"] for name, pod in pods.items()}
        assert images.pop(f"plane-workers-{EXTRA_GPU_CONSUMER.name}") == BUILT_GPU_REFERENCE
        assert images.pop("plane-workers-embeddings") == BUILT_GPU_REFERENCE
        assert set(images.values()) == {BUILT_REFERENCE}
        embeddings = pods["plane-workers-embeddings"]
        assert container(embeddings)["resources"]["limits"]["nvidia.com/gpu"] == 1
        assert embeddings["nodeSelector"] == {"nvidia.com/gpu.present": "true"}

    @pytest.mark.parametrize("profiles", [(), ("local",)], ids=lambda p: "+".join(p) or "base")
    def test_without_the_gpu_profile_embeddings_stay_off(self, profiles: tuple[str, ...]):
        # A digest-pinned image.tag and no image.gpuTag: this renders only because no GPU
        # workload is enabled.
        rendered = render_chart(SkaffoldRun.with_profiles(*profiles).values())
        assert "plane-workers-embeddings" not in dict(rendered.all_pod_specs())

    def test_image_comes_from_the_build(self):
        values = deep_merge(*SkaffoldRun.with_profiles().set_values())
        assert values["image"] == {
            "repository": "registry.example/plane-workers",
            "tag": "abc1234@sha256:" + "0" * 64,
        }

    @pytest.mark.parametrize("profiles", PROFILE_SETS, ids=lambda p: "+".join(p) or "base")
    def test_profile_values_render_valid_objects(self, profiles: tuple[str, ...]):
        values = SkaffoldRun.with_profiles(*profiles).values()
        with helm_python.Chart.load(CHART_DIR) as chart:
            chart.validate_schema(values)
        rendered = render_chart(values)
        errors = [e for obj in rendered.objects for e in validation_errors(obj, KUBE_VERSIONS[-1])]
        assert errors == []
        images = {name: container(pod)["image"] for name, pod in rendered.all_pod_specs()}
        # Only -p gpu enables embeddings, the one pod on the GPU image.
        if "gpu" in profiles:
            assert images.pop("plane-workers-embeddings") == BUILT_GPU_REFERENCE
        assert set(images.values()) == {BUILT_REFERENCE}

    def test_every_ci_values_file_is_used_by_a_profile(self):
        # chart-testing's convention: each ci/*-values.yaml is a values set the chart must accept.
        used = {path.name for p in PROFILE_SETS for path in SkaffoldRun.with_profiles(*p).values_files}
        assert used == {path.name for path in (CHART_DIR / "ci").glob("*-values.yaml")}
