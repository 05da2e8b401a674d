"""`plane-workers ai vectorize WORKSPACE`: the seed's `vectorize_workspace`, resumable.

One `vectorization_jobs` row per workspace and model goes queued -> running -> success | failed.
The run holds it under a lease it renews with every page; a run killed half-way leaves it
`running` with a lapsing lease, and the next run takes it over once the lease has expired and
resumes at its checkpoint. Issues, then pages, are read in keyset pages (id order); each page is
indexed and its checkpoint (type and last id) committed in one transaction, so a kill loses at
most the page in flight, which the next run does again (the index's versions make that a no-op
where it was already written).

Done means validated, not assumed: after the last page every live issue and page of the
workspace is looked up in the index, and the job succeeds only when none is missing.
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from shared.db.ai_state import ACTIVE_JOB_STATUSES, JobStatus, VectorizationJob
from shared.embeddings.chunking import ISSUE, PAGE
from shared.embeddings.index import EntityKey
from shared.embeddings.pipeline import Indexer, Tally, Upsert
from shared.embeddings.sources import FIRST_ID, count_entities, entity_ids, entity_page
from shared.progress import Progress

J = VectorizationJob.__table__
ENTITY_TYPES = (ISSUE, PAGE)  # the order a run feeds them in; a checkpoint names where it is


class JobBusy(Exception):
    """Another run holds this workspace's job and its lease has not expired."""


@dataclass(frozen=True)
class Outcome:
    job_id: uuid.UUID
    status: str
    counts: dict[str, Any]
    resumed_from: str | None


class Backfill:
    def __init__(
        self,
        engine: Engine,
        indexer: Indexer,
        workspace_id: str,
        *,
        page_size: int = 256,
        lease_s: float = 60.0,
        pause_s: float = 0.0,
        progress: Callable[[str, int], Progress] | None = None,
    ) -> None:
        self.engine, self.indexer, self.workspace_id = engine, indexer, str(uuid.UUID(workspace_id))
        self.page_size, self.lease_s, self.pause_s = page_size, lease_s, pause_s
        self.owner = f"{socket.gethostname()}:{uuid.uuid4().hex[:8]}"
        self.progress = progress or Progress

    # -- the job row ---------------------------------------------------------------------------

    def _claim(self) -> tuple[uuid.UUID, dict[str, Any] | None, dict[str, Any]]:
        """Queue a job (or find the active one) and take its lease: (id, checkpoint, counts)."""
        model = self.indexer.model_name
        with self.engine.begin() as conn:
            active = (
                select(J.c.id)
                .where(
                    J.c.workspace_id == self.workspace_id,
                    J.c.model_name == model,
                    J.c.status.in_([s.value for s in ACTIVE_JOB_STATUSES]),
                )
                .with_for_update()
            )
            job_id = conn.execute(active).scalar()
            if job_id is None:
                job_id = uuid.uuid4()
                try:
                    with conn.begin_nested():
                        conn.execute(
                            insert(J).values(
                                id=job_id, workspace_id=self.workspace_id, model_name=model, status="queued"
                            )
                        )
                except IntegrityError:  # queued by another run at the same moment
                    raise JobBusy(f"workspace {self.workspace_id}: another run is starting") from None
            now = datetime.now(UTC)
            claimed = conn.execute(
                update(J)
                .where(
                    J.c.id == job_id,
                    (J.c.status == JobStatus.QUEUED.value)
                    | J.c.lease_expires_at.is_(None)
                    | (J.c.lease_expires_at < now),
                )
                .values(
                    status=JobStatus.RUNNING.value,
                    lease_owner=self.owner,
                    lease_expires_at=now + timedelta(seconds=self.lease_s),
                    attempts=J.c.attempts + 1,
                    started_at=func.coalesce(J.c.started_at, func.now()),
                    updated_at=now,
                )
                .returning(J.c.checkpoint, J.c.counts)
            ).first()
            if claimed is None:
                raise JobBusy(
                    f"workspace {self.workspace_id}: job {job_id} is running elsewhere (lease not expired)"
                )
            return job_id, claimed.checkpoint, dict(claimed.counts or {})

    def _finish(
        self, job_id: uuid.UUID, status: JobStatus, counts: dict[str, Any], error: str | None
    ) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(J)
                .where(J.c.id == job_id, J.c.lease_owner == self.owner)
                .values(
                    status=status.value,
                    counts=counts,
                    error=error,
                    lease_owner=None,
                    lease_expires_at=None,
                    finished_at=datetime.now(UTC),
                    updated_at=datetime.now(UTC),
                )
            )

    # -- the run ----------------------------------------------------------------------------------

    def run(self) -> Outcome:
        job_id, checkpoint, counts = self._claim()
        resumed_from = (checkpoint or {}).get("after")
        # A checkpoint without a type is an issue one (jobs started before pages were fed).
        resumed_type = (checkpoint or {}).get("type", ISSUE) if resumed_from else ISSUE
        try:
            counts = self._pages(job_id, resumed_type, resumed_from or FIRST_ID, counts)
            missing = self.missing()
            counts["missing"] = missing
        except BaseException as exc:
            if not isinstance(exc, KeyboardInterrupt):
                self._finish(job_id, JobStatus.FAILED, counts, f"{type(exc).__name__}: {exc}"[:2000])
            raise
        if missing:
            error = f"{missing} issue(s) and page(s) of the workspace have no vectors after the last page"
            self._finish(job_id, JobStatus.FAILED, counts, error)
            return Outcome(job_id, JobStatus.FAILED.value, counts, resumed_from)
        self._finish(job_id, JobStatus.SUCCESS, counts, None)
        return Outcome(job_id, JobStatus.SUCCESS.value, counts, resumed_from)

    def _pages(
        self, job_id: uuid.UUID, entity_type: str, after: str, counts: dict[str, Any]
    ) -> dict[str, Any]:
        with self.engine.connect() as conn:
            total = sum(count_entities(conn, kind, self.workspace_id) for kind in ENTITY_TYPES)
        counts["total"] = total
        done = int(counts.get("read", 0))
        bar = self.progress(f"vectorize {self.workspace_id}", total)
        for kind in ENTITY_TYPES[ENTITY_TYPES.index(entity_type) :]:
            done = self._pages_of(job_id, kind, after if kind == entity_type else FIRST_ID, counts, done, bar)
        bar.update(min(done, total), final=True)
        return counts

    def _pages_of(
        self, job_id: uuid.UUID, kind: str, after: str, counts: dict[str, Any], done: int, bar: Progress
    ) -> int:
        while True:
            with self.engine.begin() as conn:
                page = entity_page(conn, kind, self.workspace_id, after, self.page_size)
                if page.last_id is None:
                    return done
                tally: Tally = self.indexer.apply(conn, [Upsert(d) for d in page.documents])
                done += len(page.documents)
                for name, n in tally.as_dict().items():
                    counts[name] = int(counts.get(name, 0)) + n
                counts["read"] = done
                after = page.last_id
                held = conn.execute(
                    update(J)
                    .where(J.c.id == job_id, J.c.lease_owner == self.owner)
                    .values(
                        checkpoint={"type": kind, "after": after},
                        counts=counts,
                        lease_expires_at=datetime.now(UTC) + timedelta(seconds=self.lease_s),
                        updated_at=datetime.now(UTC),
                    )
                ).rowcount
                if not held:  # our lease lapsed and another run took the job: stop, roll back
                    raise JobBusy(f"job {job_id}: lease lost to another run")
            bar.update(min(done, bar.total))
            if self.pause_s:
                time.sleep(self.pause_s)

    def missing(self) -> int:
        """Live issues and pages of the workspace that the index does not hold live."""
        missing = 0
        for kind in ENTITY_TYPES:
            after = FIRST_ID
            while True:
                with self.engine.connect() as conn:
                    ids = entity_ids(conn, kind, self.workspace_id, after, 1000)
                if not ids:
                    break
                keys = [EntityKey(kind, i) for i in ids]
                held = self.indexer.index.lookup(keys)
                missing += sum(1 for k in keys if k not in held or held[k].deleted)
                after = ids[-1]
        return missing


def job_rows(engine: Engine, workspace_id: str | None, limit: int = 20) -> list[dict[str, Any]]:
    """The newest vectorisation jobs, of one workspace or of all."""
    query = select(J).order_by(J.c.created_at.desc()).limit(limit)
    if workspace_id is not None:
        query = query.where(J.c.workspace_id == str(uuid.UUID(workspace_id)))
    with engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(query)]
