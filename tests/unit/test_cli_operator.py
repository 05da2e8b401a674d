"""The CLI as a new operator meets it: one line and a documented exit code when something is wrong,
no secret printed, and the help, README tables and `dev` exports that the README relies on.

Unreachable dependencies are real: a closed local port (database and broker) or a unix socket that
does not exist. Commands whose stderr librdkafka writes to directly run as subprocesses.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from shared import registry
from shared.cli import readme
from shared.cli.dev import exports
from shared.cli.errors import EXIT_FAILED, EXIT_UNREACHABLE, EXIT_USAGE, ErrorMappingGroup
from shared.cli.main import app, what_runs_table
from shared.kafka.topics import create_topics
from shared.settings import VARIABLES, Settings, get_settings, markdown_table

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "hunter2-db-pass"
IDV = registry.consumer("issue-description-versions")
EVENT = {
    "issue_id": "6f1c0e3e-4d7a-4b8e-9a51-0c1c2b7f3a11",
    "user_id": "6f1c0e3e-4d7a-4b8e-9a51-0c1c2b7f3a11",
    "updated_issue": None,
}
OUR_VARIABLES = {v.env for v in VARIABLES}


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in OUR_VARIABLES}
    return env | {"LOG_FORMAT": "text", "METRICS_PORT": "0"} | overrides


@pytest.fixture
def cli() -> Iterator:  # type: ignore[type-arg]
    """CliRunner.invoke with only the given variables set (settings are cached per process)."""
    runner = CliRunner()

    def invoke(args: list[str], input: str | None = None, **env: str):  # type: ignore[no-untyped-def]
        get_settings.cache_clear()
        unset: dict[str, str | None] = dict.fromkeys(OUR_VARIABLES)
        return runner.invoke(app, args, input=input, env=unset | {"LOG_FORMAT": "text"} | env)

    yield invoke
    get_settings.cache_clear()


def run_cli(args: list[str], stdin: str = "", **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shared.cli.main", *args],
        input=stdin,
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def assert_one_line(stderr: str, *fragments: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr and "%3|" not in stderr
    assert PASSWORD not in stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


# --- a database that is not there, or not a database URL -------------------------------------


@pytest.mark.parametrize("command", [["job", "cleanup-api-logs", "--dry-run"], ["migrate"]])
def test_unreachable_database_is_one_line_and_exit_3(cli, command: list[str]) -> None:  # type: ignore[no-untyped-def]
    url = f"postgresql://plane:{PASSWORD}@127.0.0.1:{closed_port()}/plane"
    result = cli(command, DATABASE_URL=url)
    assert result.exit_code == EXIT_UNREACHABLE
    assert_one_line(result.stderr, "DATABASE_URL=postgresql://plane:[redacted]@127.0.0.1:", "unreachable")
    assert "Connection refused" in result.stderr


def test_a_missing_unix_socket_is_unreachable(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = cli(
        ["job", "prune-worker-state", "--dry-run"], DATABASE_URL=f"postgresql://plane@/plane?host={tmp_path}"
    )
    assert result.exit_code == EXIT_UNREACHABLE
    assert_one_line(result.stderr, "DATABASE_URL=", "unreachable", "No such file or directory")


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("not a url", "not a usable database URL"),
        (f"postgresql://plane:{PASSWORD}@db:port/plane", "not a usable database URL"),
        (f"mysql://plane:{PASSWORD}@db/plane", "not a PostgreSQL URL"),
        (f"postgresql://plane:{PASSWORD}@127.0.0.1:1/plane?nosuchoption=1", "refused"),
    ],
)
def test_a_malformed_database_url_is_a_configuration_error(cli, url: str, says: str) -> None:  # type: ignore[no-untyped-def]
    result = cli(["job", "cleanup-api-logs", "--dry-run"], DATABASE_URL=url)
    assert result.exit_code == EXIT_USAGE
    assert_one_line(result.stderr, "DATABASE_URL=", says)


def test_a_role_the_server_does_not_know_is_a_configuration_error(cli, embedded_postgres) -> None:  # type: ignore[no-untyped-def]
    # The server answers and refuses: retrying will not help, so 2, not 3.
    url = embedded_postgres.url.replace("postgresql://postgres:", f"postgresql://nosuchrole:{PASSWORD}", 1)
    assert url != embedded_postgres.url
    result = cli(["migrate"], DATABASE_URL=url)
    assert result.exit_code == EXIT_USAGE, result.stderr
    assert_one_line(result.stderr, "DATABASE_URL=", "nosuchrole", "does not exist")


def test_missing_settings_are_configuration_errors(cli) -> None:  # type: ignore[no-untyped-def]
    for args, variable in (
        (["job", "cleanup-api-logs"], "DATABASE_URL"),
        (["migrate"], "DATABASE_URL"),
        (["consume", IDV.name], "KAFKA_BOOTSTRAP_SERVERS"),
        (["dlq", "show", IDV.topic], "KAFKA_BOOTSTRAP_SERVERS"),
        (["dlq", "replay", IDV.topic], "KAFKA_BOOTSTRAP_SERVERS"),
    ):
        result = cli(args)
        assert result.exit_code == EXIT_USAGE, (args, result.stderr)
        assert_one_line(result.stderr, f"{variable} is not set")
    result = cli(["produce", IDV.topic], input=json.dumps(EVENT))
    assert result.exit_code == EXIT_USAGE
    assert_one_line(result.stderr, "KAFKA_BOOTSTRAP_SERVERS is not set")
    result = cli(["job", "cleanup-api-logs"], HARD_DELETE_AFTER_DAYS="soon")
    assert result.exit_code == EXIT_USAGE
    assert_one_line(result.stderr, "HARD_DELETE_AFTER_DAYS='soon'")


# --- a broker that is not there ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "stdin"),
    [
        (["produce", IDV.topic], json.dumps(EVENT)),
        (["dlq", "show", IDV.topic], ""),
        (["dlq", "replay", IDV.topic], ""),
    ],
    ids=["produce", "dlq-show", "dlq-replay"],
)
def test_unreachable_broker_is_one_line_and_exit_3_within_seconds(args: list[str], stdin: str) -> None:
    port = closed_port()
    started = time.monotonic()
    result = run_cli(args, stdin, KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{port}")
    took = time.monotonic() - started
    assert result.returncode == EXIT_UNREACHABLE, result.stderr
    # One line, none of librdkafka's own (%3|...|FAIL|...), within the 5 s probe (+ start-up).
    assert_one_line(
        result.stderr, f"KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:{port}", "no broker answered", "Connection refused"
    )
    assert result.stdout == ""
    assert took < 20


def test_a_kafka_setting_librdkafka_refuses_is_named(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli(
        ["dlq", "show", IDV.topic],
        KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{closed_port()}",
        KAFKA_SECURITY_PROTOCOL="bogus",
    )
    assert result.exit_code == EXIT_USAGE
    assert_one_line(result.stderr, "KAFKA_SECURITY_PROTOCOL", "bogus")


# --- one place maps what escapes a command -------------------------------------------------------


def test_an_unexpected_error_is_one_line_and_exit_1_and_debug_shows_the_traceback() -> None:
    demo = typer.Typer(cls=ErrorMappingGroup)

    @demo.command()
    def boom() -> None:
        raise ValueError(f"no good: postgresql://u:{PASSWORD}@h/db")

    @demo.command()
    def fine() -> None:
        raise typer.Exit(4)

    runner = CliRunner()
    result = runner.invoke(demo, ["boom"], env={"LOG_LEVEL": "INFO", "DATABASE_URL": ""})
    assert result.exit_code == EXIT_FAILED
    assert_one_line(result.stderr, "boom: failed: ValueError: no good", "LOG_LEVEL=DEBUG")
    get_settings.cache_clear()
    debug = runner.invoke(
        demo, ["boom"], env={"LOG_LEVEL": "DEBUG", "DATABASE_URL": f"postgresql://u:{PASSWORD}@h/db"}
    )
    get_settings.cache_clear()
    assert debug.exit_code == EXIT_FAILED
    assert "Traceback" in debug.stderr and PASSWORD not in debug.stderr
    assert runner.invoke(demo, ["fine"]).exit_code == 4
    assert runner.invoke(demo, ["nope"]).exit_code == EXIT_USAGE


# --- no secret printed ---------------------------------------------------------------------------


def test_config_shows_every_setting_with_passwords_and_secrets_masked(cli) -> None:  # type: ignore[no-untyped-def]
    env = {
        "DATABASE_URL": f"postgresql://plane:{PASSWORD}@plane-db:5432/plane",
        "PUSHGATEWAY_URL": "http://metrics:pg-basic-pass@pushgateway:9091",
        "SECRET_KEY": "django-secret-key-value",
        "EMAIL_HOST_PASSWORD": "smtp-pass-value",
        "KAFKA_BOOTSTRAP_SERVERS": "kafka:9092",
    }
    table = cli(["config"], **env)
    as_json = cli(["config", "--json"], **env)
    assert table.exit_code == 0 and as_json.exit_code == 0
    for output in (table.stdout, as_json.stdout):
        for secret in (PASSWORD, "pg-basic-pass", "django-secret-key-value", "smtp-pass-value"):
            assert secret not in output
        assert "postgresql://plane:[redacted]@plane-db:5432/plane" in output
        assert "kafka:9092" in output
    shown = json.loads(as_json.stdout)
    assert set(shown) == OUR_VARIABLES
    assert shown["SECRET_KEY"] == "[redacted]" and shown["AWS_SECRET_ACCESS_KEY"] == ""
    assert shown["PUSHGATEWAY_URL"] == "http://metrics:[redacted]@pushgateway:9091"
    rows = table.stdout.splitlines()[1:]
    assert [row.split()[0] for row in rows] == [v.env for v in VARIABLES]


# --- help, README tables, empty results ------------------------------------------------------------


def test_job_and_consume_help_list_the_registry(cli) -> None:  # type: ignore[no-untyped-def]
    jobs = cli(["job", "--help"])
    consumers = cli(["consume", "--help"])
    assert jobs.exit_code == 0 and consumers.exit_code == 0
    assert all(spec.name in jobs.stdout for spec in registry.JOBS)
    assert all(spec.name in consumers.stdout for spec in registry.CONSUMERS)


def test_readme_tables_are_current() -> None:
    tables = {"registry": what_runs_table(), "configuration": markdown_table()}
    stale = readme.stale_sections(tables)
    assert not stale, f"README.md: the {', '.join(stale)} table is stale: run `plane-workers export-readme`"
    assert CliRunner().invoke(app, ["export-readme", "--check"]).exit_code == 0


def test_the_registry_table_has_every_consumer_and_job_with_what_it_replaces(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli(["list", "--markdown"])
    assert result.exit_code == 0
    rows = result.stdout.strip().splitlines()[2:]
    assert len(rows) == len(registry.CONSUMERS) + len(registry.JOBS) + len(registry.DEPLOYMENTS)
    for spec in (*registry.CONSUMERS, *registry.JOBS, *registry.DEPLOYMENTS):
        assert spec.replaces, f"{spec.name}: set replaces= in shared/registry.py"
        assert any(f"`{spec.name}`" in row and spec.replaces in row for row in rows)


def test_a_stale_readme_table_is_found(tmp_path: Path) -> None:
    path = tmp_path / "README.md"
    path.write_text("intro\n<!-- registry:start -->\n| old |\n<!-- registry:end -->\nend\n")
    assert readme.stale_sections({"registry": "| new |"}, path) == ["registry"]
    readme.write({"registry": "| new |"}, path)
    assert path.read_text() == "intro\n<!-- registry:start -->\n| new |\n<!-- registry:end -->\nend\n"
    assert readme.stale_sections({"registry": "| new |"}, path) == []


def test_produce_with_nothing_on_stdin_says_so(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli(["produce", IDV.topic], input="")
    assert result.exit_code == 0
    assert result.stdout == ""
    assert_one_line(result.stderr, "nothing produced", "plane.issue-description-versions")


def test_dlq_show_of_an_empty_dlq_says_so(cli, kafka) -> None:  # type: ignore[no-untyped-def]
    prefix = f"t{uuid.uuid4().hex[:10]}."
    base = Settings.from_env({})
    create_topics(replace(base, kafka_bootstrap_servers=kafka.bootstrap, kafka_topic_prefix=prefix))
    env = {"KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap, "KAFKA_TOPIC_PREFIX": prefix}
    result = cli(["dlq", "show", IDV.topic], **env)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == f"no dead letters in {prefix}{IDV.topic}.dlq"
    # A prefix whose topics were never created: a configuration error that says what to run.
    missing = cli(
        ["dlq", "show", IDV.topic], KAFKA_BOOTSTRAP_SERVERS=kafka.bootstrap, KAFKA_TOPIC_PREFIX=f"x{prefix}"
    )
    assert missing.exit_code == EXIT_USAGE
    assert_one_line(missing.stderr, f"topic x{prefix}{IDV.topic}.dlq does not exist", "topics create")


# --- `dev`: the exports it prints point at the stack it runs ----------------------------------------


def test_dev_exports_are_what_the_stack_set() -> None:
    base = Settings.from_env({"KAFKA_TOPIC_PREFIX": "mine."})
    stack = replace(
        base,
        database_url="postgresql://postgres:@/postgres?host=/state dir/postgres",
        kafka_bootstrap_servers="127.0.0.1:40001",
        email_port=2525,
    )
    assert exports(base, stack) == [
        "export DATABASE_URL='postgresql://postgres:@/postgres?host=/state dir/postgres'",
        "export KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:40001",
        "export EMAIL_PORT=2525",
    ]


@pytest.mark.slow
def test_dev_prints_exports_that_reach_its_stack() -> None:
    state = Path(tempfile.mkdtemp(prefix="plane-workers-dev-"))  # not pytest's 0700 tmp (pgserver)
    dev = subprocess.Popen(
        [sys.executable, "-m", "shared.cli.main", "dev", "--state-dir", str(state)],
        env=clean_env(LOG_LEVEL="WARNING"),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        exported: dict[str, str] = {}
        assert dev.stdout is not None
        deadline = time.monotonic() + 120
        for line in dev.stdout:
            if line.strip().startswith("export "):
                name, _, value = line.strip().removeprefix("export ").partition("=")
                exported[name] = shlex.split(value)[0] if value else ""
            elif exported or time.monotonic() > deadline:
                break
        assert {"DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS"} <= set(exported), exported
        # In "another shell": the README's dlq example and a job, with those exports only.
        shown = run_cli(["dlq", "show", IDV.topic], **exported)
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout.strip() == f"no dead letters in plane.{IDV.topic}.dlq"
        job = run_cli(["job", "prune-worker-state", "--dry-run"], **exported)
        assert job.returncode == 0, job.stderr
        assert json.loads(job.stdout.splitlines()[-1])["job"] == "prune-worker-state"
    finally:
        os.killpg(dev.pid, signal.SIGTERM)
        dev.wait(timeout=90)
        shutil.rmtree(state, ignore_errors=True)
    assert dev.returncode == 0


# --- packaging: make demo shows progress, the license is SPDX, requests is for tests only ----------


def test_packaging() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["license"] == "AGPL-3.0-only"
    assert project["build-system"]["requires"] == ["setuptools>=77"]  # PEP 639 license strings
    runtime = [d.split(">")[0].split("<")[0] for d in project["project"]["dependencies"]]
    assert "requests" not in runtime
    assert any(d.startswith("requests") for d in project["project"]["optional-dependencies"]["dev"])
    for package in ("shared", "services", "cronjobs"):
        for path in (ROOT / package).rglob("*.py"):
            text = path.read_text()
            assert "import requests" not in text and "from requests" not in text, path
    makefile = (ROOT / "Makefile").read_text()
    venv_rule = makefile.split("$(BIN)/plane-workers: pyproject.toml")[1].split("\n\n")[0]
    assert "pip install" in venv_rule and "--quiet" not in venv_rule
