"""The Celery bridge between a real Celery client on the machine's RabbitMQ and the Kafka-protocol
broker: every mapped task arrives as a valid event with its key, the rest goes to the legacy queue
or the DLQ, eta is honoured, and nothing is lost when the bridge is killed or its connection cut."""

from __future__ import annotations

import datetime as dt
import json
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy.orm import Session

from services.celery_bridge.tasks import ROUTES
from services.celery_bridge.translate import event_id
from shared.embedded.stack import env_for
from shared.events import parse_event
from shared.settings import Settings
from shared.testing import plane_factory as make
from tests.helpers import wait_until
from tests.integration import rabbitmq_node
from tests.integration.celery_bridge_world import (
    AMQP_URL,
    bridge_settings,
    bridge_thread,
    celery_client,
    delete_queues,
    needs_rabbitmq,
    queue_messages,
    read_topic,
    spawn_bridge,
)
from tests.integration.tcp_cut import CuttableProxy

pytestmark = needs_rabbitmq
API_KEY = "plane_api_0123456789abcdef0123456789abcdef"  # a Plane API token's shape
UNMAPPED = "plane.bgtasks.dummy_data_task.create_dummy_data"
API_LOG = {  # what Plane's APITokenLogMiddleware collects for a request made with an API key
    "token_identifier": API_KEY,
    "path": "/api/v1/workspaces/acme/projects/",
    "method": "GET",
    "query_params": f"api_key={API_KEY}&per_page=20",
    "headers": str({"X-Api-Key": API_KEY, "Accept": "application/json"}),
    "body": None,
    "response_code": 200,
    "response_body": "[]",
    "ip_address": "10.0.0.7",
    "user_agent": "curl/8.5",
}


def mongo_log(log_data: dict[str, Any]) -> dict[str, Any]:
    """Plane's second copy: log_data with its timestamps and actors, the key included."""
    now = dt.datetime.now(dt.UTC).isoformat()
    return {**log_data, "created_at": now, "updated_at": now, "created_by": None, "updated_by": None}


@pytest.fixture
def world(settings: Settings, engine):  # type: ignore[no-untyped-def]
    """This test's queues, a workspace with a webhook (for the lookups), the Celery client."""
    s = bridge_settings(settings)
    with Session(engine, expire_on_commit=False) as session, session.begin():
        owner = make.user(0)
        session.add(owner)
        session.flush()
        ws = make.workspace(owner, slug=f"ws-{uuid.uuid4().hex[:8]}")
        session.add(ws)
        session.flush()
        hook = make.webhook(ws, "https://hooks.example.com/plane")
        session.add(hook)
    yield s, celery_client(s), ws, hook
    delete_queues(s)


def _plane_calls(ws: Any, hook: Any) -> dict[str, tuple[list[Any], dict[str, Any]]]:
    """(args, kwargs) per Plane task, shaped as Plane's call sites pass them: UUID objects,
    positional calls where Plane makes them (mails, project_add_user_email), keywords elsewhere."""
    issue, project, actor, page = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    site = "https://plane.example.com"
    calls: dict[str, tuple[list[Any], dict[str, Any]]] = {
        "issue_activity": (
            [],
            {
                "type": "issue.activity.updated",
                "requested_data": json.dumps({"priority": "high"}),
                "current_instance": json.dumps({"priority": "low"}),
                "issue_id": str(issue),
                "project_id": str(project),
                "actor_id": actor,
                "epoch": int(time.time()),
                "notification": True,
                "origin": site,
            },
        ),
        "notifications": (
            [],
            {
                "type": "issue.activity.updated",
                "issue_id": str(issue),
                "project_id": str(project),
                "actor_id": str(actor),
                "subscriber": False,
                "issue_activities_created": "[]",
                "requested_data": None,
                "current_instance": None,
            },
        ),
        "model_activity": (
            [],
            {
                "model_name": "issue",
                "model_id": issue,
                "requested_data": {"name": "new", "updated_at": dt.datetime.now(dt.UTC)},
                "current_instance": json.dumps({"name": "old"}),
                "actor_id": actor,
                "slug": ws.slug,
                "origin": site,
            },
        ),
        "webhook_activity": (
            [],
            {
                "event": "issue",
                "verb": "updated",
                "field": "name",
                "old_value": "old",
                "new_value": "new",
                "actor_id": actor,
                "slug": ws.slug,
                "current_site": site,
                "event_id": issue,
                "old_identifier": None,
                "new_identifier": None,
            },
        ),
        "webhook_send_task": (
            [],
            {
                "webhook_id": hook.id,
                "slug": ws.slug,
                "event": "issue",
                "event_data": {"id": str(issue), "name": "new"},
                "action": "PATCH",
                "current_site": site,
                "activity": {"field": "name", "new_value": "new", "old_value": "old"},
            },
        ),
        "issue_description_version_task": (
            [],
            {
                "updated_issue": json.dumps({"description_html": "<p>old</p>"}),
                "issue_id": str(issue),
                "user_id": str(actor),
                "is_creating": False,
            },
        ),
        # The mails: positional, as Plane's views call them.
        "forgot_password": (["Ada", "ada@example.com", "dWlk", "tok-1", site], {}),
        "magic_link": (["ada@example.com", "magic_ada@example.com", "123456"], {}),
        "send_email_update_magic_code": (["ada@example.com", "654321"], {}),
        "send_email_update_confirmation": (["ada@example.com"], {}),
        "user_activation_email": ([site, str(actor)], {}),
        "user_deactivation_email": ([site, actor], {}),
        "workspace_invitation": (["bob@example.com", ws.id, "tok-2", site, "ada@example.com"], {}),
        "project_invitation": (["bob@example.com", project, "tok-3", site, "ada@example.com"], {}),
        "project_add_user_email": ([site, uuid.uuid4(), actor], {}),
        # Positional where Plane's views pass them so (the link's id and url), keywords elsewhere.
        "crawl_work_item_link_title": ([uuid.uuid4(), "https://example.com/spec"], {}),
        "get_asset_object_metadata": ([], {"asset_id": str(uuid.uuid4())}),
        "copy_s3_objects_of_description_and_assets": (
            [],
            {
                "entity_name": "PAGE",
                "entity_identifier": uuid.uuid4(),
                "project_id": project,
                "slug": ws.slug,
                "user_id": actor,
            },
        ),
        "export_analytics_to_csv_email": (
            [
                [{"state": "Todo", "count": 3}],
                ["State", "Count"],
                ["state", "count"],
                "ada@example.com",
                ws.slug,
            ],
            {},
        ),
        "issue_export_task": (
            [],
            {
                "provider": "csv",
                "workspace_id": ws.id,
                "project_ids": [project],
                "token_id": uuid.uuid4().hex,
                "multiple": False,
                "slug": ws.slug,
            },
        ),
        "analytic_export_task": (
            [],
            {
                "email": "ada@example.com",
                "data": {"x_axis": "priority", "y_axis": "issue_count"},
                "slug": ws.slug,
            },
        ),
        "page_transaction": (
            [],
            {
                "new_description_html": '<p><image-component id="i1" src="a.png"></image-component></p>',
                "old_description_html": "<p></p>",
                "page_id": str(page),
            },
        ),
        "track_page_version": (
            [],
            {
                "page_id": page,
                "existing_instance": json.dumps({"description_html": "<p>v1</p>"}),
                "user_id": actor,
            },
        ),
        # Positional, as Plane's soft-delete signal handler queues it.
        "soft_delete_related_objects": (["db", "Issue", issue], {}),
        "process_logs": ([], {"log_data": API_LOG, "mongo_log": mongo_log(API_LOG)}),
        "recent_visited_task": (
            [],
            {
                "entity_name": "issue",
                "entity_identifier": str(issue),
                "user_id": actor,
                "project_id": str(project),
                "slug": ws.slug,
            },
        ),
        "track_event": (
            [],
            {"user_id": actor, "event_name": "workspace_deleted", "slug": ws.slug, "event_properties": {}},
        ),
        "workspace_seed": ([ws.id], {}),  # positional, a UUID, as WorkSpaceViewSet.create queues it
        "send_webhook_deactivation_email": (
            [],
            {"webhook_id": hook.id, "receiver_id": actor, "reason": "HTTP 500", "current_site": site},
        ),
    }
    return calls


def test_every_mapped_task_arrives_as_a_valid_event_with_its_key(world):  # type: ignore[no-untyped-def]
    s, app, ws, hook = world
    calls = _plane_calls(ws, hook)
    assert {r.plane_task.rsplit(".", 1)[-1] for r in ROUTES} == set(calls), "a route without a test call"
    sent: dict[str, tuple[Any, dict[str, Any]]] = {}
    for route in ROUTES:
        args, kwargs = calls[route.plane_task.rsplit(".", 1)[-1]]
        result = app.send_task(route.plane_task, args=args, kwargs=kwargs)
        sent[result.id] = (route, {"args": args, "kwargs": kwargs})
    with bridge_thread(s):
        by_topic: dict[str, int] = {}
        for route, _ in sent.values():
            by_topic[route.topic] = by_topic.get(route.topic, 0) + 1
        records = {topic: read_topic(s, topic, count) for topic, count in by_topic.items()}
    expected_ids = {event_id(task_id): task_id for task_id in sent}
    seen = set()
    for topic, found in records.items():
        for record in found:
            event = parse_event(record.value, max_bytes=s.event_max_bytes)
            task_id = expected_ids[event.id]  # the id is derived from the Celery task id
            route, _call = sent[task_id]
            assert route.topic == topic and event.type == route.event_type
            if route.needs == "workspace_key":  # looked up by slug, not carried by the event
                assert record.key == str(ws.id) and "workspace_id" not in event.data
            else:
                assert record.key == route.key(event.data) and record.key
            assert record.headers["celery-task-id"] == task_id.encode()
            seen.add(task_id)
            if route.plane_task.endswith(".webhook_send_task"):
                assert event.data["workspace_id"] == str(ws.id) and record.key == str(hook.id)
                assert event.data["action"] == "update"
                assert event.data["payload"]["data"]["name"] == "new"
            if route.plane_task.endswith(".webhook_activity"):
                assert record.key == str(ws.id)  # looked up by slug, as model-activity keys it
            if route.plane_task.endswith(".issue_activity"):
                assert event.data["subscriber"] is True  # Plane's default, bound
                assert event.data["actor_id"] == str(_call["kwargs"]["actor_id"])
            if route.plane_task.endswith(".workspace_invitation"):
                assert event.data["workspace_id"] == str(ws.id)  # a UUID object, positional
            if route.plane_task.endswith(".process_logs"):
                # No topic holds the raw API key: hashed, and scrubbed from the query and headers.
                assert API_KEY not in record.value.decode() and record.key == "acme"
                assert event.data["log_data"]["token_identifier"].startswith("sha256:")
            if route.plane_task.endswith(".soft_delete_related_objects"):
                assert (event.data["app_label"], event.data["model_name"]) == ("db", "Issue")
                assert event.data["using"] is None  # Plane's default, bound
    assert seen == set(sent)


def test_unknown_and_passthrough_tasks_go_unchanged_to_the_legacy_queue(settings: Settings):
    s = bridge_settings(
        settings, celery_bridge_passthrough=("plane.bgtasks.magic_link_code_task.magic_link",)
    )
    app = celery_client(s)
    try:
        unknown = app.send_task(  # Plane's demo-data task: nothing here replaces it
            UNMAPPED,
            kwargs={"slug": "w", "email": "a@example.com", "members": [], "workspace_id": uuid.uuid4()},
            countdown=3600,
        )
        passed = app.send_task(
            "plane.bgtasks.magic_link_code_task.magic_link", args=["a@example.com", "k", "123"]
        )
        with bridge_thread(s):
            got = queue_messages(s.celery_bridge_legacy_queue, 2)
        by_id = {m.headers["id"]: m for m in got}
        assert set(by_id) == {unknown.id, passed.id}
        legacy = by_id[unknown.id]
        assert legacy.headers["task"] == UNMAPPED
        assert legacy.headers["eta"]  # kept for the old worker to honour
        assert legacy.content_type == "application/json"
        _args, kwargs, _embed = json.loads(legacy.body)
        assert kwargs["workspace_id"]["__type__"] == "uuid"  # the body untouched
    finally:
        delete_queues(s)


def test_malformed_bodies_and_invalid_arguments_are_dead_lettered_with_their_headers(world):  # type: ignore[no-untyped-def]
    s, app, _ws, _hook = world
    from kombu import Connection, Exchange, Queue

    task_name = "plane.bgtasks.issue_description_version_task.issue_description_version_task"
    # Missing a required argument (issue_id), as Celery's worker would refuse to call it.
    missing = app.send_task(task_name, kwargs={"updated_issue": None, "user_id": str(uuid.uuid4())})
    # Valid binding, but not a valid event: issue_id is not a UUID.
    invalid = app.send_task(task_name, args=[None, "not-a-uuid", str(uuid.uuid4())])
    good = app.send_task(task_name, args=[None, str(uuid.uuid4()), str(uuid.uuid4())])
    bad_json_id = str(uuid.uuid4())
    with Connection(s.amqp_url) as conn:
        producer = conn.Producer()
        producer.publish(
            b"{not json",
            exchange=Exchange(s.celery_bridge_queue, "direct"),
            routing_key=s.celery_bridge_queue,
            headers={"task": task_name, "id": bad_json_id, "lang": "py"},
            content_type="application/json",
            content_encoding="utf-8",
            declare=[Queue(s.celery_bridge_queue, Exchange(s.celery_bridge_queue, "direct"), durable=True)],
        )
    with bridge_thread(s):
        letters = read_topic(s, "celery-bridge.dlq", 3)
        (bridged,) = read_topic(s, "issue-description-versions", 1)
    by_id = {r.key: r for r in letters}
    assert set(by_id) == {bad_json_id, missing.id, invalid.id}
    assert by_id[bad_json_id].value == b"{not json"
    assert by_id[bad_json_id].headers["error-class"] == b"malformed"
    assert by_id[bad_json_id].headers["task"] == task_name.encode()
    assert by_id[missing.id].headers["error-class"] == b"invalid_arguments"
    assert b"issue_id" in by_id[missing.id].headers["error-message"]
    assert by_id[invalid.id].headers["error-class"] == b"invalid_arguments"
    assert by_id[invalid.id].headers["original-queue"] == s.celery_bridge_queue.encode()
    assert parse_event(bridged.value, max_bytes=s.event_max_bytes).id == event_id(good.id)
    # What an operator reads: `plane-workers celery dead-letters`. Retried: right after a write
    # the embedded broker may report a partition's end offset behind what it holds.
    expected = {bad_json_id: "malformed", missing.id: "invalid_arguments", invalid.id: "invalid_arguments"}

    def shown() -> dict[str, str]:
        result = subprocess.run(
            [sys.executable, "-m", "shared.cli.main", "celery", "dead-letters"],
            env=env_for(s),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        entries = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
        return {e["key"]: e["headers"]["error-class"] for e in entries}

    wait_until(lambda: shown() == expected, timeout_s=30, interval_s=1)


def test_a_dead_letter_replayed_once_its_cause_is_fixed_is_bridged_once(world, engine):  # type: ignore[no-untyped-def]
    """webhook_send_task for a webhook Plane has not committed yet is dead-lettered (no live
    webhook); once the webhook exists, `celery replay-dead-letters` puts the message back on its
    queue, with its Celery headers as they were, and it is bridged; a second replay sends none."""
    s, app, ws, _hook = world
    later = make.webhook(ws, "https://hooks.example.com/later")
    call = {"webhook_id": later.id, "slug": ws.slug, "event": "issue", "event_data": {"id": "1"},
            "action": "POST", "current_site": "https://plane.example.com", "activity": None}  # fmt: skip
    sent = app.send_task("plane.bgtasks.webhook_task.webhook_send_task", kwargs=call)

    def replay() -> str:
        result = subprocess.run(
            [sys.executable, "-m", "shared.cli.main", "celery", "replay-dead-letters"],
            env=env_for(s), capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        return result.stdout

    with bridge_thread(s):
        (letter,) = read_topic(s, "celery-bridge.dlq", 1)
        assert letter.key == sent.id and b"no live webhook" in letter.headers["error-message"]
        with Session(engine, expire_on_commit=False) as session, session.begin():
            session.add(later)
        assert replay().startswith("replayed 1 dead letter(s)")
        (record,) = read_topic(s, "webhook-deliveries", 1)
    event = parse_event(record.value, max_bytes=s.event_max_bytes)
    assert event.id == event_id(sent.id) and record.key == str(later.id)
    assert record.headers["celery-task-id"] == sent.id.encode()
    assert replay().startswith("replayed 0 dead letter(s)")


def test_an_oversize_event_and_a_bad_api_log_are_dead_lettered_and_keep_no_api_key(world):  # type: ignore[no-untyped-def]
    """A page whose HTML makes an event over EVENT_MAX_BYTES is dead-lettered, not produced (the
    broker could refuse it and stop the bridge for every task); a process_logs call Plane's task
    could not take goes to the DLQ with its API key replaced in the raw body too."""
    s, app, _ws, _hook = world
    s = replace(s, event_max_bytes=64 * 1024)
    page = {"new_description_html": "<p>" + "x" * 70_000 + "</p>", "old_description_html": None,
            "page_id": str(uuid.uuid4())}  # fmt: skip
    big = app.send_task("plane.bgtasks.page_transaction_task.page_transaction", kwargs=page)
    bad = app.send_task(
        "plane.bgtasks.logger_task.process_logs", kwargs={"log_data": API_LOG}
    )  # no mongo_log
    good = app.send_task(
        "plane.bgtasks.logger_task.process_logs",
        kwargs={"log_data": API_LOG, "mongo_log": mongo_log(API_LOG)},
    )
    with bridge_thread(s):
        letters = {r.key: r for r in read_topic(s, "celery-bridge.dlq", 2)}
        (logged,) = read_topic(s, "api-logs", 1)
    assert letters[big.id].headers["error-class"] == b"oversize"
    assert letters[bad.id].headers["error-class"] == b"invalid_arguments"
    for record in (*letters.values(), logged):
        assert API_KEY.encode() not in record.value and all(
            API_KEY.encode() not in v for v in record.headers.values()
        )
    assert b"/api/v1/workspaces/acme/projects/" in letters[bad.id].value  # the rest kept for a look
    assert parse_event(logged.value, max_bytes=s.event_max_bytes).id == event_id(good.id)


def test_eta_is_held_until_due_and_a_far_one_waits_in_the_delay_queue(world):  # type: ignore[no-untyped-def]
    s, app, _ws, _hook = world
    s = replace(s, celery_bridge_hold_max_s=2)
    task = "plane.bgtasks.issue_description_version_task.issue_description_version_task"
    args = [None, str(uuid.uuid4()), str(uuid.uuid4())]
    start = time.time()
    near = app.send_task(task, args=args, countdown=1.5)
    far = app.send_task(task, args=args, eta=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=4))
    try:
        with bridge_thread(s):
            records = read_topic(s, "issue-description-versions", 2, timeout_s=30)
        arrived = {parse_event(r.value, max_bytes=s.event_max_bytes).id: r for r in records}
        assert set(arrived) == {event_id(near.id), event_id(far.id)}
        # Neither before its eta (the far one took a hop through the 2 s delay queue).
        assert time.time() - start >= 4
    finally:
        delete_queues(s)


def test_kill_9_mid_stream_loses_nothing(world):  # type: ignore[no-untyped-def]
    s, app, _ws, _hook = world
    task = "plane.bgtasks.issue_description_version_task.issue_description_version_task"
    total = 2000
    ids = [app.send_task(task, args=[None, str(uuid.uuid4()), str(uuid.uuid4())]).id for _ in range(total)]
    first = spawn_bridge(s)
    try:
        read_topic(s, "issue-description-versions", 200, timeout_s=60)  # it is mid-stream
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
    second = spawn_bridge(s)
    try:
        records = read_topic(s, "issue-description-versions", total, timeout_s=120)
        deadline = time.monotonic() + 60
        wanted = {event_id(i) for i in ids}
        while True:
            got = {parse_event(r.value, max_bytes=s.event_max_bytes).id for r in records}
            if wanted <= got or time.monotonic() > deadline:
                break
            records = read_topic(s, "issue-description-versions", len(records) + 1, timeout_s=5)
        assert wanted <= got, f"{len(wanted - got)} of {total} tasks never reached Kafka"
        # Duplicates are possible (written, not yet acked at the kill) and carry the same id.
        assert len(records) >= total
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=30)


def test_the_bridge_reconnects_when_its_amqp_connection_is_cut(world):  # type: ignore[no-untyped-def]
    """A RabbitMQ restart as the bridge sees it (every connection dropped), through a proxy of
    this test's own: the machine's RabbitMQ is shared and never restarted."""
    s, app, _ws, _hook = world
    task = "plane.bgtasks.issue_description_version_task.issue_description_version_task"
    with CuttableProxy("127.0.0.1", 5672) as proxy:
        s = replace(s, amqp_url=f"amqp://guest:guest@127.0.0.1:{proxy.port}//")
        before = app.send_task(task, args=[None, str(uuid.uuid4()), str(uuid.uuid4())])
        with bridge_thread(s):
            read_topic(s, "issue-description-versions", 1)
            proxy.cut()  # every open connection reset; new ones accepted again
            after = app.send_task(task, args=[None, str(uuid.uuid4()), str(uuid.uuid4())])
            records = read_topic(s, "issue-description-versions", 2, timeout_s=60)
        assert proxy.accepted >= 2, "the bridge never connected again"
    ids = {parse_event(r.value, max_bytes=s.event_max_bytes).id for r in records}
    assert {event_id(before.id), event_id(after.id)} <= ids


@pytest.mark.skipif(not rabbitmq_node.available(), reason="rabbitmq-server is not installed")
def test_the_bridge_reconnects_after_rabbitmq_itself_restarts(settings: Settings) -> None:
    """RabbitMQ stopped (its orderly shutdown) while the bridge is mid-stream, then started again
    on the same name, port and data: a node of this test's own (tests/integration/rabbitmq_node.py).
    The bridge process stays up and reconnects by itself, what it held unacked at the stop comes
    again from the durable queue, and every task, sent before or after, reaches Kafka."""
    node = rabbitmq_node.RabbitMQNode()
    node.start()
    try:
        s = bridge_settings(settings, amqp_url=node.url)
        apps = [celery_client(s, node.url)]
        task = "plane.bgtasks.issue_description_version_task.issue_description_version_task"

        def send() -> str:
            return str(apps[-1].send_task(task, args=[None, str(uuid.uuid4()), str(uuid.uuid4())]).id)

        sent = [send()]
        bridge = spawn_bridge(s)
        try:
            read_topic(s, "issue-description-versions", 1)
            sent += [send() for _ in range(300)]
            node.stop()
            time.sleep(2)
            node.start()
            apps.append(celery_client(s, node.url))  # as Plane's API would, on a new connection
            sent.append(send())
            wanted = {event_id(i) for i in sent}
            records = read_topic(s, "issue-description-versions", len(sent), timeout_s=120)
            deadline = time.monotonic() + 30
            while True:  # duplicates (written, unacked at the stop) may have made up the count
                got = {parse_event(r.value, max_bytes=s.event_max_bytes).id for r in records}
                if wanted <= got or time.monotonic() > deadline:
                    break
                records = read_topic(s, "issue-description-versions", len(records) + 1, timeout_s=5)
            assert wanted <= got, f"{len(wanted - got)} of {len(sent)} tasks never reached Kafka"
            assert bridge.poll() is None, "the bridge exited instead of reconnecting"
        finally:
            bridge.send_signal(signal.SIGTERM)
            bridge.wait(timeout=30)
        assert bridge.returncode == 0
    finally:
        node.close()


def test_nothing_is_acked_while_kafka_is_unreachable(world):  # type: ignore[no-untyped-def]
    """Kafka down: the bridge takes the messages but acks none; killed then, a bridge with Kafka
    back gets every one of them again from RabbitMQ."""
    s, app, _ws, _hook = world
    task = "plane.bgtasks.issue_description_version_task.issue_description_version_task"
    ids = [app.send_task(task, args=[None, str(uuid.uuid4()), str(uuid.uuid4())]).id for _ in range(50)]
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        dead_port = unused.getsockname()[1]
    blind = spawn_bridge(replace(s, kafka_bootstrap_servers=f"127.0.0.1:{dead_port}"))
    try:
        # It has them (prefetched, nothing left ready in the queue) and cannot write them.
        wait_until(lambda: _ready(s.celery_bridge_queue) == 0, timeout_s=30, interval_s=0.2)
        time.sleep(2)
    finally:
        blind.send_signal(signal.SIGKILL)
        blind.wait(timeout=10)
    assert _ready(s.celery_bridge_queue) == 50  # none was acked: all back in the queue
    with bridge_thread(s):
        records = read_topic(s, "issue-description-versions", 50)
    assert {parse_event(r.value, max_bytes=s.event_max_bytes).id for r in records} == {
        event_id(i) for i in ids
    }


def _ready(queue: str) -> int:
    from kombu import Connection

    with Connection(AMQP_URL) as conn:
        return conn.default_channel.queue_declare(queue=queue, passive=True).message_count


def test_an_idle_bridge_keeps_its_connection_with_heartbeats(world, monkeypatch):  # type: ignore[no-untyped-def]
    from services.celery_bridge import bridge as bridge_module
    from services.celery_bridge import metrics

    s, app, _ws, _hook = world
    monkeypatch.setattr(bridge_module, "HEARTBEAT_S", 2.0)  # RabbitMQ drops a client after two missed
    monkeypatch.setattr(bridge_module, "DEPTH_EVERY_S", 1000.0)  # no other traffic while idle
    reconnects = metrics.RECONNECTS.labels(s.celery_bridge_queue)
    task = "plane.bgtasks.issue_description_version_task.issue_description_version_task"
    with bridge_thread(s):
        read_topic(s, "issue-description-versions", 0)
        time.sleep(8)  # idle, four heartbeat intervals
        late = app.send_task(task, args=[None, str(uuid.uuid4()), str(uuid.uuid4())])
        (record,) = read_topic(s, "issue-description-versions", 1, timeout_s=10)
    assert reconnects._value.get() == 0
    assert parse_event(record.value, max_bytes=s.event_max_bytes).id == event_id(late.id)
