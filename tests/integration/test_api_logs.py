"""api-logs against Plane's api_activity_logs on real PostgreSQL.

The batch handler is called in a transaction as the batch runtime calls it (the broker path,
replays and crashes are the conformance suite's); every read is of what PostgreSQL stored.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, text

from services.api_logs import handler
from services.api_logs.scrub import REDACTED
from shared.db.engine import session_factory
from shared.events import Event, new_event
from shared.kafka.handler import HandlerContext
from shared.settings import Settings

KEY = "plane_api_" + "0123456789abcdef" * 2


def api_log(**log_data: object) -> Event:
    data = {
        "token_identifier": KEY,
        "path": "/api/v1/workspaces/demo/projects/",
        "method": "GET",
        "query_params": "",
        "headers": str({"Content-Type": "application/json", "X-Api-Key": KEY}),
        "body": None,
        "response_body": '{"results": []}',
        "response_code": 200,
        "ip_address": "198.51.100.4",
        "user_agent": "curl/8",
        **log_data,
    }
    return new_event("plane.api_log.v1", {"log_data": data, "mongo_log": None})


def run_batch(settings: Settings, events: list[Event]) -> None:
    with session_factory(settings.database_url).begin() as session:
        handler.handle_batch(events, HandlerContext("api-logs", settings, None, session))  # type: ignore[arg-type]


def rows(engine: Engine) -> list[dict]:
    with engine.connect() as conn:
        return [
            dict(r._mapping)
            for r in conn.execute(
                text("SELECT *, row_to_json(l)::text AS whole FROM api_activity_logs l ORDER BY path")
            )
        ]


def test_a_batch_is_stored_as_plane_writes_it_without_the_key_anywhere(engine, settings) -> None:
    events = [
        api_log(path=f"/api/v1/workspaces/demo/issues/{n}/", body=f'{{"key": "{KEY}", "n": {n}}}')
        for n in range(5)
    ]
    events.append(
        api_log(
            path="/api/v1/workspaces/demo/x/",
            query_params=f"api_key={KEY}&token=abc&cursor=10",
            headers=str(
                {
                    "Authorization": f"Bearer {KEY}",
                    "Cookie": "session-id=s3cr3t",
                    "Proxy-Authorization": "Basic Zm9vOmJhcg==",
                    "X-Csrftoken": "csrf-value",
                    "Accept": "*/*",
                }
            ),
        )
    )
    run_batch(settings, events)
    stored = rows(engine)
    assert len(stored) == 6
    digest = "sha256:" + hashlib.sha256(KEY.encode()).hexdigest()
    for row in stored:
        assert KEY not in row["whole"], "the raw API key is in a stored column"
        assert row["token_identifier"] == digest
        assert row["created_by_id"] is None and row["deleted_at"] is None
        assert row["response_code"] == 200 and str(row["ip_address"]) == "198.51.100.4"
    assert stored[0]["body"] == f'{{"key": "{REDACTED}", "n": 0}}'
    assert stored[0]["headers"] == str({"Content-Type": "application/json", "X-Api-Key": REDACTED})
    last = stored[-1]
    assert last["query_params"] == f"api_key={REDACTED}&token={REDACTED}&cursor=10"
    for secret in ("s3cr3t", "Zm9vOmJhcg==", "csrf-value"):
        assert secret not in last["whole"]
    assert "'Accept': '*/*'" in last["headers"]


def test_key_echoed_url_encoded_or_in_header_lines_is_removed(engine, settings) -> None:
    key = "plane_api_a+b/c=d"  # changes under URL encoding
    run_batch(
        settings,
        [
            api_log(
                token_identifier=key,
                query_params="q=plane_api_a%2Bb%2Fc%3Dd",
                headers=f"Content-Type: text/plain\nX-Api-Key: {key}\nX-Session-Token: t0k",
                response_body=f"your key plane_api_a%2Bb%2Fc%3Dd or {key}",
            )
        ],
    )
    (row,) = rows(engine)
    assert key not in row["whole"] and "a%2Bb%2Fc%3Dd" not in row["whole"] and "t0k" not in row["whole"]
    assert row["headers"] == f"Content-Type: text/plain\nX-Api-Key: {REDACTED}\nX-Session-Token: {REDACTED}"


def test_headers_that_are_no_mapping_are_not_stored(engine, settings) -> None:
    run_batch(settings, [api_log(headers="{'X-Api-Key': 'half a repr")])
    (row,) = rows(engine)
    assert row["headers"] == "[headers not stored: not a header mapping]"


def test_bodies_are_capped_at_the_setting_on_a_character_boundary(engine, settings) -> None:
    capped = replace(settings, api_log_body_max_bytes=1000)
    body = "é" * 2000  # 4,000 bytes, two per character
    run_batch(capped, [api_log(body=body, response_body="x" * 999)])
    (row,) = rows(engine)
    kept, _, marker = row["body"].partition("\n")
    assert kept == "é" * 500
    assert marker == "[truncated by plane-workers: 4000 bytes in all]"
    assert row["response_body"] == "x" * 999, "under the cap: unchanged"


def test_nul_bytes_and_lone_surrogates_are_stored_safely(engine, settings) -> None:
    run_batch(
        settings,
        [
            api_log(
                path="/api/v1/\x00nul/",
                body="a\x00b\ud800c",
                response_body="\x00",
                user_agent="agent\x00",
                headers={"X-Thing": "v\x00al"},  # as an object: no repr escapes the NUL
            )
        ],
    )
    (row,) = rows(engine)
    assert row["path"] == "/api/v1/nul/"
    assert row["body"] == "ab\ufffdc"
    assert row["response_body"] == "" and row["user_agent"] == "agent"
    assert row["headers"] == str({"X-Thing": "val"})


def test_overlong_columns_cut_and_a_bad_address_stored_as_null(engine, settings) -> None:
    run_batch(
        settings,
        [api_log(path="/" + "p" * 400, method="PROPFINDXYZ", user_agent="u" * 600, ip_address="unknown")],
    )
    (row,) = rows(engine)
    assert len(row["path"]) == 255 and row["method"] == "PROPFINDXY" and len(row["user_agent"]) == 512
    assert row["ip_address"] is None


def test_created_at_is_the_request_time_and_a_replay_adds_no_row(engine, settings) -> None:
    at = "2026-03-04T05:06:07.123456+00:00"
    event = new_event(
        "plane.api_log.v1",
        {
            "log_data": api_log().data["log_data"],
            "mongo_log": {"created_at": at, "created_by": str(uuid.uuid4())},
        },
    )
    run_batch(settings, [event])
    run_batch(settings, [event])  # a claim pruned, the event delivered again
    (row,) = rows(engine)
    assert row["created_at"] == datetime(2026, 3, 4, 5, 6, 7, 123456, tzinfo=UTC) == row["updated_at"]
    assert row["id"].version == 4


@pytest.mark.parametrize("headers", [None, {"X-Api-Key": KEY, "Accept": "json"}])
def test_headers_absent_or_sent_as_an_object(engine, settings, headers) -> None:
    run_batch(settings, [api_log(headers=headers)])
    (row,) = rows(engine)
    assert row["headers"] == (None if headers is None else str({"X-Api-Key": REDACTED, "Accept": "json"}))
