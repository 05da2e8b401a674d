"""The drop-in check: Plane's API, played here, reaches plane-workers through Celery only.

Plane's schema is loaded into the build machine's PostgreSQL 15. `plane-workers dev --with
celery-bridge` runs every default consumer and the bridge on it, with the session's broker, S3
(moto) and SMTP capture. The test then does what Plane's API does for a user's session: it
writes the rows Plane's views write and calls `.delay()` with the argument shapes of Plane's
call sites (a real Celery client on the machine's RabbitMQ). What comes out is checked against
what Plane's own worker would have produced: activity rows, notifications, a description
version, a signed webhook request, a crawled link title, an export object and its row, a mail, page logs
and a page version, an API request log without its key, a recent visit, a seeded workspace.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session

from services.link_crawler.samples import link as link_row
from services.pages.samples import page as page_row
from shared.db.plane import Issue, Project, State, User, Webhook, Workspace
from shared.db.plane_schema import load_plane_schema
from shared.embedded.smtp import EmbeddedSMTP
from shared.embedded.stack import env_for
from shared.settings import Settings
from shared.storage import s3_client
from shared.testing import plane_factory as make
from shared.testing.plane_rows import insert_one
from tests.helpers import wait_until
from tests.integration.celery_bridge_world import (
    bridge_settings,
    celery_client,
    delete_queues,
    needs_rabbitmq,
)
from tests.integration.http_servers import HttpServer, running, send

if TYPE_CHECKING:
    from tests.compat.conftest import Server

pytestmark = [needs_rabbitmq, pytest.mark.slow]

SITE = "https://app.plane.example"  # Plane's origin (base_host) as its views pass it
API_KEY = "plane_api_" + "5e" * 16  # an API token's shape
PLANE = "plane.bgtasks"


@dataclass
class PlaneWorld:
    """What Plane's API has written before it queues the tasks."""

    alice: User  # the actor
    bob: User  # a member she assigns and mentions
    ws: Workspace
    project: Project
    todo: State
    issue: Issue
    hook: Webhook
    link: uuid.UUID
    link_url: str
    export_token: str
    page: uuid.UUID
    mention: uuid.UUID  # the id of the page's mention of bob
    comment: uuid.UUID
    comment_html: str  # mentions bob
    new_ws: Workspace  # created by alice, not yet seeded


def plane_rows(engine: Engine, receiver_url: str, link_url: str) -> PlaneWorld:
    alice, bob = make.user(0, display_name="alice"), make.user(1, display_name="bob")
    with Session(engine, expire_on_commit=False) as session, session.begin():
        session.add_all([alice, bob])
        session.flush()
        ws = make.workspace(alice, slug=f"acme-{uuid.uuid4().hex[:6]}")
        session.add(ws)
        session.flush()
        project = make.project(ws)
        session.add(project)
        session.flush()
        todo = make.state(project, "Todo", "unstarted")
        session.add(todo)
        session.flush()
        issue = make.issue(project, 1, "<p>Ship the drop-in</p>", name="Ship the drop-in", state_id=todo.id)
        hook = make.webhook(ws, receiver_url)
        comment_html = (
            f'<p>ship it, <mention-component entity_identifier="{bob.id}" entity_name="user_mention">'
            "</mention-component></p>"
        )
        session.add_all([issue, hook, *(make.project_member(project, u) for u in (alice, bob))])
        session.add_all([make.notification_preference(u) for u in (alice, bob)])
        session.flush()
        comment = make.issue_comment(issue, alice, comment_html, "ship it, bob")
        new_ws = make.workspace(alice, slug=f"fresh-{uuid.uuid4().hex[:6]}")  # WorkSpaceViewSet.create's
        session.add_all([comment, new_ws])
    with engine.begin() as conn:
        link = link_row(conn, issue, link_url)
        token = uuid.uuid4().hex
        page = page_row(conn, ws.id, alice.id, "<p>Release notes</p>", name="Release notes")
        insert_one(  # ExportIssuesEndpoint's row
            conn, "exporters", workspace_id=ws.id, project=[str(project.id)], provider="csv",
            status="queued", token=token, initiated_by_id=alice.id, type="issue_exports", reason="", key="",
        )  # fmt: skip
    return PlaneWorld(
        alice, bob, ws, project, todo, issue, hook, link, link_url, token, page, uuid.uuid4(), comment.id,
        comment_html, new_ws,
    )  # fmt: skip


def plane_session(app: Any, engine: Engine, w: PlaneWorld) -> None:
    """The `.delay()` calls of a user's session, in Plane's order and argument shapes."""
    issue, project, actor = str(w.issue.id), str(w.project.id), str(w.alice.id)
    created = {"name": w.issue.name, "description_html": w.issue.description_html, "state_id": str(w.todo.id)}
    now = int(time.time())

    def delay(task: str, *args: Any, **kwargs: Any) -> None:
        app.send_task(f"{PLANE}.{task}", args=list(args), kwargs=kwargs)

    # WorkSpaceViewSet.create: positional, the new workspace's id
    delay("workspace_seed_task.workspace_seed", w.new_ws.id)
    # IssueViewSet.create
    delay("issue_activities_task.issue_activity", type="issue.activity.created",
          requested_data=json.dumps(created), actor_id=actor, issue_id=issue, project_id=project,
          current_instance=None, epoch=now, notification=True, origin=SITE)  # fmt: skip
    delay("webhook_task.model_activity", model_name="issue", model_id=issue, requested_data=created,
          current_instance=None, actor_id=w.alice.id, slug=w.ws.slug, origin=SITE)  # fmt: skip
    delay("issue_description_version_task.issue_description_version_task",
          updated_issue=json.dumps(created), issue_id=issue, user_id=actor, is_creating=True)  # fmt: skip
    # IssueViewSet.partial_update: priority and the assignee, with the instance as it was
    delay("issue_activities_task.issue_activity", type="issue.activity.updated",
          requested_data=json.dumps({"priority": "high", "assignee_ids": [str(w.bob.id)]}),
          actor_id=actor, issue_id=issue, project_id=project,
          current_instance=json.dumps({"priority": "none", "assignee_ids": []}), epoch=now + 1,
          notification=True, origin=SITE)  # fmt: skip
    # IssueCommentViewSet.create: the comment is saved (plane_rows), mentioning bob
    comment = {"id": str(w.comment), "comment_html": w.comment_html, "comment_stripped": "ship it, bob",
               "comment_json": {}, "attachments": [], "access": "INTERNAL", "issue": issue,
               "project": project, "workspace": str(w.ws.id), "actor": actor}  # fmt: skip
    delay("issue_activities_task.issue_activity", type="comment.activity.created",
          requested_data=json.dumps(comment), actor_id=actor, issue_id=issue, project_id=project,
          current_instance=None, epoch=now + 2, notification=True, origin=SITE)  # fmt: skip
    # IssueLinkViewSet.create: positional, as the view calls it
    delay("work_item_link_task.crawl_work_item_link_title", w.link, w.link_url)
    # ExportIssuesEndpoint.post
    delay("export_task.issue_export_task", provider="csv", workspace_id=w.ws.id, project_ids=[project],
          token_id=w.export_token, multiple=False, slug=w.ws.slug)  # fmt: skip
    # ForgotPasswordEndpoint: positional
    delay("forgot_password_task.forgot_password", "bob", "bob@example.com", "dWlk", "tok-1", SITE)
    # PageViewSet's description update: the mentions diff, then the version of what it replaced
    mention = (
        f'<mention-component id="{w.mention}" entity_identifier="{w.bob.id}" entity_name="user_mention">'
        "</mention-component>"
    )
    with engine.begin() as conn:  # the view saves the page first
        conn.execute(text("UPDATE pages SET description_html = :h, updated_at = now() WHERE id = :p"),
                     {"h": f"<p>Ask {mention}</p>", "p": w.page})  # fmt: skip
    delay("page_transaction_task.page_transaction", new_description_html=f"<p>Ask {mention}</p>",
          old_description_html="<p>Release notes</p>", page_id=str(w.page))  # fmt: skip
    replaced = json.dumps({"description_html": "<p>Release notes</p>"})
    delay("page_version_task.track_page_version", page_id=str(w.page), existing_instance=replaced,
          user_id=actor)  # fmt: skip
    # APITokenLogMiddleware, for a request made with an API key
    log_data = {"token_identifier": API_KEY, "path": f"/api/v1/workspaces/{w.ws.slug}/projects/",
                "method": "GET", "query_params": "", "headers": str({"X-Api-Key": API_KEY}), "body": None,
                "response_code": 200, "response_body": "[]", "ip_address": "10.1.2.3",
                "user_agent": "curl/8.5"}  # fmt: skip
    delay("logger_task.process_logs", log_data=log_data, mongo_log={})
    # IssueViewSet.retrieve by bob
    delay("recent_visited_task.recent_visited_task", entity_name="issue", entity_identifier=issue,
          user_id=str(w.bob.id), project_id=project, slug=w.ws.slug)  # fmt: skip


def scalar(engine: Engine, sql: str, **params: Any) -> Any:
    with engine.connect() as conn:
        return conn.execute(text(sql), params).scalar()


def test_plane_api_through_celery_gets_what_plane_s_worker_would_write(  # type: ignore[no-untyped-def]
    local_server: Server,
    plane_schema_sql: Path,
    s3_settings: Settings,
    smtp: EmbeddedSMTP,
    tmp_path: Path,
):
    receiver = HttpServer()
    site = HttpServer(
        routes={
            "/spec": lambda h: send(h, 200, b"<title>Drop-in spec</title>", {"Content-Type": "text/html"})
        }
    )
    with local_server.fresh_database("drop_in") as url, running(receiver, site):
        load_plane_schema(url, plane_schema_sql)
        s = bridge_settings(
            replace(
                s3_settings, database_url=url, email_host="127.0.0.1", email_port=smtp.port,
                email_use_tls=False, email_use_ssl=False, webhook_allowed_ips=("127.0.0.1/32",),
                link_crawler_allowed_ips=("127.0.0.1/32",),
            )
        )  # fmt: skip
        engine = create_engine(url)
        w = plane_rows(engine, receiver.url("/plane"), site.url("/spec"))
        out, err = tmp_path / "dev.out", tmp_path / "dev.err"
        with out.open("wb") as out_file, err.open("wb") as err_file:
            dev = subprocess.Popen(
                [sys.executable, "-m", "shared.cli.main", "dev", "--with", "celery-bridge"],
                env=env_for(s) | {"LOG_LEVEL": "WARNING"},
                stdout=out_file,
                stderr=err_file,
                start_new_session=True,
            )
        try:
            plane_session(celery_client(s), engine, w)
            try:
                _wait_for_everything(engine, s, w, receiver, smtp)
            except AssertionError as exc:
                raise AssertionError(
                    f"{exc}; dev printed:\n{err.read_text(errors='replace')[-3000:]}"
                ) from None
        finally:
            dev.terminate()
            dev.wait(timeout=60)
            delete_queues(s)
            engine.dispose()
    assert dev.returncode == 0, err.read_text(errors="replace")[-2000:]


def _wait_for_everything(
    engine: Engine, s: Settings, w: PlaneWorld, receiver: HttpServer, smtp: EmbeddedSMTP
) -> None:
    issue = str(w.issue.id)
    # issue_activity: the creation and each changed field, as Plane's worker writes them.
    wait_until(
        lambda: scalar(engine, "SELECT count(*) FROM issue_activities WHERE issue_id = :i", i=issue) >= 3,
        timeout_s=180,
    )
    with engine.connect() as conn:
        verbs = conn.execute(
            text(
                "SELECT verb, field, new_value FROM issue_activities WHERE issue_id = :i ORDER BY created_at"
            ),
            {"i": issue},
        ).all()
    assert ("created", None, None) in [(v.verb, v.field, v.new_value) for v in verbs], verbs
    assert ("updated", "priority", "high") in [(v.verb, v.field, v.new_value) for v in verbs], verbs
    assert any(v.field == "assignees" and v.new_value == "bob" for v in verbs), verbs

    # notifications (chained by issue-activity): bob, assigned, is told; alice, the actor, is not.
    def notified(user: User) -> int:
        return scalar(engine, "SELECT count(*) FROM notifications WHERE receiver_id = :u", u=user.id)

    wait_until(lambda: notified(w.bob) >= 1, timeout_s=60)
    assert notified(w.alice) == 0
    # The comment's mention of bob: Plane's mention notification.
    wait_until(
        lambda: scalar(engine, "SELECT count(*) FROM notifications WHERE receiver_id = :u AND sender = :s",
                       u=w.bob.id, s="in_app:issue_activities:mentioned"),
        timeout_s=60,
    )  # fmt: skip
    comments = "SELECT count(*) FROM issue_activities WHERE issue_id = :i AND field = 'comment'"
    assert scalar(engine, comments, i=issue) == 1

    # issue_description_version_task: the creating version.
    wait_until(
        lambda: scalar(
            engine, "SELECT count(*) FROM issue_description_versions WHERE issue_id = :i", i=issue
        ),
        timeout_s=60,
    )

    # model_activity -> webhook: one signed POST of the issue to the webhook's URL.
    def posts() -> list[Any]:
        return [r for r in receiver.requests if r.method == "POST"]

    wait_until(posts, timeout_s=60)
    request = posts()[0]
    headers = {k.lower(): v for k, v in request.headers.items()}
    assert headers["x-plane-event"] == "issue"
    expected = hmac.new(w.hook.secret_key.encode(), request.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["x-plane-signature"], expected)
    payload = json.loads(request.body)
    # model_activity passes verb "created" as the action, which Plane's POST->create map leaves as is.
    assert (payload["event"], payload["action"], payload["data"]["id"]) == ("issue", "created", issue)

    # crawl_work_item_link_title: the page's title in the link's metadata.
    wait_until(
        lambda: (
            scalar(engine, "SELECT metadata->>'title' FROM issue_links WHERE id = :i", i=w.link)
            == "Drop-in spec"
        ),
        timeout_s=60,
    )

    # issue_export_task: the row completed, its object in the bucket under Plane's key pattern.
    wait_until(
        lambda: (
            scalar(engine, "SELECT status FROM exporters WHERE token = :t", t=w.export_token) == "completed"
        ),
        timeout_s=90,
    )
    key = scalar(engine, "SELECT key FROM exporters WHERE token = :t", t=w.export_token)
    assert key.startswith(f"{w.ws.id}/export-{w.ws.slug}-{w.export_token[:6]}-") and key.endswith(".zip")
    head = s3_client(s).head_object(Bucket=s.aws_s3_bucket_name, Key=key)
    assert head["ContentLength"] > 0

    # page_transaction: the mention logged; track_page_version: the replaced description kept.
    wait_until(
        lambda: scalar(engine, "SELECT entity_identifier FROM page_logs WHERE page_id = :p AND"
                       " transaction = :t", p=w.page, t=w.mention) == w.bob.id,
        timeout_s=60,
    )  # fmt: skip
    wait_until(lambda: scalar(engine, "SELECT count(*) FROM page_versions WHERE page_id = :p", p=w.page), 60)

    # process_logs: the request's row, its key nowhere in it (a hash in token_identifier).
    wait_until(lambda: scalar(engine, "SELECT count(*) FROM api_activity_logs"), timeout_s=60)
    row = scalar(engine, "SELECT row_to_json(l)::text FROM api_activity_logs l")
    assert API_KEY not in row and '"response_code":200' in row, row

    # recent_visited_task: bob's visit of the issue.
    wait_until(
        lambda: (
            scalar(engine, "SELECT entity_identifier FROM user_recent_visits WHERE user_id = :u", u=w.bob.id)
            == w.issue.id
        ),
        timeout_s=60,
    )

    # workspace_seed: the new workspace's project, its issues numbered from 1 with their sequences.
    seeded = "SELECT count(*) FROM issues WHERE workspace_id = :w"
    wait_until(lambda: scalar(engine, seeded, w=w.new_ws.id), timeout_s=60)
    numbers = "SELECT array_agg(sequence_id ORDER BY sequence_id)::text FROM issues WHERE workspace_id = :w"
    count = scalar(engine, seeded, w=w.new_ws.id)
    assert scalar(engine, numbers, w=w.new_ws.id) == "{" + ",".join(str(n) for n in range(1, count + 1)) + "}"
    sequences = "SELECT count(*) FROM issue_sequences WHERE workspace_id = :w"
    assert scalar(engine, sequences, w=w.new_ws.id) == count

    # forgot_password: the mail, to the address Plane's view gave.
    wait_until(lambda: [m for m in smtp.messages if "bob@example.com" in m.recipients], timeout_s=60)
