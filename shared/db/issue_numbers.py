"""Numbering a new issue as Plane's Issue.save() does: one place for the seed and the importer.

Issue.save() (plane/db/models/issue.py) takes a transaction-level advisory lock keyed by the
project id (`convert_uuid_to_integer`: the first 8 bytes of sha256 as a signed int64), reads
max(issue_sequences.sequence) + 1 for the project, and puts the issue below the others of its
state (max(sort_order) + 10000). Any writer that takes the same lock cannot share a number with
Plane's API creating issues meanwhile. The caller inserts the issue and its issue_sequences row
in the same transaction, before the lock is released at commit.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.orm import Session

SORT_STEP = 10000


def advisory_key(value: str) -> int:
    """Plane's lock key: the first 8 bytes of sha256(value) as a signed big-endian int64."""
    return int.from_bytes(hashlib.sha256(value.encode()).digest()[:8], "big", signed=True)


def lock_project(session: Session, project_id: uuid.UUID | str) -> None:
    """Plane's per-project lock, held until the transaction ends."""
    session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": advisory_key(str(project_id))})


@dataclass
class Numbering:
    """The next numbers of one project, read once under its lock and then counted on: the lock
    stays held until commit, so nobody else numbers an issue of the project meanwhile."""

    next_sequence: int
    largest_sort: dict[uuid.UUID | None, float | None]

    def take(self, session: Session, project_id: uuid.UUID, state_id: uuid.UUID | None, default_sort: float):
        """(sequence_id, sort_order) of the next issue in `state_id`."""
        sequence = self.next_sequence
        self.next_sequence += 1
        if state_id not in self.largest_sort:
            self.largest_sort[state_id] = session.scalar(
                text(
                    "SELECT max(sort_order) FROM issues WHERE project_id = :p"
                    " AND state_id IS NOT DISTINCT FROM :s"
                ),
                {"p": project_id, "s": state_id},
            )
        largest = self.largest_sort[state_id]
        sort = default_sort if largest is None else largest + SORT_STEP
        self.largest_sort[state_id] = sort
        return sequence, sort


def numbering(session: Session, project_id: uuid.UUID) -> Numbering:
    """Take the project's lock and read where its numbers stand."""
    lock_project(session, project_id)
    last = session.scalar(
        text("SELECT max(sequence) FROM issue_sequences WHERE project_id = :p"), {"p": project_id}
    )
    return Numbering((last or 0) + 1, {})
