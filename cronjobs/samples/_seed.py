"""What every job's samples share: the run's time, how many rows to seed, a Plane scope, read-backs."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, text

from shared.archive import decode_rows
from shared.conformance import SampleWorld
from shared.settings import Settings
from shared.storage import s3_client
from shared.testing.plane_rows import insert_one, insert_user

# Slow enough that a kill lands between batches, short enough that a run over three takes ~0.5 s.
# (Also above a third of hard-delete's TARGET_TX_S, so its adaptive batch size does not grow.)
PAUSE_ENV = {"JOB_BATCH_PAUSE_MS": "150"}
BATCHES = 2.5  # at least this many batches' worth of rows to act on: three batch transactions


def scheduled_time() -> datetime:
    """Now in whole seconds: `--scheduled-for` takes seconds, and every run of a case gets this one,
    so cut-offs do not move between the dry run, the real run and the run after a kill."""
    return datetime.now(UTC).replace(microsecond=0)


def rows_to_act_on(world: SampleWorld, batch_size: int) -> int:
    """`world.size`, but never less than BATCHES batches: a run of one batch cannot be cut half-way."""
    return max(world.size, int(batch_size * BATCHES))


@dataclass(frozen=True)
class Scope:
    """A user, a workspace and a project: the parents most Plane rows need."""

    user: uuid.UUID
    workspace: uuid.UUID
    project: uuid.UUID

    @property
    def params(self) -> dict[str, Any]:
        return {"u": self.user, "w": self.workspace, "p": self.project}


def scope(conn: Connection, **project: Any) -> Scope:
    user = insert_user(conn)
    ws = insert_one(conn, "workspaces", name="ws", slug=f"ws-{uuid.uuid4().hex[:8]}", owner_id=user)
    values = {"name": "p", "identifier": "P", "network": 2, "created_by_id": user, **project}
    return Scope(user, ws, insert_one(conn, "projects", workspace_id=ws, **values))


def ids(engine: Engine | Connection, sql: str, **params: Any) -> list[str]:
    """The first column of `sql` as sorted strings (uuids, keys): comparable, order-free."""
    if isinstance(engine, Connection):
        return sorted(str(v) for v in engine.scalars(text(sql), params))
    with engine.connect() as conn:
        return sorted(str(v) for v in conn.scalars(text(sql), params))


def archived_ids(settings: Settings, table: str) -> list[str]:
    """Ids of every row in `table`'s archive objects, deduplicated: archiving is at-least-once (a batch
    archived by a killed run is archived again), and copies of one id are the same row."""
    client = s3_client(settings)
    prefix = f"{settings.archive_s3_prefix}{table}/"
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=settings.archive_s3_bucket, Prefix=prefix)
    found: set[str] = set()
    for page in pages:
        for obj in page.get("Contents", []):
            body = client.get_object(Bucket=settings.archive_s3_bucket, Key=obj["Key"])["Body"].read()
            found.update(str(row["id"]) for row in decode_rows(body))
    return sorted(found)


def object_keys(settings: Settings, bucket: str) -> list[str]:
    client = s3_client(settings)
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))
