"""What a consumer author writes against: a handler, its context, and the errors it may raise."""

from __future__ import annotations

from collections.abc import Callable
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


@dataclass
class HandlerContext:
    consumer: str
    settings: Settings
    producer: EventProducer
    # The transaction that also claims the event id (idempotency="transaction"); None otherwise.
    session: Session | None


Handler = Callable[[Event, HandlerContext], None]
