"""What a consumer author writes against: a handler, its context, and the errors it may raise."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session

from shared.events.envelope import Event
from shared.events.producer import EventProducer
from shared.settings import Settings


class PermanentError(Exception):
    """The event can never succeed (e.g. it references something that does not exist).

    The runtime dead-letters it at once instead of retrying.
    """


class DependencyUnavailable(Exception):
    """A dependency every event needs is down (database, broker). Retrying other events would
    fail the same way, so the runtime holds the partition (pauses, keeps polling) and tries the
    same event again, without spending its retry budget."""


class EventFailures(Exception):
    """A batch handler's partial failure: `failures` maps the id of each event that failed to what
    it raised, and what the handler did for the other events of its call stands.

    For effects that cannot be rolled back (a mail sent), which re-running the batch event by event
    would repeat. The runtime commits the batch's transaction without the failed events' claims
    and treats each failed event alone as if it had raised its exception: DependencyUnavailable
    holds the batch (it comes again later, and what was committed is skipped as done); anything
    else goes to the retry tiers or the DLQ. The handler undoes a failed event's own writes (a
    savepoint). Not for keep_key_order: the events after a failed one of its key have applied."""

    def __init__(self, failures: Mapping[str, Exception]) -> None:
        self.failures = dict(failures)
        first = "; ".join(f"{type(e).__name__}: {e}" for e in list(self.failures.values())[:3])
        super().__init__(f"{len(self.failures)} events failed: {first}")


@dataclass
class HandlerContext:
    consumer: str
    settings: Settings
    producer: EventProducer
    # The transaction that also claims the event id (idempotency="transaction"); None otherwise.
    session: Session | None


Handler = Callable[[Event, HandlerContext], None]

BatchHandler = Callable[[Sequence[Event], HandlerContext], None]
"""A consumer registered with `batch=` (shared.registry.Batching) writes this instead of a Handler.

It gets the events of one batch in offset order, minus those already processed, inside the
transaction that claims them (`ctx.session`), and writes every effect with multi-row statements
(`insert(...).values(rows)`, COPY). It raises as a Handler does (PermanentError for an event that
can never succeed). The batch is then rolled back and the handler called once per event, each in
a savepoint of one new transaction, to find the failing ones, so what it writes for an event must
not depend on which events share its call. (EventFailures instead fails only the events it names
and keeps what the handler did for the others.) What it sends with `ctx.producer` is not rolled back:
it may go out twice. Keep effects per key in the order given, which is the order of the events."""
