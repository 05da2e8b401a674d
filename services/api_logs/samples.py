"""Conformance samples for `api-logs`: one API request per event, each with its own raw API key.

Effects: every row of this case (found by its path tag) as the columns an operator reads, and
whether any raw key shows in any column of any row; a lost event is a missing row, a duplicate
an extra one, a leak a True.
"""

from __future__ import annotations

import hashlib
import uuid

from sqlalchemy import text

from shared.conformance import ConsumerSamples, SampleWorld
from shared.events import new_event


def cases(world: SampleWorld) -> ConsumerSamples:
    tag = uuid.uuid4().hex[:8]
    workspace_ids = [str(uuid.uuid4()) for _ in range(3)]  # the message key: Plane's workspace
    keys, events, expected = [], [], []
    for n in range(world.size):
        key = f"plane_api_{uuid.uuid4().hex}"
        keys.append(key)
        path = f"/api/v1/workspaces/{tag}/projects/{n}/"
        log_data = {
            "token_identifier": key,
            "path": path,
            "method": "POST",
            "query_params": f"per_page=10&api_key={key}",
            "headers": str({"Content-Type": "application/json", "X-Api-Key": key, "Cookie": "session=abc"}),
            "body": '{"name": "issue\x00 ' + str(n) + '"}',  # with a NUL, which text refuses
            "response_body": f'{{"echo": "{key}"}}',
            "response_code": 201,
            "ip_address": "203.0.113.7",
            "user_agent": "conformance",
        }
        event = new_event("plane.api_log.v1", {"log_data": log_data, "mongo_log": None})
        events.append((workspace_ids[n % 3], event))
        expected.append(
            (
                path,
                "sha256:" + hashlib.sha256(key.encode()).hexdigest(),
                "per_page=10&api_key=[redacted]",
                "{'Content-Type': 'application/json', 'X-Api-Key': '[redacted]', 'Cookie': '[redacted]'}",
                f'{{"name": "issue {n}"}}',
                '{"echo": "[redacted]"}',
                201,
                "203.0.113.7",
            )
        )

    def effects() -> dict[str, object]:
        with world.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT path, token_identifier, query_params, headers, body, response_body,"
                    " response_code, host(ip_address), row_to_json(l)::text AS whole FROM api_activity_logs l"
                    " WHERE path LIKE :p ORDER BY path, id"
                ),
                {"p": f"/api/v1/workspaces/{tag}/%"},
            ).all()
        leaked = any(key in row.whole for row in rows for key in keys)
        return {"rows": sorted(tuple(row)[:8] for row in rows), "raw_key_stored": leaked}

    return ConsumerSamples(
        events=events,
        effects=effects,
        expected={"rows": sorted(expected), "raw_key_stored": False},
    )
