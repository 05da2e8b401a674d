"""What a Pushgateway keeps of a job's pushes across runs, each run a process of its own as in a
CronJob pod: a success, then a failure, then a dry run. The failure must not erase the last
success's timestamp (the staleness alert reads it), and a dry run pushes nothing.

Two gateways: the recording stand-in (tests/integration/http_servers.py) with a model of the
Pushgateway's documented group semantics replayed over what it recorded, and the real
`prometheus-pushgateway` binary (Debian package) when it is installed, which checks the model.
Before: the push was a PUT of the whole registry, which replaces the job's group, so a failed
run's push erased plane_workers_job_last_success_timestamp_seconds; dry runs pushed too.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from shared.embedded.ports import free_port
from shared.embedded.stack import env_for
from tests.helpers import seed, wait_until
from tests.integration.http_servers import HttpServer, Recorded

JOB = "hard-delete"
GROUP = f"plane-workers-{JOB}"
LAST_SUCCESS = "plane_workers_job_last_success_timestamp_seconds"
RUNS = "plane_workers_job_runs_total"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> dict[str, list[tuple[str, dict[str, str], float]]]:
    """Families by name -> their samples. Families without samples are dropped, as the
    Pushgateway's text parser does."""
    families = {}
    for family in text_string_to_metric_families(text):
        if family.samples:
            families[family.name] = [(s.name, dict(s.labels), s.value) for s in family.samples]
    return families


def model(requests: list[Recorded]) -> Samples:
    """The Pushgateway's group semantics: PUT replaces the group's metrics, POST replaces only the
    families it pushes, DELETE drops the group; a group's labels override pushed ones."""
    groups: dict[str, dict[str, list[tuple[str, dict[str, str], float]]]] = {}
    for request in requests:
        parts = request.path.split("/")[2:]  # /metrics/job/<job>[/<label>/<value>...]
        group = request.path
        labels = dict(zip(parts[::2], parts[1::2], strict=True))
        if request.method == "DELETE":
            groups.pop(group, None)
            continue
        pushed = {
            name: [(n, {**sample_labels, **labels}, v) for n, sample_labels, v in samples]
            for name, samples in parse(request.body.decode()).items()
        }
        if request.method == "PUT":
            groups[group] = pushed
        elif request.method == "POST":
            groups.setdefault(group, {}).update(pushed)
    return {
        (name, frozenset(labels.items())): value
        for families in groups.values()
        for samples in families.values()
        for name, labels, value in samples
    }


@dataclass
class StandIn:
    server: HttpServer = field(default_factory=HttpServer)

    @property
    def url(self) -> str:
        return self.server.url("")

    def samples(self) -> Samples:
        return model(self.server.requests)

    def pushes(self) -> int:
        return len(self.server.requests)


@dataclass
class RealPushgateway:
    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def samples(self) -> Samples:
        text = urllib.request.urlopen(f"{self.url}/metrics", timeout=5).read().decode()
        return {
            (name, frozenset(labels.items())): value
            for samples in parse(text).values()
            for name, labels, value in samples
            if labels.get("job") == GROUP
        }

    def pushes(self) -> int:
        """Changes to the group, as the gateway counts them: its push_time_seconds moves."""
        times = [v for (name, _), v in self.samples().items() if name == "push_time_seconds"]
        return hash(tuple(times)) if times else 0


@pytest.fixture(params=["stand-in", "prometheus-pushgateway"])
def gateway(request: pytest.FixtureRequest, tmp_path) -> Iterator[StandIn | RealPushgateway]:  # type: ignore[no-untyped-def]
    if request.param == "stand-in":
        stand_in = StandIn()
        yield stand_in
        stand_in.server.close()
        return
    binary = shutil.which("prometheus-pushgateway")
    if binary is None:
        pytest.skip("prometheus-pushgateway is not installed (Debian package prometheus-pushgateway)")
    port = free_port()
    log = (tmp_path / "pushgateway.log").open("wb")
    process = subprocess.Popen([binary, f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=log)
    real = RealPushgateway(port, process)

    def up() -> bool:
        try:
            return urllib.request.urlopen(f"{real.url}/-/ready", timeout=1).status == 200
        except OSError:
            return False

    try:
        wait_until(up, 20)
        yield real
    finally:
        process.terminate()
        process.wait(10)
        log.close()


def run_job_process(settings, gateway_url: str, *args: str, **env: str) -> int:  # type: ignore[no-untyped-def]
    command = [sys.executable, "-m", "shared.cli.main", "job", JOB, *args]
    environment = env_for(settings) | {"PUSHGATEWAY_URL": gateway_url, "LOG_LEVEL": "WARNING"} | env
    return subprocess.run(command, env=environment, capture_output=True).returncode


def value(samples: Samples, name: str, **labels: str) -> float | None:
    for (sample, sample_labels), v in samples.items():
        if sample == name and set(labels.items()) <= sample_labels:
            return v
    return None


def test_a_failure_keeps_last_success_and_a_dry_run_pushes_nothing(settings, engine, gateway) -> None:  # type: ignore[no-untyped-def]
    before = time.time()
    assert run_job_process(settings, gateway.url) == 0
    success_at = value(gateway.samples(), LAST_SUCCESS, job=GROUP)
    assert success_at is not None and before <= success_at <= time.time()
    assert value(gateway.samples(), RUNS, job=GROUP, outcome="success") == 1

    # A run that fails inside the job: PostgreSQL refuses to delete an expired soft-deleted issue.
    seed(engine, 1)
    with engine.begin() as conn:
        conn.execute(text("UPDATE issues SET deleted_at = now() - interval '100 days'"))
        conn.execute(text("CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS"
                          " $$ BEGIN RAISE EXCEPTION 'not today'; END $$"))  # fmt: skip
        conn.execute(
            text("CREATE TRIGGER refuse BEFORE DELETE ON issues FOR EACH ROW EXECUTE FUNCTION refuse()")
        )
    assert run_job_process(settings, gateway.url) == 1
    after_failure = gateway.samples()
    assert value(after_failure, RUNS, job=GROUP, outcome="failure") == 1  # it did push
    assert value(after_failure, LAST_SUCCESS, job=GROUP) == success_at

    pushes = gateway.pushes()
    assert run_job_process(settings, gateway.url, "--dry-run") == 0
    assert gateway.pushes() == pushes, "a dry run pushed"
    assert gateway.samples() == after_failure
