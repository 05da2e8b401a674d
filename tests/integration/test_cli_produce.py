"""`plane-workers produce` over the real broker: valid envelopes in, bad input refused whole."""

from __future__ import annotations

import json
import subprocess
import sys

from shared import registry
from shared.embedded.stack import env_for
from tests.helpers import consumer_thread, idv_event, processed, seed, wait_until

SPEC = registry.consumer("issue-description-versions")


def produce(settings, stdin: str) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    return subprocess.run(
        [sys.executable, "-m", "shared.cli.main", "produce", SPEC.topic],
        input=stdin,
        env=env_for(settings),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_produce_wraps_json_lines_and_the_consumer_processes_them(settings, engine):  # type: ignore[no-untyped-def]
    (alice,), issues = seed(engine, 2, n_users=1)
    lines = "\n".join(json.dumps(idv_event(i, alice, creating=True).data) for i in issues)
    result = produce(settings, lines)
    assert result.returncode == 0, result.stderr
    ids = [json.loads(line)["produced"] for line in result.stdout.splitlines()]
    assert len(ids) == 2
    with consumer_thread(SPEC, settings):
        wait_until(lambda: processed(engine, SPEC.name) == 2)


def test_produce_refuses_invalid_data_and_sends_nothing(settings, engine):  # type: ignore[no-untyped-def]
    (alice,), (issue,) = seed(engine, 1, n_users=1)
    good = json.dumps(idv_event(issue, alice, creating=True).data)
    result = produce(settings, good + "\n" + json.dumps({"issue_id": "nope"}))
    assert result.returncode == 2
    assert "nothing produced" in result.stderr
    assert result.stdout == ""
