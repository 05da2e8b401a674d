"""Webhooks end to end: webhook-events fans out, webhook-deliveries POSTs to real loopback
receivers, on the embedded broker and Plane's schema. Delays run at WEBHOOK_TIME_SCALE."""

from __future__ import annotations

import gzip
import hashlib
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from services.webhooks import store
from services.webhooks.schedule import DEFAULT_SCHEDULE_S
from shared import registry
from shared.embedded.smtp import EmbeddedSMTP
from shared.embedded.stack import env_for
from shared.events import new_event
from shared.events.producer import EventProducer
from tests.helpers import consumer_thread, dead_letters, spawn_consumer, wait_until
from tests.integration.http_servers import HttpServer, RawServer, read_request_head, redirect, send
from tests.integration.webhook_world import SCALE, World, count, deliveries_for, produce, verify

EVENTS = registry.consumer("webhook-events")
DELIVERIES = registry.consumer("webhook-deliveries")
EMAILS = registry.consumer("emails")  # the deactivation mail goes through it


def activity(world: World, n: int = 1, **data: object) -> list:
    base = {
        "event": "issue",
        "verb": "updated",
        "field": "name",
        "old_value": "Old",
        "new_value": "Hooked",
        "actor_id": str(world.owner_id),
        "slug": world.slug,
        "current_site": "http://plane.test",
        "event_id": str(world.issue_id),
    }
    return [new_event("plane.webhook_activity.v1", base | data) for _ in range(n)]


def test_fan_out_and_delivery_carry_plane_payload_and_verifiable_signatures(hook_settings, world) -> None:
    receiver = HttpServer()
    hook_a, secret_a = world.add_webhook(receiver.url("/a"))
    hook_b, secret_b = world.add_webhook(receiver.url("/b"))
    not_issues, _ = world.add_webhook(receiver.url("/no-issues"), issue=False)
    produce(hook_settings, "webhook-events", activity(world), str(world.workspace_id))
    with consumer_thread(EVENTS, hook_settings), consumer_thread(DELIVERIES, hook_settings):
        wait_until(lambda: len(world.deliveries(hook_a)) + len(world.deliveries(hook_b)) == 2, 60)
    receiver.close()

    by_path = {r.path: r for r in receiver.requests}
    assert set(by_path) == {"/a", "/b"}, "the webhook without the issue flag got nothing"
    for path, secret, hook in (("/a", secret_a, hook_a), ("/b", secret_b, hook_b)):
        request = by_path[path]
        payload = verify(secret, request)
        assert list(payload) == ["event", "action", "webhook_id", "workspace_id", "data", "activity"]
        assert payload["webhook_id"] == str(hook) and payload["data"]["id"] == str(world.issue_id)
        assert payload["activity"]["actor"]["id"] == str(world.owner_id)
        assert request.headers["X-Plane-Delivery"] == request.headers["webhook-id"]
        assert request.headers["X-Plane-Event"] == "issue" and request.headers["User-Agent"] == "Autopilot"
        [log] = world.logs(hook)
        stored = json.loads(log["request_headers"])  # JSON, not Python repr
        assert "X-Plane-Signature" not in stored and "webhook-signature" not in stored
        assert secret not in log["request_headers"] + log["request_body"]
        assert json.loads(log["request_body"]) == payload and log["response_status"] == "200"
        assert log["retry_count"] == 0
        [delivery] = world.deliveries(hook)
        assert delivery["status"] == "succeeded" and delivery["envelope"] is None
    assert world.deliveries(not_issues) == []


def mails_to(smtp: EmbeddedSMTP, address: str) -> list:
    return [m for m in smtp.messages if address in m.recipients]


def test_failing_endpoint_follows_svix_schedule_then_is_disabled_once_with_one_mail(
    hook_settings, world, smtp
) -> None:
    """R3 + R5: 8 attempts at 0, 5 s, 5 m, 30 m, 2 h, 5 h, 10 h, 10 h (scaled, +-20%), one
    webhook-id throughout; then exhausted, kept for replay, the webhook off and its owner told once."""
    receiver = HttpServer(routes={"/down": lambda r: send(r, 500, b"boom")})
    arrivals: list[float] = []
    receiver.routes["/down"] = lambda r: (arrivals.append(time.monotonic()), send(r, 500, b"boom"))
    hook, secret = world.add_webhook(receiver.url("/down"))
    produce(hook_settings, "webhook-deliveries", deliveries_for(world, hook, 1), str(hook))
    with consumer_thread(DELIVERIES, hook_settings), consumer_thread(EMAILS, hook_settings):
        try:
            [row] = wait_until(lambda: world.deliveries(hook), 240)
        except AssertionError as exc:
            since_first = [round(a - arrivals[0], 3) for a in arrivals]
            raise AssertionError(f"delivery never ended; attempts arrived at {since_first} s") from exc
        wait_until(lambda: mails_to(smtp, world.owner_email), 30)
    receiver.close()

    assert len(receiver.requests) == 8 and row["status"] == "exhausted" and row["attempts"] == 8
    assert len({r.headers["webhook-id"] for r in receiver.requests}) == 1
    for request in receiver.requests:
        verify(secret, request)
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    for gap, base in zip(gaps, DEFAULT_SCHEDULE_S, strict=True):
        assert gap >= 0.8 * base * SCALE - 0.01, (gaps, base)
        assert gap <= 1.2 * base * SCALE + 2.0, (gaps, base)  # + consumer poll and pause latency
    assert world.webhook(hook)["is_active"] is False
    [mail] = mails_to(smtp, world.owner_email)
    assert mail.message["Subject"] == "Webhook Deactivated"
    assert [log["retry_count"] for log in world.logs(hook)] == list(range(8))
    assert row["envelope"] is not None, "kept for replay"


def test_redirect_is_a_failure_never_followed_and_410_disables_at_once(
    hook_settings, world, smtp, tmp_path
) -> None:
    """R4: a 3xx is logged as a failure and its target receives nothing; 410 switches the webhook
    off after one attempt. Its creator's mail is rendered from Plane's template folder when one is
    configured (a stand-in template here: Plane's own is not ours to ship)."""
    template = tmp_path / "emails" / "notifications" / "webhook-deactivate.html"
    template.parent.mkdir(parents=True)
    template.write_text("<h1>{{ message }}</h1><a href='{{ webhook_url }}'>View webhook</a>")
    hook_settings = replace(hook_settings, plane_templates_dir=str(tmp_path))
    receiver = HttpServer()
    receiver.routes["/moved"] = redirect(receiver.url("/target"), 308)
    receiver.routes["/gone"] = lambda r: send(r, 410, b"gone")
    moved, _ = world.add_webhook(receiver.url("/moved"))
    gone, _ = world.add_webhook(receiver.url("/gone"))
    produce(hook_settings, "webhook-deliveries", deliveries_for(world, moved, 1), str(moved))
    produce(hook_settings, "webhook-deliveries", deliveries_for(world, gone, 1), str(gone))
    with (
        consumer_thread(DELIVERIES, replace(hook_settings, webhook_time_scale=1.0)),
        consumer_thread(EMAILS, hook_settings),
    ):
        wait_until(lambda: world.logs(moved) and world.deliveries(gone), 60)
        assert any(t.name.startswith("webhook-http") for t in threading.enumerate())
        wait_until(lambda: mails_to(smtp, world.owner_email), 30)
    receiver.close()
    # The process's shared HTTP pool ends with the consumer: no delivery thread outlives it.
    wait_until(lambda: not any(t.name.startswith("webhook-http") for t in threading.enumerate()), 10)

    assert [r.path for r in receiver.requests].count("/target") == 0
    assert world.logs(moved)[0]["response_status"] == "308"
    assert world.deliveries(moved) == [], "a 3xx is retried, not finished"
    assert world.deliveries(gone)[0]["status"] == "gone" and len(world.logs(gone)) == 1
    assert world.webhook(gone)["is_active"] is False and world.webhook(moved)["is_active"] is True
    [mail] = mails_to(smtp, world.owner_email)
    [html_part] = [p for p in mail.message.walk() if p.get_content_type() == "text/html"]
    html = html_part.get_payload(decode=True)
    url = f"http://localhost/{world.slug}/settings/webhooks/{gone}"
    assert html.decode().strip() == (
        f"<h1>Webhook {receiver.url('/gone')} has been deactivated due to failed requests.</h1>"
        f"<a href='{url}'>View webhook</a>"
    )


def test_receiver_delivery_control_headers_abort_retries_and_disable(hook_settings, world, smtp) -> None:
    """Svix's delivery control: `webhook-delivery: abort-message` on a failure ends the delivery
    without retries (kept for replay, the webhook stays on); `webhook-delivery: disable` switches
    the webhook off at once, even on a success, and its creator is told once."""

    def answer(status: int, control: str) -> Callable:
        return lambda r: send(r, status, b"x", headers={"webhook-delivery": control})

    receiver = HttpServer()
    receiver.routes["/abort"] = answer(500, "abort-message")
    receiver.routes["/disable"] = answer(200, "Disable")
    receiver.routes["/unknown"] = answer(200, "pause-forever")  # unknown instructions are ignored
    abort, _ = world.add_webhook(receiver.url("/abort"))
    disable, _ = world.add_webhook(receiver.url("/disable"))
    unknown, _ = world.add_webhook(receiver.url("/unknown"))
    for hook in (abort, disable, unknown):
        produce(hook_settings, "webhook-deliveries", deliveries_for(world, hook, 1), str(hook))
    with consumer_thread(DELIVERIES, hook_settings), consumer_thread(EMAILS, hook_settings):
        wait_until(lambda: all(world.deliveries(h) for h in (abort, disable, unknown)), 60)
        wait_until(lambda: mails_to(smtp, world.owner_email), 30)
        time.sleep(1)  # a retry at this time scale would be due by now
    receiver.close()

    assert [r.path for r in receiver.requests].count("/abort") == 1
    [aborted] = world.deliveries(abort)
    assert aborted["status"] == "aborted" and aborted["envelope"] is not None
    assert world.deliveries(disable)[0]["status"] == "succeeded"
    assert world.deliveries(unknown)[0]["status"] == "succeeded"
    active = {h: world.webhook(h)["is_active"] for h in (abort, disable, unknown)}
    assert active == {abort: True, disable: False, unknown: True}
    assert len(mails_to(smtp, world.owner_email)) == 1


def test_hanging_endpoint_does_not_hold_up_the_others(hook_settings, world) -> None:
    """One receiver never answers (within the 30 s deadline); 1,000 deliveries to ten others are
    sent and logged meanwhile."""
    release = threading.Event()
    receiver = HttpServer()
    receiver.routes["/hang"] = lambda r: (release.wait(60), send(r, 200, b"late"))
    hanging, _ = world.add_webhook(receiver.url("/hang"))
    healthy = [world.add_webhook(receiver.url(f"/ok/{i}"))[0] for i in range(10)]
    producer = EventProducer(hook_settings)
    producer.send_many("webhook-deliveries", [(str(hanging), e) for e in deliveries_for(world, hanging, 20)])
    for hook in healthy:
        producer.send_many("webhook-deliveries", [(str(hook), e) for e in deliveries_for(world, hook, 100)])
    producer.close()
    settings = replace(hook_settings, webhook_timeout_s=30.0)
    started = time.monotonic()
    with consumer_thread(DELIVERIES, settings):
        wait_until(lambda: count(world.engine, "plane_workers.webhook_deliveries") >= 1000, 60)
        elapsed = time.monotonic() - started
        assert world.logs(hanging) == [], "the hanging deliveries are still in flight"
        hung = [r for r in receiver.requests if r.path == "/hang"]
        release.set()
    receiver.close()
    assert elapsed < 30, f"the others waited for the hanging endpoint ({elapsed:.1f} s)"
    assert 1 <= len(hung) <= settings.webhook_endpoint_concurrency + 1  # its own share, no more


def test_a_failing_endpoint_gets_its_share_across_the_retry_tiers_together(hook_settings, world) -> None:
    """The per-endpoint limit holds for the main topic and every retry tier of a process at once:
    with retries flowing while new deliveries go out, a slow failing receiver never has more than
    WEBHOOK_ENDPOINT_CONCURRENCY requests open (each tier had a limit of its own before)."""
    lock, open_now, peak = threading.Lock(), [0], [0]
    first_seen: dict[str, float] = {}
    retried_at: list[float] = []

    def slow_failure(request) -> None:  # type: ignore[no-untyped-def]
        with lock:
            open_now[0] += 1
            peak[0] = max(peak[0], open_now[0])
            webhook_id = request.headers["webhook-id"]
            if webhook_id in first_seen:
                retried_at.append(time.monotonic())
            else:
                first_seen[webhook_id] = time.monotonic()
        time.sleep(0.1)
        with lock:
            open_now[0] -= 1
        send(request, 500, b"down")

    receiver = HttpServer(routes={"/slow": slow_failure})
    hook, _ = world.add_webhook(receiver.url("/slow"))
    first, second = deliveries_for(world, hook, 10), deliveries_for(world, hook, 10)
    # 5 s -> 50 ms, 5 min -> 3 s, 30 min -> 18 s: tiers 0 to 2 keep retrying the first ten.
    settings = replace(hook_settings, webhook_time_scale=1e-2, webhook_endpoint_concurrency=2)
    produce(settings, "webhook-deliveries", first, str(hook))
    with consumer_thread(DELIVERIES, settings):
        wait_until(lambda: retried_at, 60)
        produce(settings, "webhook-deliveries", second, str(hook))
        wait_until(lambda: len(first_seen) == 20 and len(retried_at) >= 30, 90)
    receiver.close()

    second_started = min(first_seen[str(e.id)] for e in second)
    assert min(retried_at) < second_started < max(retried_at), "retries did not overlap new deliveries"
    assert peak[0] <= 2, f"{peak[0]} requests were open at once to one endpoint"


def test_events_while_disabled_are_kept_and_replayed_with_their_original_ids(hook_settings, world) -> None:
    """R5: deliveries to an inactive webhook are stored as skipped; after re-enabling it,
    `plane-workers webhooks replay --since T` sends each once with its original webhook-id."""
    receiver = HttpServer()
    hook, secret = world.add_webhook(receiver.url("/back"), is_active=False)
    since = datetime.now(UTC) - timedelta(minutes=1)
    produce(hook_settings, "webhook-events", activity(world, 3), str(world.workspace_id))
    with consumer_thread(EVENTS, hook_settings), consumer_thread(DELIVERIES, hook_settings):
        wait_until(lambda: len(world.deliveries(hook)) == 3, 60)
        assert receiver.requests == [] and {d["status"] for d in world.deliveries(hook)} == {"skipped"}
        with world.engine.begin() as conn:
            conn.execute(text("UPDATE webhooks SET is_active = true WHERE id = :id"), {"id": hook})
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "shared.cli.main",
                "webhooks",
                "replay",
                "--webhook",
                str(hook),
                "--since",
                since.isoformat(),
            ],
            env=env_for(hook_settings),
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert json.loads(out.stdout.strip().splitlines()[-1])["replayed"] == 3
        wait_until(lambda: {d["status"] for d in world.deliveries(hook)} == {"succeeded"}, 60)
    receiver.close()
    ids = sorted(str(d["delivery_id"]) for d in world.deliveries(hook))
    assert sorted(r.headers["webhook-id"] for r in receiver.requests) == ids
    for request in receiver.requests:
        verify(secret, request)


def test_kill_after_200_before_commit_redelivers_with_the_same_webhook_id(hook_settings, world) -> None:
    """R1: the consumer dies (SIGKILL) right after the receiver answered 200. The restarted one
    sends the delivery again with the same webhook-id and records success exactly once. Both
    requests are in webhook_logs: the first, whose answer died with the worker, as interrupted,
    and the re-send numbered after it (every re-send was logged with retry_count 0 before)."""
    consumer: list[subprocess.Popen] = []

    def answer_then_kill(request) -> None:  # type: ignore[no-untyped-def]
        send(request, 200, b"ok")
        request.wfile.flush()
        if len(receiver.requests) == 1:
            os.kill(consumer[0].pid, signal.SIGKILL)

    receiver = HttpServer(routes={"/once": answer_then_kill})
    hook, secret = world.add_webhook(receiver.url("/once"))
    produce(hook_settings, "webhook-deliveries", deliveries_for(world, hook, 1), str(hook))
    consumer.append(spawn_consumer("webhook-deliveries", hook_settings))
    assert consumer[0].wait(60) == -signal.SIGKILL
    assert world.deliveries(hook) == [] and world.logs(hook) == []
    restarted = spawn_consumer("webhook-deliveries", hook_settings)
    try:
        wait_until(lambda: world.deliveries(hook), 60)
    finally:
        restarted.send_signal(signal.SIGTERM)
        restarted.wait(30)
    receiver.close()
    assert len(receiver.requests) == 2
    assert receiver.requests[0].headers["webhook-id"] == receiver.requests[1].headers["webhook-id"]
    for request in receiver.requests:
        verify(secret, request)
    assert [(d["status"], d["attempts"]) for d in world.deliveries(hook)] == [("succeeded", 2)]
    logs = world.logs(hook)
    assert [(r["retry_count"], r["response_status"]) for r in logs] == [(0, None), (1, "200")]
    assert json.loads(logs[0]["response_body"]) == {"error": store.INTERRUPTED}
    assert json.loads(logs[0]["request_headers"])["webhook-id"] == receiver.requests[0].headers["webhook-id"]
    assert count(world.engine, "plane_workers.webhook_attempts") == 0


def test_malformed_delivery_is_dead_lettered_and_oversize_payload_is_sent_thin(hook_settings, world) -> None:
    """R6: a broken message goes to the DLQ without stopping the consumer; a body over the cap
    is sent with data = {id} instead of crashing or being refused by the receiver."""
    receiver = HttpServer()
    hook, secret = world.add_webhook(receiver.url("/big"))
    settings = replace(hook_settings, webhook_payload_max_bytes=300)
    producer = EventProducer(settings)
    producer.send_raw(settings.topic("webhook-deliveries"), b"{not json", key=str(hook))
    producer.close()
    produce(settings, "webhook-events", activity(world, new_value="x" * 5000), str(world.workspace_id))
    with consumer_thread(EVENTS, settings), consumer_thread(DELIVERIES, settings):
        wait_until(lambda: world.deliveries(hook), 60)
        wait_until(lambda: dead_letters(settings, "webhook-deliveries"), 30)
    receiver.close()
    [request] = receiver.requests
    payload = verify(secret, request)
    assert payload["data"] == {"id": str(world.issue_id)}
    [letter] = dead_letters(settings, "webhook-deliveries")
    assert letter["headers"]["error-class"] == "InvalidEvent.malformed_json"


def test_a_100_mb_response_keeps_the_worker_memory_bounded(hook_settings, world) -> None:
    """R6: the receiver streams 100 MB; the consumer reads 20 kB of it and its peak RSS grows by
    less than 10 MB. The stored response is capped at 20,000 bytes."""
    chunk = b"x" * 65536

    def flood(conn) -> None:  # type: ignore[no-untyped-def]
        read_request_head(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 104857600\r\n\r\n")
        for _ in range(1600):
            conn.sendall(chunk)

    receiver = HttpServer()
    flooder = RawServer(flood)
    warm, _ = world.add_webhook(receiver.url("/warm"))
    big, _ = world.add_webhook(flooder.url("/flood"))
    consumer = spawn_consumer("webhook-deliveries", hook_settings)
    try:
        produce(hook_settings, "webhook-deliveries", deliveries_for(world, warm, 20), str(warm))
        wait_until(lambda: len(world.deliveries(warm)) == 20, 60)
        before = _peak_rss_kb(consumer.pid)
        produce(hook_settings, "webhook-deliveries", deliveries_for(world, big, 1), str(big))
        wait_until(lambda: world.deliveries(big), 60)
        growth_mb = (_peak_rss_kb(consumer.pid) - before) / 1024
    finally:
        consumer.send_signal(signal.SIGTERM)
        consumer.wait(30)
        receiver.close()
        flooder.close()
    assert growth_mb < 10, f"peak RSS grew {growth_mb:.1f} MB"
    [log] = world.logs(big)
    assert len(log["response_body"].encode()) <= 20000


def _peak_rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_binary_and_odd_answers_are_logged_and_delivery_goes_on(hook_settings, world, tmp_path) -> None:
    """A receiver answering a gzip body, one answering 500 with NUL and invalid UTF-8 in its body
    and a header: their attempts are logged (marker, type and encoding), the consumer process keeps
    running, the healthy receiver produced for afterwards gets everything, and nothing is sent twice.
    (The NUL used to fail the writer's insert: exit 1, and the same crash after every restart.)"""
    zipped = gzip.compress(b'{"ok": true}')
    receiver = HttpServer()
    receiver.routes["/gzip"] = lambda r: send(
        r, 200, zipped, {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    )
    # http.server writes header values as latin-1: these are the bytes 00, FF and FE on the wire.
    # abort-message: no retries, so every request below is a first attempt.
    receiver.routes["/odd"] = lambda r: send(
        r, 500, b"\x00\xff\xfe", {"X-Odd": "a\x00\xff\xfe", "webhook-delivery": "abort-message"}
    )
    hooks = {path: world.add_webhook(receiver.url(path))[0] for path in ("/gzip", "/odd", "/ok")}
    stderr = (tmp_path / "stderr").open("w+b")
    consumer = spawn_consumer("webhook-deliveries", hook_settings, stderr=stderr)

    def finished(path: str, n: int) -> bool:
        if consumer.poll() is not None:
            stderr.seek(0)
            raise AssertionError(f"consumer exited {consumer.returncode}: {stderr.read()[-2000:]!r}")
        return len(world.deliveries(hooks[path])) == n

    try:
        for path in ("/gzip", "/odd"):
            produce(
                hook_settings, "webhook-deliveries", deliveries_for(world, hooks[path], 3), str(hooks[path])
            )
        wait_until(lambda: finished("/gzip", 3) and finished("/odd", 3), 60)
        produce(
            hook_settings, "webhook-deliveries", deliveries_for(world, hooks["/ok"], 3), str(hooks["/ok"])
        )
        wait_until(lambda: finished("/ok", 3), 60)
        time.sleep(0.5)  # a re-sent batch would arrive now
        assert consumer.poll() is None
    finally:
        consumer.send_signal(signal.SIGTERM)
        consumer.wait(30)
        receiver.close()

    ids = [r.headers["webhook-id"] for r in receiver.requests]
    assert len(ids) == len(set(ids)) == 9, "every delivery sent once"
    for path, status in (("/gzip", "succeeded"), ("/odd", "aborted"), ("/ok", "succeeded")):
        assert [d["status"] for d in world.deliveries(hooks[path])] == [status] * 3
        assert len(world.logs(hooks[path])) == 3
    gz_log, odd_log, ok_log = (world.logs(hooks[p])[0] for p in ("/gzip", "/odd", "/ok"))
    assert gz_log["response_body"] == (
        f"[binary body, {len(zipped)} bytes, sha256 {hashlib.sha256(zipped).hexdigest()}, "
        "content-type application/json, content-encoding gzip]"
    )
    gz_headers = json.loads(gz_log["response_headers"])
    assert gz_headers["Content-Type"] == "application/json" and gz_headers["Content-Encoding"] == "gzip"
    assert odd_log["response_status"] == "500"
    assert odd_log["response_body"].startswith("[binary body, 3 bytes, sha256 ")
    assert json.loads(odd_log["response_headers"])["X-Odd"] == "a\\u0000\\xff\\xfe"
    assert ok_log["response_body"] == "ok"
