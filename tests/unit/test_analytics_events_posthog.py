"""services/analytics_events/posthog.py: PostHog's /batch/ wire format and request sizes."""

from __future__ import annotations

import json

from services.analytics_events import posthog


def test_message_is_a_posthog_capture_with_the_workspace_group() -> None:
    msg = posthog.message(
        event_id="e1",
        event_time="2026-01-01T00:00:00Z",
        user_id="u1",
        event_name="workspace_created",
        slug="acme",
        properties={"role": "owner"},
    )
    assert msg == {
        "type": "capture",
        "event": "workspace_created",
        "distinct_id": "u1",
        "properties": {"role": "owner", "$lib": "plane-workers", "$groups": {"workspace": "acme"}},
        "timestamp": "2026-01-01T00:00:00Z",
        "uuid": "e1",
    }
    no_slug = posthog.message(
        event_id="e", event_time="t", user_id="u", event_name="x", slug=None, properties={}
    )
    assert "$groups" not in no_slug["properties"]


def test_body_carries_the_key_batch_and_sent_at() -> None:
    payload = json.loads(posthog.body("phc_k", [{"event": "x"}]))
    assert payload["api_key"] == "phc_k" and payload["batch"] == [{"event": "x"}] and payload["sent_at"]


def test_cloud_app_hosts_map_to_ingestion_hosts() -> None:
    assert (
        posthog.PostHogConfig("k", "https://app.posthog.com/").batch_url == "https://us.i.posthog.com/batch/"
    )
    assert posthog.PostHogConfig("k", "https://eu.posthog.com").batch_url == "https://eu.i.posthog.com/batch/"
    assert (
        posthog.PostHogConfig("k", " https://ph.example.com/base/ ").batch_url
        == "https://ph.example.com/base/batch/"
    )


def test_chunks_keep_order_and_stay_under_the_request_cap() -> None:
    big = [{"event": "x", "properties": {"blob": "a" * 200_000, "n": n}} for n in range(12)]
    runs = list(posthog.chunks(big))
    assert [m["properties"]["n"] for run in runs for m in run] == list(range(12))
    assert len(runs) > 1
    assert all(len(posthog.body("k", run)) <= posthog.MAX_REQUEST_BYTES for run in runs)
    assert list(posthog.chunks([])) == []
