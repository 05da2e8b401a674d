"""Sentences/s of the whole `embeddings` consumer (Kafka -> Plane's rows -> model -> pgvector)
against raw `SentenceTransformer.encode` of the same texts, in the same run; then the backfill
(`plane-workers ai vectorize`) of a workspace: wall time, rate and peak RSS. Prints JSON.

`python -m tests.benchmarks.bench_embeddings [SENTENCES] [BACKFILL_ISSUES]`

- Texts: issue names plus one-sentence descriptions drawn from a fixed vocabulary, ~30 model
  tokens each (the size sbert.net and the design's ~180 sentences/s on 2 cores refer to); each
  issue is one chunk, so an event is a sentence.
- Raw: `model.encode(texts, batch_size=256)` in this process (sentence-transformers sorts by
  length itself), the model already loaded and warmed, once before and once after the consumer
  runs (never at the same time; the mean is the baseline, both are reported, since other work on
  a shared machine moves either).
- Consumer: one `plane-workers consume embeddings` process. Once it is ready (model loaded and
  warmed, partitions assigned) the events are produced, and the clock runs from the first
  produce to the last event processed: Kafka, Plane's rows, chunking, the model, pgvector and
  the commit, all of it.
- Backfill: a separate workspace, one `ai vectorize` process from start to exit (model load
  included: it is part of what an operator waits for); peak RSS from wait4.
Not part of the test run: `make bench`.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path

from sqlalchemy import Engine

from shared.embedded.bootstrap import prepare
from shared.embedded.stack import EmbeddedStack, env_for
from shared.health import ready_file
from shared.settings import Settings
from tests.benchmarks.emit import emit, summary
from tests.helpers import processed, spawn_consumer, wait_until

CONSUMER = "embeddings"
WORDS = [
    "login",
    "export",
    "board",
    "cycle",
    "module",
    "label",
    "webhook",
    "sprint",
    "release",
    "deploy",
    "crash",
    "timeout",
    "token",
    "page",
    "invite",
    "member",
    "project",
    "workspace",
    "filter",
    "search",
    "sort",
    "view",
    "chart",
    "estimate",
    "priority",
    "assignee",
    "due",
    "date",
    "comment",
    "mention",
    "upload",
    "attachment",
    "image",
    "link",
    "state",
    "archive",
    "draft",
    "backlog",
    "triage",
    "review",
    "merge",
    "branch",
    "build",
    "test",
    "flaky",
    "slow",
    "memory",
    "leak",
    "cache",
    "retry",
    "queue",
    "worker",
    "email",
    "digest",
    "theme",
]
VERBS = ["fails", "breaks", "hangs", "loads", "renders", "shows", "returns", "drops", "ignores", "duplicates"]


def texts_for(n: int, rng: random.Random) -> list[tuple[str, str]]:
    rows = []
    for i in range(n):
        a, b = rng.sample(WORDS, 2)
        name = f"{a.title()} {rng.choice(VERBS)} when the {b} is open ({i})"
        description = " ".join(rng.choice(WORDS) for _ in range(18))
        rows.append((name, description))
    return rows


def seed(engine: Engine, rows: list[tuple[str, str]]) -> tuple[str, list[uuid.UUID]]:
    from shared.testing.plane_factory import project_with_issues

    _users, issues = project_with_issues(engine, 0, n_users=1, texts=rows)
    return str(issues[0].workspace_id), [i.id for i in issues]


def raw_encode(texts: list[str]) -> tuple[float, int]:
    """Sentences/s of the bare model on these texts, and its token count per text (median)."""
    from shared.embeddings.config import EmbeddingSettings
    from shared.embeddings.model import Embedder

    embedder = Embedder.load(EmbeddingSettings.from_env({"EMBEDDING_DEVICE": "cpu"}))
    embedder.warm_up()
    lengths = sorted(embedder.token_lengths(texts))
    started = time.perf_counter()
    embedder.model.encode(texts, batch_size=256, show_progress_bar=False, convert_to_numpy=True)
    elapsed = time.perf_counter() - started
    return len(texts) / elapsed, lengths[len(lengths) // 2]


def backfill(settings: Settings, workspace: str) -> tuple[float, float, str]:
    """(wall seconds, peak RSS MiB, its stdout line) of one `ai vectorize` process."""
    env = env_for(settings) | {"EMBEDDING_DEVICE": "cpu", "LOG_LEVEL": "WARNING"}
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "shared.cli.main", "ai", "vectorize", workspace],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    out = proc.stdout.read()
    _pid, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0 or ": success:" not in out:
        raise RuntimeError(f"ai vectorize exited {proc.returncode}: {out!r}")
    return elapsed, usage.ru_maxrss / 1024, out.strip()


def main(n: int = 5_000, n_backfill: int = 20_000) -> dict[str, object]:
    os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")
    rng = random.Random(16)
    state = Path(tempfile.mkdtemp(prefix="plane-workers-bench-"))
    with EmbeddedStack(Settings.from_env(), state) as stack:
        s = replace(stack.settings, metrics_port=0)
        prepare(s)
        from shared.db.engine import get_engine
        from shared.events import new_event
        from shared.events.producer import EventProducer

        engine = get_engine(s.database_url)
        rows = texts_for(n, rng)
        _workspace, ids = seed(engine, rows)
        texts = [f"{name}\n\n{d}" for name, d in rows]
        raw_before, median_tokens = raw_encode(texts)

        events = [
            (
                str(i),
                new_event(
                    "plane.embed.v1", {"action": "upsert", "entity_type": "issue", "entity_id": str(i)}
                ),
            )
            for i in ids
        ]
        ready = Path(ready_file(s.health_file))
        with tempfile.TemporaryFile() as log:
            consumer = spawn_consumer(CONSUMER, s, stderr=log, EMBEDDING_DEVICE="cpu")
            try:
                # Model loaded and warmed, partitions assigned: then the events go in.
                wait_until(ready.exists, timeout_s=300, interval_s=0.05)
                start = time.perf_counter()
                EventProducer(s).send_many(CONSUMER, events)
                wait_until(lambda: processed(engine, CONSUMER) >= n, timeout_s=3600, interval_s=0.05)
                elapsed = time.perf_counter() - start
            finally:
                consumer.send_signal(signal.SIGTERM)
                consumer.wait(timeout=60)
        raw_after, _ = raw_encode(texts)
        consumer_rate = n / elapsed
        raw_rate = (raw_before + raw_after) / 2

        backfill_ws, _ = seed(engine, texts_for(n_backfill, rng))
        wall, rss_mib, line = backfill(s, backfill_ws)
        engine.dispose()
    ours, raw = round(consumer_rate, 1), round(raw_rate, 1)
    return {
        "benchmark": "embeddings",
        # The baseline is the bare model on the same texts: the ceiling the consumer approaches.
        **summary(ours, raw, "sentences/s", limit=raw),
        "target_ratio": 0.9,
        "sentences": n,
        "raw_before_after": [round(raw_before, 1), round(raw_after, 1)],
        "consumer_seconds": round(elapsed, 3),
        "median_tokens_per_sentence": median_tokens,
        "backfill": {
            "issues": n_backfill,
            "wall_s": round(wall, 1),
            "issues_per_s": round(n_backfill / wall, 1),
            "peak_rss_mib": round(rss_mib, 1),
            "result": line,
            "note": "wall time includes process start and model load",
        },
        "device": "cpu",
        "int8": "bench_embeddings_int8 (the CPU backends side by side, recall against fp32)",
        "cpu_count": os.cpu_count(),
        "stack": "embedded (pgserver PostgreSQL + pgvector, tansu), all-MiniLM-L6-v2 fp32",
    }


if __name__ == "__main__":
    emit(main, sys.argv[1:3])
