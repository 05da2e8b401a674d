"""Each attempt is written down before its request goes out, so a killed worker loses none.

The attempts about to send (tasks on the HTTP event loop) hand their attempt to the journal and
await its commit; the journal's thread writes everything that queued up meanwhile in one
multi-row insert (group commit) and wakes the whole group with one call into the loop, so the
cost is one round trip per attempt in latency and one statement per group. The
writer deletes the delivery's rows in the transaction that records its outcome (`store.record`);
a row left behind is an attempt nobody logged, found, logged as interrupted and kept (marked
logged) by whoever reads its delivery next (`store.lookup`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time

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


_Ticket = tuple[Delivery, "asyncio.Future[bool]"]


class AttemptJournal:
    """One per process, shared by the main topic's and every retry tier's pipelines."""

    def __init__(self, sessions: sessionmaker[Session], hold: Hold, loop: asyncio.AbstractEventLoop) -> None:
        self._sessions = sessions
        self._hold = hold
        self._loop = loop  # where the attempts wait
        self._ready = threading.Condition()
        self._queued: list[_Ticket] = []
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="webhook-journal", daemon=True)
        self._thread.start()

    async def begin(self, delivery: Delivery) -> bool:
        """On the loop: until the attempt is written. False: the process is stopping, do not send."""
        written = self._loop.create_future()
        with self._ready:
            if self._closed:
                return False
            self._queued.append((delivery, written))
            self._ready.notify()
        return await written

    def close(self) -> None:
        with self._ready:
            self._closed = True
            self._ready.notify()
        self._thread.join(timeout=5)

    def _run(self) -> None:
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
        # As text, cast in SQL: psycopg2's UUID adapter is Python code run for every element.
        params = {
            "ids": [d.id for d, _ in group],
            "attempts": [d.attempt for d, _ in group],
            "hooks": [str(d.webhook_id) for d, _ in group],
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

    def _release(self, group: list[_Ticket], send: bool) -> None:
        if group:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
                self._loop.call_soon_threadsafe(_settle, group, send)


def _settle(group: list[_Ticket], send: bool) -> None:
    for _, written in group:
        if not written.done():  # cancelled: the loop is shutting down
            written.set_result(send)
