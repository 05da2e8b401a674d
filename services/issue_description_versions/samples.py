"""Conformance samples: one `is_creating` event per issue, one version row each when processed once.

A second processing of the same event would amend that row (same user, within the 10-minute
window), which the effects show as `amended`: a duplicate cannot hide.
"""

from __future__ import annotations

import json
import uuid

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from shared.conformance import ConsumerSamples, SampleWorld
from shared.db.plane import IssueDescriptionVersion
from shared.events import new_event
from shared.testing import plane_factory as make

EVENT_TYPE = "plane.issue_description_version.v1"


def cases(world: SampleWorld) -> ConsumerSamples:
    with Session(world.engine, expire_on_commit=False) as session, session.begin():
        users = [make.user(i) for i in range(3)]
        session.add_all(users)
        session.flush()
        ws = make.workspace(users[0], slug=f"ws-{uuid.uuid4().hex[:8]}")
        session.add(ws)
        session.flush()
        project = make.project(ws)
        session.add(project)
        session.flush()
        issues = [make.issue(project, n + 1, html=f"<p>issue {n + 1}</p>") for n in range(world.size)]
        session.add_all(issues)
    events, expected = [], []
    for n, issue in enumerate(issues):
        author = users[n % len(users)]
        data = {
            "updated_issue": json.dumps({"description_html": "<p>old</p>"}),
            "issue_id": str(issue.id),
            "user_id": str(author.id),
            "is_creating": True,
        }
        events.append((str(issue.id), new_event(EVENT_TYPE, data)))
        expected.append((str(issue.id), issue.description_html, str(author.id), False))
    return ConsumerSamples(events=events, effects=lambda: versions(world.engine), expected=sorted(expected))


def versions(engine: Engine) -> list[tuple[str, str, str, bool]]:
    """(issue, html, owner, amended) per version row: amended means processed more than once."""
    V = IssueDescriptionVersion
    query = select(V.issue_id, V.description_html, V.owned_by_id, V.updated_at != V.created_at)
    with engine.connect() as conn:
        return sorted((str(i), html, str(o), bool(a)) for i, html, o, a in conn.execute(query))
