"""Each attempt is written down before its request goes out, so a killed worker loses none.

The HTTP threads about to send hand their attempt to the journal and wait for it to commit;
the journal's thread writes everything that queued up meanwhile in one multi-row insert (group
commit), so the cost is one round trip per attempt in latency and one statement per group. The
writer deletes the delivery's rows in the transaction that records its outcome (`store.record`);
a row left behind is an attempt nobody logged, found, logged as interrupted and kept (marked
logged) by whoever reads its delivery next (`store.lookup`).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass, field

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from services.webhooks.attempt import Delivery
from services.webhooks.stage import HOLD_S, transient
from shared.kafka.strategy import Hold

log = logging.getLogger(__name__)

_BEGIN = text(
    """
    INSERT INTO plane_workers.webhook_attempts (delivery_id, attempt, webhook_id)
    SELECT unnest(CAST(:ids AS uuid[])), unnest(CAST(:attempts AS int[])), unnest(CAST(:hooks AS uuid[]))
    ON CONFLICT DO NOTHING
    """
)


@dataclass
class _Ticket:
    delivery: Delivery
    written: threading.Event = field(default_factory=threading.Event)
    send: bool = False


class AttemptJournal:
    """One per process, shared by the main topic's and every retry tier's pipelines."""

    def __init__(self, sessions: sessionmaker[Session], hold: Hold) -> None:
        self._sessions = sessions
        self._hold = hold
        self._ready = threading.Condition()
        self._queued: list[_Ticket] = []
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="webhook-journal", daemon=True)
        self._thread.start()

    def begin(self, delivery: Delivery) -> bool:
        """Block until the attempt is written. False: the process is stopping, do not send."""
        ticket = _Ticket(delivery)
        with self._ready:
            if self._closed:
                return False
            self._queued.append(ticket)
            self._ready.notify()
        ticket.written.wait()
        return ticket.send

    def close(self) -> None:
        with self._ready:
            self._closed = True
            self._ready.notify()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while True:
            with self._ready:
                while not self._queued and not self._closed:
                    self._ready.wait()
                group, self._queued = self._queued, []
                closed = self._closed
            if closed:
                self._release(group, send=False)
                return
            self._release(group, send=self._write(group))

    def _write(self, group: list[_Ticket]) -> bool:
        params = {
            "ids": [uuid.UUID(t.delivery.id) for t in group],
            "attempts": [t.delivery.attempt for t in group],
            "hooks": [t.delivery.webhook_id for t in group],
        }
        while not self._closed:
            try:
                with self._sessions.begin() as session:
                    session.execute(_BEGIN, params)
                self._hold.up(time.time())
                return True
            except Exception as exc:
                if not transient(exc):
                    # Deliveries go on: their answers are still logged, only a crash before
                    # that would now go unrecorded.
                    log.exception("could not write %d attempts ahead of sending them", len(group))
                    return True
                self._hold.down(exc, time.time())  # nothing is sent while it could not be logged
                time.sleep(HOLD_S)
        return False

    @staticmethod
    def _release(group: list[_Ticket], send: bool) -> None:
        for ticket in group:
            ticket.send = send
            ticket.written.set()
