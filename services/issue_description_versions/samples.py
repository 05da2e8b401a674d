"""Conformance samples: one `is_creating` event per issue, one version row each when processed once.

A second processing of the same event would amend that row (same user, within the 10-minute
window), which the effects show as `amended`: a duplicate cannot hide.
"""

from __future__ import annotations

import json

from sqlalchemy import Engine, select

from shared.conformance import ConsumerSamples, SampleWorld
from shared.db.plane import IssueDescriptionVersion
from shared.events import new_event
from shared.testing import plane_factory as make

EVENT_TYPE = "plane.issue_description_version.v1"


def cases(world: SampleWorld) -> ConsumerSamples:
    users, issues = make.project_with_issues(world.engine, world.size, n_users=3)
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
