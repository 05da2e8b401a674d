"""A Plane project with everything issue activities refer to, and a writer for translator results.

The writer applies an ActivityResult the way the package docstring of services/issue_activity
says the consumer will, so the goldens also prove the rows fit Plane's schema (NOT NULLs, the
varchar sizes, the deferred foreign keys checked at commit).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, text

from services.issue_activity import ActivityResult, writer
from shared.testing.plane_rows import insert_one, insert_user

ISSUE_CREATED_AT = datetime(2026, 4, 28, 9, 30, 0, 123456, tzinfo=UTC)


def _id(value: Any) -> uuid.UUID:
    return uuid.UUID(str(value))


@dataclass
class World:
    ws: uuid.UUID
    project: uuid.UUID
    ops_project: uuid.UUID  # a second project, for a parent in another project
    actor: uuid.UUID
    creator: uuid.UUID
    alice: uuid.UUID  # display name "alice"
    bob: uuid.UUID  # display name "bob"
    issue: uuid.UUID  # WEB-7, created by `creator` at ISSUE_CREATED_AT
    related: uuid.UUID  # WEB-8
    ops_issue: uuid.UUID  # OPS-1
    todo: uuid.UUID
    done: uuid.UUID
    cancelled: uuid.UUID
    triage: uuid.UUID
    bug: uuid.UUID
    ui: uuid.UUID
    sprint1: uuid.UUID
    sprint2: uuid.UUID
    backend: uuid.UUID  # a module
    point1: uuid.UUID  # estimate "points", value "1"
    point3: uuid.UUID  # value "3"
    comment: uuid.UUID  # on `issue`
    issue_reaction: uuid.UUID  # actor's 👍 ("128077") on `issue`
    comment_reaction: uuid.UUID  # actor's 😀 ("128512") on `comment`

    def in_project(self) -> dict[str, uuid.UUID]:
        return {"project_id": self.project, "workspace_id": self.ws}


def build_world(conn: Connection) -> World:
    users = {name: _id(insert_user(conn, display_name=name)) for name in ("actor", "creator", "alice", "bob")}
    ws = _id(
        insert_one(conn, "workspaces", name="W", slug=f"w-{uuid.uuid4().hex[:8]}", owner_id=users["creator"])
    )
    project = _id(insert_one(conn, "projects", name="Web", identifier="WEB", workspace_id=ws, network=2))
    ops = _id(insert_one(conn, "projects", name="Ops", identifier="OPS", workspace_id=ws, network=2))
    scope = {"project_id": project, "workspace_id": ws}

    def issue(seq: int, proj: uuid.UUID = project) -> uuid.UUID:
        return _id(
            insert_one(
                conn, "issues", name=f"Issue {seq}", sequence_id=seq, project_id=proj, workspace_id=ws,
                priority="none", description_html="<p>old</p>", created_at=ISSUE_CREATED_AT,
                created_by_id=users["creator"],
            )
        )  # fmt: skip

    def state(name: str, group: str) -> uuid.UUID:
        return _id(insert_one(conn, "states", name=name, group=group, slug=name.lower(), **scope))

    estimate = insert_one(conn, "estimates", name="Points", type="points", **scope)
    web7 = issue(7)
    comment = _id(
        insert_one(
            conn, "issue_comments", issue_id=web7, comment_html="<p>hi</p>", comment_stripped="hi",
            actor_id=users["actor"], access="INTERNAL", **scope,
        )
    )  # fmt: skip
    return World(
        ws=ws,
        project=project,
        ops_project=ops,
        actor=users["actor"],
        creator=users["creator"],
        alice=users["alice"],
        bob=users["bob"],
        issue=web7,
        related=issue(8),
        ops_issue=issue(1, ops),
        todo=state("Todo", "unstarted"),
        done=state("Done", "completed"),
        cancelled=state("Cancelled", "cancelled"),
        triage=state("Triage", "triage"),
        bug=_id(insert_one(conn, "labels", name="bug", **scope)),
        ui=_id(insert_one(conn, "labels", name="ui", **scope)),
        sprint1=_id(insert_one(conn, "cycles", name="Sprint 1", owned_by_id=users["creator"], **scope)),
        sprint2=_id(insert_one(conn, "cycles", name="Sprint 2", owned_by_id=users["creator"], **scope)),
        backend=_id(insert_one(conn, "modules", name="Backend", **scope)),
        point1=_id(insert_one(conn, "estimate_points", estimate_id=estimate, key=1, value="1", **scope)),
        point3=_id(insert_one(conn, "estimate_points", estimate_id=estimate, key=3, value="3", **scope)),
        comment=comment,
        issue_reaction=_id(
            insert_one(
                conn, "issue_reactions", issue_id=web7, actor_id=users["actor"], reaction="128077", **scope
            )
        ),
        comment_reaction=_id(
            insert_one(
                conn,
                "comment_reactions",
                comment_id=comment,
                actor_id=users["actor"],
                reaction="128512",
                **scope,
            )
        ),
    )


def apply(conn: Connection, result: ActivityResult, now: datetime) -> None:
    """Write one result as the consumer does."""
    writer.write(conn, [result], now)


def stored_rows(conn: Connection, ids: list[uuid.UUID]) -> dict[uuid.UUID, dict[str, Any]]:
    found = conn.execute(
        text("SELECT * FROM issue_activities WHERE id = ANY(CAST(:ids AS uuid[]))"),
        {"ids": [str(i) for i in ids]},
    )
    return {_id(r["id"]): dict(r) for r in found.mappings()}
