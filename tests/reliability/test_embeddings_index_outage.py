"""R25 in full through an index outage: the pgvector index's PostgreSQL (the consumer's own
database: the index tables live in it, so the embeddings consumer's index connection is its
session's) refuses connections for 35 s while embed events keep arriving out of order.

Nothing may be dead-lettered or sent to a retry tier (the events are fine, the index is down),
the consumer holds and tries the batch again (every HOLD_S, shared/kafka/strategy.py) until the
database answers, and then every entity ends at its newest version: v1, v3, v2, v3 again and a
delete, as the events arrive on both sides of the outage. Real stack: tansu, the embedded
PostgreSQL with pgvector, all-MiniLM-L6-v2 on CPU, the consumer's batch runtime in this process.
"""

from __future__ import annotations

import logging
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from shared import registry
from shared.health import ready_file
from shared.settings import Settings
from tests.helpers import consumer_thread, dead_letters, processed, set_database_up, wait_until
from tests.integration.test_embeddings_consumer import chat, embed, entity, produce, recorded
from tests.reliability.test_database_outage import offsets

SPEC = registry.consumer("embeddings")
OUTAGE_S = 35.0


@pytest.mark.slow
def test_r25_through_a_35_s_index_outage(
    settings: Settings,
    engine: Engine,
    admin: Engine,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="shared.kafka")
    tag = uuid.uuid4().hex[:8]
    kept, deleted, born = f"kept-{tag}", f"deleted-{tag}", f"born-{tag}"  # born: only during the outage
    long_text = " ".join(f"word{i}" for i in range(600))  # v3 of `kept`: several chunks
    before = [chat(kept, 1, "first draft"), chat(deleted, 1, "to be deleted")]
    during = [
        [chat(kept, 3, long_text), chat(deleted, 3, "third")],
        [chat(kept, 2, "an older edit, late"), chat(deleted, 2, "older, late"), chat(born, 2, "born two")],
        [chat(kept, 3, long_text), chat(deleted, 3, "third"), embed("delete", "external", deleted, 4)],
        [chat(born, 1, "born one, late"), chat(deleted, 2, "older than the delete")],
    ]
    after = [chat(kept, 2, "older still"), chat(born, 1, "born one, again")]
    total = len(before) + sum(map(len, during)) + len(after)
    ready = Path(ready_file(settings.health_file))

    with consumer_thread(SPEC, settings):
        produce(settings, *before)
        wait_until(lambda: processed(engine, SPEC.name) == len(before), 120)
        assert entity(engine, "external", kept) == (1, False, ["first draft"])
        wait_until(ready.exists, 30, interval_s=0.2)

        set_database_up(admin, settings.database_url, up=False)
        down_at = time.monotonic()
        try:
            for n, events in enumerate(during):
                produce(settings, *events)
                if n == 0:
                    wait_until(lambda: not ready.exists(), 30, interval_s=0.2)  # held: not ready
                time.sleep(OUTAGE_S / (len(during) + 1))
            assert not any(sum(offsets(settings, t).values()) for t in SPEC.retry_topics)
            assert dead_letters(settings, SPEC.topic) == []
            assert not ready.exists()
            time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - down_at)))
        finally:
            set_database_up(admin, settings.database_url, up=True)
        up_at = time.monotonic()
        produce(settings, *after)
        wait_until(lambda: all_processed(engine, total), 120)
        recovered_s = time.monotonic() - up_at
        wait_until(ready.exists, 30, interval_s=0.2)

    version, gone, chunks = entity(engine, "external", kept)  # type: ignore[misc]
    assert (version, gone) == (3, False) and len(chunks) >= 3, (version, gone, len(chunks))
    assert chunks[0].startswith("word0 word1") and "word599" in chunks[-1]
    assert entity(engine, "external", deleted) == (4, True, [])
    assert entity(engine, "external", born) == (2, False, ["born two"])
    assert recorded(engine, kept) == (3, len(chunks))
    assert recorded(engine, deleted) == (4, 0)
    assert recorded(engine, born) == (2, 1)
    # Held, never failed: no event spent a retry or was dead-lettered as poison.
    assert not any(sum(offsets(settings, t).values()) for t in SPEC.retry_topics)
    assert dead_letters(settings, SPEC.topic) == []
    log = caplog.text
    assert "dependency unavailable, holding the partitions" in log
    held_s = [
        float(r.getMessage().split()[-2]) for r in caplog.records if "available again after" in r.getMessage()
    ]
    assert held_s and held_s[-1] >= OUTAGE_S - 5, held_s
    assert recovered_s < 30, recovered_s


def all_processed(engine: Engine, total: int) -> bool:
    """The consumer runs in this process, so its failed connects opened the process's database
    circuit breaker (shared/db/breaker.py): until its half-open probe (at most 5 s after the
    outage) every connect here fails fast too, which is the breaker working, not the database."""
    try:
        return processed(engine, SPEC.name) == total
    except OperationalError:
        return False
