"""Conformance samples for `pages`, and the page rows and editor HTML its tests build.

Per page, in order: its creation's page_transaction (two mentions and an image logged), a
page_version (a new version), a description save that drops the first mention (its log
soft-deleted), then more page_versions, each by another user than the one before, so each adds a
version (past 20 of a page, the oldest are soft-deleted). Effects: the logs (live or not), the
live versions with an `amended` flag (a version event processed twice within the window would
amend its row: a duplicate cannot hide), and the number of distinct embed events handed to
`embeddings`.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, text
from sqlalchemy.orm import Session

from services.pages.handler import EMBEDDINGS_TOPIC, TRANSACTION, VERSION
from services.pages.versions import MAX_VERSIONS
from shared.conformance import ConsumerSamples, SampleWorld
from shared.db.plane import User
from shared.events import Event, new_event
from shared.testing import plane_factory as make
from shared.testing.plane_rows import insert_one
from shared.testing.topics import read_topic

PAGES = 8
USERS = 3


def mention(transaction: uuid.UUID, target: object, entity_name: str = "user_mention") -> str:
    return (
        f'<mention-component id="{transaction}" entity_identifier="{target}" '
        f'entity_name="{entity_name}"></mention-component>'
    )


def image(transaction: uuid.UUID, src: object) -> str:
    return f'<image-component id="{transaction}" src="{src}" width="35%"></image-component>'


@dataclass(frozen=True)
class PageWorld:
    users: list[User]
    workspace_id: uuid.UUID
    pages: list[uuid.UUID]


def seed(engine: Engine, n_pages: int, n_users: int = USERS, html: str = "<p>page</p>") -> PageWorld:
    """Users, a workspace owned by the first, and `n_pages` pages holding `html`."""
    with Session(engine, expire_on_commit=False) as session, session.begin():
        users = [make.user(n) for n in range(n_users)]
        session.add_all(users)
        session.flush()
        ws = make.workspace(users[0], slug=f"ws-{uuid.uuid4().hex[:8]}")
        session.add(ws)
    with engine.begin() as conn:
        pages = [page(conn, ws.id, users[0].id, html, name=f"page {n}") for n in range(n_pages)]
    return PageWorld(users, ws.id, pages)


def page(conn: Connection, workspace: uuid.UUID, owner: uuid.UUID, html: str, **values: object) -> uuid.UUID:
    return insert_one(
        conn,
        "pages",
        **{
            "name": "a page",
            "description_html": html,
            "description_json": json.dumps({"type": "doc", "content": [{"type": "paragraph"}]}),
            "description_stripped": "page",
            "description_binary": b"\x01yjs",
            "owned_by_id": owner,
            "workspace_id": workspace,
            **values,
        },
    )


def transaction_event(page_id: uuid.UUID, new_html: str | None, old_html: str | None = None) -> Event:
    data = {"new_description_html": new_html, "old_description_html": old_html, "page_id": str(page_id)}
    return new_event(TRANSACTION, data)


def version_event(page_id: uuid.UUID, user_id: uuid.UUID, old_html: str | None = "<p>before</p>") -> Event:
    existing = None if old_html is None else json.dumps({"description_html": old_html})
    return new_event(
        VERSION, {"page_id": str(page_id), "existing_instance": existing, "user_id": str(user_id)}
    )


def cases(world: SampleWorld) -> ConsumerSamples:
    n_pages = min(world.size, PAGES)
    pw = seed(world.engine, n_pages)
    full: dict[uuid.UUID, tuple[str, list[tuple[str, str, str]]]] = {}
    with world.engine.begin() as conn:
        for page_id in pw.pages:
            first, second, img = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
            target, issue, asset = pw.users[1].id, uuid.uuid4(), uuid.uuid4()
            mentions = f"{mention(first, target)} and {mention(second, issue, 'issue_mention')}"
            html = f"<p>{mentions}</p>{image(img, asset)}"
            conn.execute(
                text("UPDATE pages SET description_html = :h WHERE id = :p"), {"h": html, "p": page_id}
            )
            logs = [
                (str(first), "user_mention", str(target)),
                (str(second), "issue_mention", str(issue)),
                (str(img), "image", str(asset)),
            ]
            full[page_id] = (html, logs)

    events: list[tuple[str | None, Event]] = []
    expected_logs: dict[tuple[str, str], tuple[str, str, str, str, bool]] = {}
    expected_versions: dict[uuid.UUID, list[tuple[str, str, str, bool]]] = {p: [] for p in pw.pages}
    for n in range(world.size):
        page_id, round_ = pw.pages[n % n_pages], n // n_pages
        html, logs = full[page_id]
        if round_ == 0:
            event = transaction_event(page_id, html)
            for transaction, name, target in logs:
                expected_logs[(str(page_id), transaction)] = (str(page_id), transaction, name, target, True)
        elif round_ == 2:
            without_first = html.split("</mention-component>", 1)[1]
            event = transaction_event(page_id, without_first, html)
            key = (str(page_id), logs[0][0])
            expected_logs[key] = (*expected_logs[key][:4], False)
        else:
            owner = pw.users[round_ % USERS].id  # never the previous version's owner
            event = version_event(page_id, owner)
            expected_versions[page_id].append((str(page_id), str(owner), html, False))
        events.append((str(page_id), event))

    def effects() -> dict[str, object]:
        with world.engine.connect() as conn:
            logs = conn.execute(
                text(
                    "SELECT page_id::text, transaction::text, entity_name, entity_identifier::text,"
                    " deleted_at IS NULL FROM page_logs WHERE workspace_id = :w"
                ),
                {"w": pw.workspace_id},
            ).all()
            versions = conn.execute(
                text(
                    "SELECT page_id::text, owned_by_id::text, description_html, updated_at <> created_at"
                    " FROM page_versions WHERE workspace_id = :w AND deleted_at IS NULL"
                ),
                {"w": pw.workspace_id},
            ).all()
        messages = read_topic(world.settings, world.settings.topic(EMBEDDINGS_TOPIC))
        return {
            "logs": sorted(tuple(r) for r in logs),
            "versions": sorted(tuple(r) for r in versions),
            "embeds": len({json.loads(m.value())["id"] for m in messages}),
        }

    return ConsumerSamples(
        events=events,
        effects=effects,
        expected={
            "logs": sorted(expected_logs.values()),
            # Past the cap, the oldest are soft-deleted: the newest MAX_VERSIONS of each page stay.
            "versions": sorted(v for vs in expected_versions.values() for v in vs[-MAX_VERSIONS:]),
            "embeds": world.size,
        },
        produces=(EMBEDDINGS_TOPIC,),
    )
