"""Conformance samples for `link-crawler`: one link per event, crawled at the world's receiver.

The receiver answers 200 "ok" without a content type to everything: no title (not HTML), and the
/favicon.ico fallback is taken as Plane takes it (image/x-icon). Effects: each link's metadata,
and the number of page requests the receiver saw per link deduplicated, so a lost crawl shows.
"""

from __future__ import annotations

import uuid

from sqlalchemy import Connection, Engine, text

from shared.conformance import ConsumerSamples, SampleWorld
from shared.db.plane import Issue
from shared.events import new_event
from shared.testing import plane_factory as make
from shared.testing.plane_rows import insert_one


def link(conn: Connection, issue: Issue, url: str, **values: object) -> uuid.UUID:
    return insert_one(
        conn,
        "issue_links",
        url=url,
        issue_id=issue.id,
        project_id=issue.project_id,
        workspace_id=issue.workspace_id,
        metadata="{}",  # insert_one binds JSON as text
        **values,
    )


def metadata_of(engine: Engine, link_id: uuid.UUID) -> dict:
    with engine.connect() as conn:
        return conn.scalar(text("SELECT metadata FROM issue_links WHERE id = :id"), {"id": link_id})


def cases(world: SampleWorld) -> ConsumerSamples:
    _users, (issue,) = make.project_with_issues(world.engine, 1)
    tag = uuid.uuid4().hex[:8]  # this case's requests only: the receiver is shared
    favicon_url = world.receiver.url("/favicon.ico")
    events, expected = [], []
    with world.engine.begin() as conn:
        for n in range(world.size):
            url = world.receiver.url(f"/{tag}/page/{n}")
            link_id = link(conn, issue, url)
            events.append((str(link_id), new_event("plane.link_crawl.v1", {"id": str(link_id), "url": url})))
            meta = {
                "title": None,
                "favicon": "data:image/x-icon;base64,b2s=",
                "url": url,
                "favicon_url": favicon_url,
            }
            expected.append((str(link_id), meta))

    def effects() -> dict[str, object]:
        with world.engine.connect() as conn:
            rows = conn.execute(
                text("SELECT id::text, metadata FROM issue_links WHERE issue_id = :i ORDER BY id"),
                {"i": issue.id},
            ).all()
        crawled = {r.path for r in world.receiver.requests() if r.path.startswith(f"/{tag}/")}
        return {"links": [(i, m) for i, m in rows], "pages_crawled": len(crawled)}

    return ConsumerSamples(
        events=events,
        effects=effects,
        expected={"links": sorted(expected, key=lambda e: e[0]), "pages_crawled": world.size},
        env={"LINK_CRAWLER_ALLOWED_IPS": "127.0.0.1/32"},
    )
