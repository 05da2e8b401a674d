"""assets against real PostgreSQL (Plane's schema), the embedded S3 server and a loopback live server.

The handler is called directly (the broker path is the conformance suite's). The live server is an
HttpServer on 127.0.0.1 standing in for Plane's live service; an S3 endpoint nobody listens on
stands for S3 being down.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from dataclasses import replace

import pytest
from sqlalchemy import Engine, text

from services.assets import copy, handler
from services.assets.samples import image, page, seed_workspace, upload
from shared.events import new_event
from shared.kafka.handler import DependencyUnavailable, HandlerContext
from shared.settings import Settings
from shared.storage import s3_client
from tests.integration.http_servers import HttpServer, running, send

BODY = b"\x89PNG pixels"


def run(settings: Settings, event_type: str, data: dict) -> None:
    event = new_event(event_type, data)
    handler.handle(event, HandlerContext("assets", settings, None, None))  # type: ignore[arg-type]


def run_event(settings: Settings, event) -> None:  # type: ignore[no-untyped-def]
    handler.handle(event, HandlerContext("assets", settings, None, None))  # type: ignore[arg-type]


def storage_metadata(engine: Engine, asset_id: uuid.UUID):  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return conn.execute(
            text("SELECT storage_metadata, updated_at FROM file_assets WHERE id = :id"), {"id": asset_id}
        ).one()


def test_metadata_in_plane_shape_without_touching_updated_at(engine, s3_settings) -> None:
    _owner, ws, project = seed_workspace(engine)
    with engine.begin() as conn:
        asset_id, key = upload(conn, s3_settings, ws, project, BODY)
    before = storage_metadata(engine, asset_id).updated_at
    run(s3_settings, "plane.asset_metadata.v1", {"asset_id": str(asset_id)})
    meta, updated_at = storage_metadata(engine, asset_id)
    head = s3_client(s3_settings).head_object(Bucket=s3_settings.aws_s3_bucket_name, Key=key)
    assert meta == {
        "ContentType": "image/png",
        "ContentLength": len(BODY),
        "LastModified": head["LastModified"].isoformat(),
        "ETag": head["ETag"],
        "Metadata": {},
    }
    assert updated_at == before


def test_missing_object_stores_null_and_missing_row_is_retried(engine, s3_settings) -> None:
    _owner, ws, project = seed_workspace(engine)
    with engine.begin() as conn:
        asset_id, key = upload(conn, s3_settings, ws, project, BODY)
        conn.execute(
            text("UPDATE file_assets SET storage_metadata = '{\"old\": 1}' WHERE id = :id"), {"id": asset_id}
        )
    s3_client(s3_settings).delete_object(Bucket=s3_settings.aws_s3_bucket_name, Key=key)
    run(s3_settings, "plane.asset_metadata.v1", {"asset_id": str(asset_id)})
    assert storage_metadata(engine, asset_id).storage_metadata is None  # Plane's None on a failed HEAD
    with pytest.raises(LookupError):
        run(s3_settings, "plane.asset_metadata.v1", {"asset_id": str(uuid.uuid4())})


def test_s3_unreachable_holds_instead_of_dead_lettering(engine, s3_settings) -> None:
    _owner, ws, project = seed_workspace(engine)
    with engine.begin() as conn:
        asset_id, _key = upload(conn, s3_settings, ws, project, BODY)
    down = replace(s3_settings, aws_s3_endpoint_url="http://127.0.0.1:9")
    started = time.monotonic()
    with pytest.raises(DependencyUnavailable):
        run(down, "plane.asset_metadata.v1", {"asset_id": str(asset_id)})
    assert time.monotonic() - started < 30
    with engine.connect() as conn:
        claimed = conn.scalar(text("SELECT count(*) FROM plane_workers.processed_events"))
    assert claimed == 0, "an outage must leave the event to be tried again"


def converting_live(status: int = 200, delay_s: float = 0.0) -> HttpServer:
    def convert(h) -> None:  # type: ignore[no-untyped-def]
        time.sleep(delay_s)
        html = json.loads(h.body)["description_html"]
        answer = {
            "description_json": {"type": "doc", "html": html},
            "description_binary": base64.b64encode(b"yjs").decode(),
        }
        send(h, status, json.dumps(answer).encode(), {"Content-Type": "application/json"})

    return HttpServer(routes={"/live/convert-document/": convert})


def seeded_copy(engine: Engine, settings: Settings, n_assets: int = 2):  # type: ignore[no-untyped-def]
    owner, ws, project = seed_workspace(engine)
    with engine.begin() as conn:
        assets = [
            upload(conn, settings, ws, project, BODY + bytes([i]), name=f"pic{i}.png")
            for i in range(n_assets)
        ]
        html = "<h1>T</h1>" + "".join(image(a) for a, _ in assets) + image("https://example.com/x.png")
        new_page = page(conn, ws, owner, html)
    data = {"entity_name": "PAGE", "entity_identifier": str(new_page), "project_id": str(project),
            "slug": "s", "user_id": str(owner)}  # fmt: skip
    return data, new_page, ws, assets, html


def page_row(engine: Engine, page_id: uuid.UUID):  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return conn.execute(
            text("SELECT description_html, description_json, description_binary FROM pages WHERE id = :id"),
            {"id": page_id},
        ).one()


def copies(engine: Engine, page_id: uuid.UUID) -> list:
    with engine.connect() as conn:
        return conn.execute(
            text(
                "SELECT id, asset, attributes, is_uploaded, created_by_id FROM file_assets"
                " WHERE page_id = :p ORDER BY asset"
            ),
            {"p": page_id},
        ).all()


def objects(settings: Settings, ws: uuid.UUID) -> dict[str, bytes]:
    client = s3_client(settings)
    listed = client.list_objects_v2(Bucket=settings.aws_s3_bucket_name, Prefix=f"{ws}/").get("Contents", [])
    return {
        o["Key"]: client.get_object(Bucket=settings.aws_s3_bucket_name, Key=o["Key"])["Body"].read()
        for o in listed
    }


def test_copy_makes_rows_objects_rewrites_src_and_stores_the_conversion(engine, s3_settings) -> None:
    live = converting_live()
    settings = replace(s3_settings, live_base_url=live.url("/"))
    data, new_page, ws, assets, html = seeded_copy(engine, settings)
    with running(live):
        run(settings, "plane.asset_copy.v1", data)
    rows = copies(engine, new_page)
    assert len(rows) == 2
    expected_html = html
    stored = objects(settings, ws)
    for (old_id, old_key), row in zip(assets, sorted(rows, key=lambda r: r.attributes["name"]), strict=True):
        assert row.id == copy.copy_id(new_page, old_id) and row.id.version == 4
        assert row.is_uploaded and row.asset.startswith(f"{ws}/{row.id.hex}-")
        assert stored[row.asset] == stored[old_key]
        expected_html = expected_html.replace(f'src="{old_id}"', f'src="{row.id}"')
    description_html, description_json, binary = page_row(engine, new_page)
    assert description_html == expected_html != html
    assert "https://example.com/x.png" in description_html
    assert description_json == {"type": "doc", "html": expected_html} and bytes(binary) == b"yjs"
    sent = json.loads(live.requests[0].body)
    assert sent == {"description_html": expected_html, "variant": "rich"}


def test_replay_and_crash_redelivery_copy_nothing_twice(engine, s3_settings) -> None:
    live = converting_live()
    settings = replace(s3_settings, live_base_url=live.url("/"))
    data, new_page, ws, _assets, _html = seeded_copy(engine, settings)
    event = new_event("plane.asset_copy.v1", data)
    with running(live):
        run_event(settings, event)
        first = (copies(engine, new_page), page_row(engine, new_page), objects(settings, ws))
        run_event(settings, event)  # a replay of the same event
        assert len(live.requests) == 1, "a processed event does nothing, not even the live call"
        # A delivery that died after its S3 copies and before its commit: the same keys again.
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM plane_workers.processed_events"))
            conn.execute(text("DELETE FROM file_assets WHERE page_id = :p"), {"p": new_page})
            conn.execute(
                text("UPDATE pages SET description_html = :h WHERE id = :p"), {"h": _html, "p": new_page}
            )
        run_event(settings, event)
    assert (copies(engine, new_page), page_row(engine, new_page), objects(settings, ws)) == first
    assert len(first[2]) == 4


@pytest.mark.parametrize("failure", ["500", "hang", "not json"])
def test_live_failure_or_timeout_leaves_json_and_binary_untouched(engine, s3_settings, failure) -> None:
    if failure == "not json":
        live = HttpServer(routes={"/live/convert-document/": lambda h: send(h, 200, b"ok")})
    else:
        live = converting_live(500) if failure == "500" else converting_live(delay_s=3)
    settings = replace(s3_settings, live_base_url=live.url("/"), live_timeout_s=1.0)
    data, new_page, _ws, _assets, html = seeded_copy(engine, settings, n_assets=1)
    started = time.monotonic()
    with running(live):
        run(settings, "plane.asset_copy.v1", data)
    assert time.monotonic() - started < 2.5
    description_html, description_json, binary = page_row(engine, new_page)
    assert description_json == {"type": "doc", "content": []} and binary is None
    assert description_html != html and len(copies(engine, new_page)) == 1, "the copy itself stands"


def test_missing_source_object_is_skipped_not_retried(engine, s3_settings) -> None:
    data, new_page, _ws, assets, _html = seeded_copy(engine, s3_settings)
    s3_client(s3_settings).delete_object(Bucket=s3_settings.aws_s3_bucket_name, Key=assets[0][1])
    run(s3_settings, "plane.asset_copy.v1", data)
    rows = copies(engine, new_page)
    assert [r.attributes["name"] for r in rows] == ["pic1.png"]
    description_html = page_row(engine, new_page).description_html
    assert f'src="{assets[0][0]}"' in description_html and f'src="{rows[0].id}"' in description_html


def test_copy_with_s3_down_holds(engine, s3_settings) -> None:
    data, new_page, _ws, _assets, html = seeded_copy(engine, s3_settings, n_assets=1)
    with pytest.raises(DependencyUnavailable):
        run(replace(s3_settings, aws_s3_endpoint_url="http://127.0.0.1:9"), "plane.asset_copy.v1", data)
    assert copies(engine, new_page) == [] and page_row(engine, new_page).description_html == html
