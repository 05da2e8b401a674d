"""Conformance samples for `assets`: half HEADs of uploaded objects, half page duplications.

Seeded: a workspace and project, one uploaded asset (row and S3 object) per event, and for every
duplication a new page whose description shows its asset. Effects: each asset's storage_metadata
(its ETag and size), each duplicated page's HTML and how many copies point at it, and the number
of objects in the workspace's S3 prefix, so a second copy (a new row or a new key) shows. The live
server is the world's receiver, whose 200 "ok" is not a conversion: descriptions keep their JSON.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy import Connection, Engine, text
from sqlalchemy.orm import Session

from services.assets.copy import copy_id
from shared.conformance import ConsumerSamples, SampleWorld
from shared.events import new_event
from shared.settings import Settings
from shared.storage import s3_client
from shared.testing import plane_factory as make
from shared.testing.plane_rows import insert_one


def seed_workspace(engine: Engine) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID]:
    """(owner id, workspace id, project id) of a fresh workspace with one project."""
    with Session(engine, expire_on_commit=False) as session, session.begin():
        owner = make.user(0)
        session.add(owner)
        session.flush()
        ws = make.workspace(owner, slug=f"assets-{uuid.uuid4().hex[:8]}")
        session.add(ws)
        session.flush()
        proj = make.project(ws)
        session.add(proj)
    return owner.id, ws.id, proj.id


def upload(
    conn: Connection, settings: Settings, ws: uuid.UUID, project: uuid.UUID, body: bytes, **values: Any
) -> tuple[uuid.UUID, str]:
    """An uploaded asset: its row (PAGE_DESCRIPTION unless told) and its object; (id, key)."""
    name = values.pop("name", "image.png")
    key = f"{ws}/{uuid.uuid4().hex}-{name}"
    s3_client(settings).put_object(
        Bucket=settings.aws_s3_bucket_name, Key=key, Body=body, ContentType="image/png"
    )
    asset_id = insert_one(
        conn,
        "file_assets",
        attributes=json.dumps({"name": name, "type": "image/png", "size": len(body)}),
        asset=key,
        size=float(len(body)),
        workspace_id=ws,
        project_id=project,
        entity_type=values.pop("entity_type", "PAGE_DESCRIPTION"),
        is_uploaded=True,
        **values,
    )
    return asset_id, key


def page(conn: Connection, ws: uuid.UUID, owner: uuid.UUID, html: str) -> uuid.UUID:
    return insert_one(
        conn,
        "pages",
        name="Copy of a page",
        description_html=html,
        description_json=json.dumps({"type": "doc", "content": []}),
        owned_by_id=owner,
        workspace_id=ws,
    )


def image(src: object) -> str:
    return f'<p>see</p><image-component src="{src}" width="35%"></image-component>'


def cases(world: SampleWorld) -> ConsumerSamples:
    owner, ws, project = seed_workspace(world.engine)
    count = world.scaled(4)  # each an S3 object, half of them a page fetch
    events, metadata, pages = [], [], []
    with world.engine.begin() as conn:
        for n in range(count):
            body = f"asset {n} ".encode() * (1 + n % 7)
            asset_id, _key = upload(conn, world.settings, ws, project, body)
            if n % 2 == 0:
                data: dict[str, object] = {"asset_id": str(asset_id)}
                events.append((str(asset_id), new_event("plane.asset_metadata.v1", data)))
                metadata.append((str(asset_id), len(body)))
                continue
            new_page = page(conn, ws, owner, image(asset_id))
            data = {
                "entity_name": "PAGE",
                "entity_identifier": str(new_page),
                "project_id": str(project),
                "slug": "assets",
                "user_id": str(owner),
            }
            events.append((str(new_page), new_event("plane.asset_copy.v1", data)))
            pages.append((str(new_page), image(copy_id(new_page, asset_id)), 1))

    def effects() -> dict[str, object]:
        with world.engine.connect() as conn:
            heads = conn.execute(
                text(
                    "SELECT id::text, (storage_metadata->>'ContentLength')::int FROM file_assets"
                    " WHERE workspace_id = :ws AND storage_metadata ? 'ETag' ORDER BY id"
                ),
                {"ws": ws},
            ).all()
            copies = conn.execute(
                text(
                    "SELECT p.id::text, p.description_html, count(f.id) FROM pages p"
                    " LEFT JOIN file_assets f ON f.page_id = p.id WHERE p.workspace_id = :ws"
                    " GROUP BY p.id ORDER BY p.id"
                ),
                {"ws": ws},
            ).all()
        listing = s3_client(world.settings).get_paginator("list_objects_v2")
        keys = sum(page.get("KeyCount", 0) for page in listing.paginate(
            Bucket=world.settings.aws_s3_bucket_name, Prefix=f"{ws}/"
        ))  # fmt: skip
        return {"metadata": [tuple(r) for r in heads], "pages": [tuple(r) for r in copies], "objects": keys}

    return ConsumerSamples(
        events=events,
        effects=effects,
        expected={"metadata": sorted(metadata), "pages": sorted(pages), "objects": count + len(pages)},
        env={"LIVE_BASE_URL": world.receiver.url("/"), "LIVE_TIMEOUT_S": "2"},
    )
