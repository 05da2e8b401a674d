"""What every registry entry hands the conformance suite (tests/conformance): its samples.

A consumer's or job's `samples` names a function `(SampleWorld) -> ConsumerSamples | JobSamples`.
It seeds the rows its events or its run need and says how to read the *visible effects* back as
plain, comparable data. The suite owns every loop (crash storms, replays, poison, SIGTERM,
outages, concurrent runs) and asserts one thing after each: the effects equal `expected`.

Effects are what an outside observer could see: rows in Plane's tables, messages on a topic,
requests a receiver got, mails sent. They leave out what legitimately differs between runs
(timestamps, generated ids), and they make duplicates visible, so "exactly once" can fail.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

from sqlalchemy import Engine

from shared.embedded.smtp import CapturedMail
from shared.events.envelope import Event
from shared.settings import Settings


@dataclass(frozen=True)
class ReceivedRequest:
    method: str
    path: str
    headers: Mapping[str, str]  # names lower-cased
    body: bytes


class Receiver(Protocol):
    """A loopback HTTP server that answers 200 and records every request (webhook endpoints)."""

    def url(self, path: str = "/") -> str: ...

    def requests(self) -> list[ReceivedRequest]: ...


class Mailbox(Protocol):
    """The SMTP capture every mail goes to."""

    @property
    def messages(self) -> list[CapturedMail]: ...


@dataclass(frozen=True)
class SampleWorld:
    """What a samples function gets: Plane's schema (plus ours) in a database of its own,
    settings that point at the embedded stack (own topic prefix, S3 buckets, SMTP), a loopback
    receiver and the mailbox, and a seeded random generator."""

    engine: Engine
    settings: Settings
    receiver: Receiver
    mailbox: Mailbox
    rng: random.Random
    # How many events (consumers) or rows (jobs) to aim for; the suite picks it per case.
    size: int

    def scaled(self, per_event: int) -> int:
        """How many events to make when each one is a unit of work worth about `per_event`
        light ones (an export file, an import, a seeded workspace, a subtree): `size` of them would
        make one case cost several times another's, and a CI run of the suite is CPU-bound."""
        return max(12, self.size // per_event)


Effects = Callable[[], object]


@dataclass(frozen=True)
class ConsumerSamples:
    """Valid events for a consumer, and how to see what processing them did.

    `effects()` must equal `expected` once every event has been processed, whatever crashes,
    replays or outages happened in between. `delivery="at_least_once"` declares a consumer whose
    outside receiver may see an event twice (webhook deliveries): its `effects()` then reads the
    receiver deduplicated by the idempotency key, so a duplicate with a *different* key still
    shows as a difference.
    """

    events: Sequence[tuple[str | None, Event]]  # (message key, event), in produce order
    effects: Effects
    expected: object
    delivery: Literal["exactly_once", "at_least_once"] = "exactly_once"
    # Settings the consumer process needs beyond the world's, as environment variables.
    env: Mapping[str, str] = field(default_factory=dict)
    # Logical topics the consumer produces to and whose messages `effects()` reads.
    produces: tuple[str, ...] = ()


@dataclass(frozen=True)
class JobSamples:
    """Rows seeded for one job run, and how to see what the run changed.

    `effects()` equals `expected` after one complete run (and after any number of further ones).
    `env` should slow the run down enough (JOB_BATCH_PAUSE_MS, several batches of rows) that a
    kill can land half-way; `interruptible=False` marks a job whose one unit of work cannot be
    split, so a kill lands before or after it.
    """

    effects: Effects
    expected: object
    env: Mapping[str, str] = field(default_factory=dict)
    scheduled_for: datetime | None = None
    interruptible: bool = True


ConsumerSampler = Callable[[SampleWorld], ConsumerSamples]
JobSampler = Callable[[SampleWorld], JobSamples]
