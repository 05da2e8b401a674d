"""soft-deletes on Plane's real schema: whole workspaces cascade, nothing outside is touched.

The handler runs in this process against the test's PostgreSQL and broker (the embed deletes it
sends are read back from the topic), except where a consumer process is killed mid-cascade and
where bad events must be dead-lettered by the runtime: there it runs as `plane-workers consume`.
"""

from __future__ import annotations

import json
import signal
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Connection, Engine, text

from services.soft_deletes import cascade as cascade_module
from services.soft_deletes import handler
from services.soft_deletes.cascade import Cascade, Root, RootNotFound
from services.soft_deletes.samples import PROJECT_TABLES, add_project, add_workspace, soft_delete_event
from shared.events import Event, new_event
from shared.events.producer import EventProducer
from shared.kafka import headers as h
from shared.kafka.handler import HandlerContext, PermanentError
from shared.settings import Settings
from shared.testing.plane_rows import insert_one, insert_user
from shared.testing.topics import read_topic
from tests.helpers import dead_letters, processed, spawn_consumer, stop_processes, wait_until

OLD = datetime(2025, 6, 1, tzinfo=UTC)  # an earlier, unrelated soft delete


def mark(conn: Connection, table: str, row_id: uuid.UUID, at: datetime) -> None:
    conn.execute(text(f'UPDATE "{table}" SET deleted_at = :d WHERE id = :i'), {"d": at, "i": row_id})


def fingerprint(conn: Connection, ws: uuid.UUID) -> dict[str, str]:
    """Every column of every row of a workspace's content, hashed per table."""
    out = {}
    for table in (*PROJECT_TABLES, "workspace_members"):
        out[table] = conn.scalar(
            text(
                "SELECT md5(coalesce(string_agg(t::text, ',' ORDER BY id), '')) "
                f'FROM "{table}" t WHERE workspace_id = :w'
            ),
            {"w": ws},
        )
    out["workspaces"] = conn.scalar(text("SELECT md5(t::text) FROM workspaces t WHERE id = :w"), {"w": ws})
    return out


def state_of(conn: Connection, ws: uuid.UUID, stamp: datetime) -> dict[str, tuple[int, int, int]]:
    """table -> (live, carrying `stamp`, other stamps) in a workspace."""
    out = {}
    for table in (*PROJECT_TABLES, "workspace_members"):
        out[table] = tuple(
            conn.execute(
                text(
                    "SELECT count(*) FILTER (WHERE deleted_at IS NULL), "
                    "count(*) FILTER (WHERE deleted_at = :d), "
                    f'count(*) FILTER (WHERE deleted_at <> :d) FROM "{table}" WHERE workspace_id = :w'
                ),
                {"w": ws, "d": stamp},
            ).one()
        )
    return out


def context(settings: Settings) -> HandlerContext:
    return HandlerContext("soft-deletes", settings, EventProducer(settings), None)


def embed_deletes(settings: Settings) -> list[dict]:
    return [json.loads(m.value()) for m in read_topic(settings, settings.topic(handler.EMBEDDINGS_TOPIC))]


def content_ids(conn: Connection, table: str, ws: uuid.UUID, stamp: datetime) -> set[str]:
    return set(
        conn.scalars(
            text(f'SELECT id::text FROM "{table}" WHERE workspace_id = :w AND deleted_at = :d'),
            {"w": ws, "d": stamp},
        )
    )


class WorkspaceWorld:
    """A workspace soft-deleted by the API (its row stamped, its content live) with thousands of
    rows, content soft-deleted earlier inside it, and a live workspace of the same owner."""

    def __init__(self, engine: Engine, settings: Settings, projects: int = 3, issues: int = 250) -> None:
        self.settings = settings
        self.stamp = datetime.now(UTC).replace(microsecond=123456) - timedelta(minutes=1)
        with engine.begin() as conn:
            self.owner = insert_user(conn)
            self.dead, made = add_workspace(conn, self.owner, projects, issues, pages=20)
            # Deleted before, with their own cascade done: they keep their stamp.
            self.old_project = add_project(conn, self.dead, self.owner, "OLD", 10, pages=2, deleted_at=OLD)
            self.old_issue = made[0].issues[1]
            mark(conn, "issues", self.old_issue, OLD)
            self.live, _ = add_workspace(conn, self.owner, 1, 60, pages=5)
            # A user's avatar is a file asset of the dead workspace (users.avatar_asset_id: SET_NULL).
            self.avatar = insert_one(conn, "file_assets", asset="avatar/1", entity_type="USER_AVATAR",
                                     workspace_id=self.dead, size=1)  # fmt: skip
            conn.execute(
                text("UPDATE users SET avatar_asset_id = :a WHERE id = :u"),
                {"a": self.avatar, "u": self.owner},
            )
            mark(conn, "workspaces", self.dead, self.stamp)
            self.live_rows = sum(live for live, _, _ in state_of(conn, self.dead, self.stamp).values())
            self.live_print = fingerprint(conn, self.live)
            self.updated_before = conn.scalar(
                text("SELECT max(updated_at) FROM issues WHERE workspace_id = :w"), {"w": self.dead}
            )

    def event(self):  # type: ignore[no-untyped-def]
        return soft_delete_event("workspaces", self.dead, "workspace")

    def assert_complete(self, engine: Engine) -> None:
        with engine.connect() as conn:
            after = state_of(conn, self.dead, self.stamp)
            assert all(live == 0 for live, _, _ in after.values()), after
            # The earlier deletes keep their stamp: 10 issues + 2 sub-issues of project OLD, the
            # issue deleted alone (its own rows were live: they take the workspace's stamp).
            assert after["issues"][2] == 10 + 2 + 1, after["issues"]
            assert after["projects"] == (0, 3, 1)
            assert after["pages"] == (0, 60, 2)
            # Audit columns kept on every row (Plane's worker nulls both), updated_at set.
            for table in ("issues", "issue_comments", "comment_reactions", "pages", "cycle_issues"):
                nulled = conn.scalar(
                    text(
                        f'SELECT count(*) FROM "{table}" WHERE workspace_id = :w '
                        "AND (created_by_id IS DISTINCT FROM :u OR updated_by_id IS DISTINCT FROM :u)"
                    ),
                    {"w": self.dead, "u": self.owner},
                )
                assert nulled == 0, table
            stale = conn.scalar(
                text(
                    "SELECT count(*) FROM issues "
                    "WHERE workspace_id = :w AND deleted_at = :d AND updated_at <= :b"
                ),
                {"w": self.dead, "d": self.stamp, "b": self.updated_before},
            )
            assert stale == 0
            assert fingerprint(conn, self.live) == self.live_print, "a row outside the subtree changed"
            assert (
                conn.scalar(text("SELECT avatar_asset_id FROM users WHERE id = :u"), {"u": self.owner})
                is None
            )
            marked = {t: content_ids(conn, t, self.dead, self.stamp) for t in ("issues", "pages")}
        sent = {(e["data"]["entity_type"], e["data"]["entity_id"]) for e in embed_deletes(self.settings)}
        assert sent == {("issue", i) for i in marked["issues"]} | {("page", p) for p in marked["pages"]}


@pytest.fixture
def ws_world(engine: Engine, settings: Settings) -> WorkspaceWorld:
    return WorkspaceWorld(engine, settings)


def test_workspace_cascades_whole_audit_kept_nothing_outside_touched(settings, engine, ws_world) -> None:
    with engine.connect() as conn:
        before = state_of(conn, ws_world.dead, ws_world.stamp)
    assert sum(live for live, _, _ in before.values()) > 10_000
    ctx = context(settings)
    event = ws_world.event()
    handler.handle(event, ctx)
    ws_world.assert_complete(engine)
    assert processed(engine, "soft-deletes") == 1
    data = embed_deletes(settings)[0]["data"]
    assert data["action"] == "delete" and data["version"] == ws_world.stamp.isoformat()
    assert data["workspace_id"] == str(ws_world.dead) and data["reason"] == "soft_delete"

    # The same delete again (a second Celery message, or replayed): nothing left to do.
    with engine.connect() as conn:
        settled = fingerprint(conn, ws_world.dead)
    handler.handle(event, ctx)  # claimed: returns at once
    handler.handle(ws_world.event(), ctx)  # a new id: walks, finds nothing live
    with engine.connect() as conn:
        assert fingerprint(conn, ws_world.dead) == settled
    assert len(embed_deletes(settings)) == len({e["id"] for e in embed_deletes(settings)})


def test_bounded_transactions_and_continuations_reach_the_same_end(
    settings, engine, ws_world, monkeypatch
) -> None:
    """With a zero time budget each call does one batch and hands the rest on as a continuation
    on its own topic; following them all ends where one call ends. Batches stay small."""
    monkeypatch.setattr(handler, "CALL_BUDGET_S", 0.0)
    monkeypatch.setattr(cascade_module, "MAX_BATCH", 400)
    ctx = context(settings)
    handler.handle(ws_world.event(), ctx)
    calls, seen = 1, set()
    while True:
        pending = [
            m
            for m in read_topic(settings, settings.topic(handler.TOPIC))
            if json.loads(m.value())["id"] not in seen
        ]
        if not pending:
            break
        for message in pending:
            envelope = json.loads(message.value())
            seen.add(envelope["id"])
            assert message.key() == str(ws_world.dead).encode()
            again = Event(
                envelope["id"], envelope["type"], envelope["source"], envelope["time"], envelope["data"]
            )
            handler.handle(again, ctx)
            calls += 1
    assert calls > 10, calls
    ws_world.assert_complete(engine)


def test_killed_consumer_finishes_the_cascade_on_restart(settings, engine, ws_world, tmp_path) -> None:
    producer = EventProducer(settings)
    producer.send(handler.TOPIC, ws_world.event(), key=str(ws_world.dead))
    total = ws_world.live_rows

    def marked() -> int:
        with engine.connect() as conn:
            return sum(n for _, n, _ in state_of(conn, ws_world.dead, ws_world.stamp).values())

    log = (tmp_path / "consumer.log").open("wb")
    consumer = spawn_consumer("soft-deletes", settings, stderr=log, JOB_BATCH_PAUSE_MS="150")
    try:
        wait_until(lambda: marked() > 1000, timeout_s=90, interval_s=0.05)
        consumer.send_signal(signal.SIGKILL)
        consumer.wait()
    finally:
        if consumer.poll() is None:
            consumer.kill()
    half = marked()
    assert 1000 < half < total, (half, total)
    assert processed(engine, "soft-deletes") == 0
    with engine.connect() as conn:
        assert fingerprint(conn, ws_world.live) == ws_world.live_print

    restarted = spawn_consumer("soft-deletes", settings, stderr=log)
    try:
        wait_until(lambda: processed(engine, "soft-deletes") == 1, timeout_s=120, interval_s=0.2)
    finally:
        stop_processes([restarted])
    ws_world.assert_complete(engine)


def issue_tree(conn: Connection, owner: uuid.UUID, ws: uuid.UUID):  # type: ignore[no-untyped-def]
    project = add_project(conn, ws, owner, "TREE", 12)
    root = project.issues[3]  # sequence 4: it has a sub-issue
    # Replies under the root's comment: issue -> comment -> reply -> reaction, four layers.
    comment = conn.scalar(text("SELECT id FROM issue_comments WHERE issue_id = :i"), {"i": root})
    for _ in range(3):
        audit = {"created_by_id": owner, "updated_by_id": owner}
        reply = insert_one(conn, "issue_comments", issue_id=root, parent_id=comment, project_id=project.id,
                           workspace_id=ws, actor_id=owner, **audit)  # fmt: skip
        insert_one(conn, "comment_reactions", comment_id=reply, actor_id=owner, reaction="+1",
                   project_id=project.id, workspace_id=ws)  # fmt: skip
    return project, root


TREE_TABLES = ("issues", "issue_comments", "comment_reactions", "issue_assignees", "issue_activities")


def tree_state(conn: Connection, project: uuid.UUID) -> list[tuple]:
    union = " UNION ALL ".join(
        f"SELECT '{t}' AS tbl, id::text AS id, deleted_at FROM {t} WHERE project_id = :p" for t in TREE_TABLES
    )
    return [tuple(r) for r in conn.execute(text(f"SELECT * FROM ({union}) x ORDER BY 1, 2"), {"p": project})]


class Killed(Exception):
    pass


@pytest.mark.parametrize("kill_after", [1, 2, 4, 7])
def test_a_cascade_killed_at_any_batch_is_completed_by_the_replay(
    settings, engine, monkeypatch, kill_after
) -> None:
    """An issue subtree four layers deep in 1-row batches; the cascade dies at a batch (its
    transaction rolled back) and is run again: the end state is the uninterrupted one."""
    monkeypatch.setattr(cascade_module, "FIRST_BATCH", 1)
    monkeypatch.setattr(cascade_module, "MAX_BATCH", 1)
    stamp = datetime(2026, 2, 1, tzinfo=UTC)
    results = []
    for kill in (None, kill_after):
        with engine.begin() as conn:
            owner = insert_user(conn)
            ws, _ = add_workspace(conn, owner, 0, 0)
            project, root = issue_tree(conn, owner, ws)
            mark(conn, "issues", root, stamp)
        graph = handler.graph_for(settings.database_url)
        batches = [0]

        def dying(_conn, _table, _rows, kill=kill, batches=batches):  # type: ignore[no-untyped-def]
            batches[0] += 1
            if kill is not None and batches[0] == kill:
                raise Killed

        returning = {t: ("workspace_id",) for t in TREE_TABLES}
        if kill is not None:
            with pytest.raises(Killed):
                Cascade(engine, graph, Root("issues", root), returning=returning, on_marked=dying).run()
        outcome = Cascade(engine, graph, Root("issues", root)).run()
        assert outcome.status == "done"
        with engine.connect() as conn:
            # Ids differ between the two worlds: compare shapes (table, stamp) in id order.
            results.append(sorted((t, str(d)) for t, _, d in tree_state(conn, project.id)))
    clean, replayed = results
    assert replayed == clean
    assert ("comment_reactions", str(stamp)) in clean and ("issue_activities", "None") in clean


def test_set_null_and_do_nothing(settings, engine) -> None:
    """One issue soft-deleted: live rows outside it that point at it by SET_NULL lose the
    pointer (a soft-deleted one keeps it, as Plane's live-only manager leaves it); its activities
    (DO_NOTHING) stay live and keep pointing at it; rows of the subtree keep their pointers."""
    stamp = datetime(2026, 3, 1, tzinfo=UTC)
    with engine.begin() as conn:
        owner = insert_user(conn)
        ws, (project,) = add_workspace(conn, owner, 1, 8)
        root, other, gone = project.issues[0], project.issues[1], project.issues[2]
        mark(conn, "issues", gone, OLD)
        intake = insert_one(conn, "intakes", name="i", project_id=project.id, workspace_id=ws)

        def duplicate(of: uuid.UUID, on: uuid.UUID, deleted_at: datetime | None = None) -> uuid.UUID:
            scope = {"project_id": project.id, "workspace_id": ws, "extra": "{}", "deleted_at": deleted_at}
            row = {"intake_id": intake, "issue_id": on, "duplicate_to_id": of, "status": 2}
            return insert_one(conn, "intake_issues", **row, **scope)

        outside = duplicate(root, other)
        outside_deleted = duplicate(root, gone, OLD)
        inside = duplicate(other, root)  # of the subtree (issue_id CASCADE), pointing out: untouched
        sequence = insert_one(conn, "issue_sequences", issue_id=root, sequence=1, deleted=False,
                              project_id=project.id, workspace_id=ws)  # fmt: skip
        mark(conn, "issues", root, stamp)
        activities = conn.scalar(
            text("SELECT count(*) FROM issue_activities WHERE issue_id = :i"), {"i": root}
        )
    handler.handle(soft_delete_event("issues", root, "issue"), context(settings))
    with engine.connect() as conn:

        def pointer(row: uuid.UUID) -> tuple:
            return tuple(
                conn.execute(
                    text("SELECT duplicate_to_id, deleted_at FROM intake_issues WHERE id = :i"), {"i": row}
                ).one()
            )

        assert pointer(outside) == (None, None)
        assert pointer(outside_deleted) == (root, OLD)
        assert pointer(inside) == (other, stamp)
        assert (
            conn.scalar(text("SELECT issue_id FROM issue_sequences WHERE id = :i"), {"i": sequence}) is None
        )
        kept = conn.execute(
            text(
                "SELECT count(*), count(*) FILTER (WHERE deleted_at IS NULL) "
                "FROM issue_activities WHERE issue_id = :i"
            ),
            {"i": root},
        ).one()
        assert tuple(kept) == (activities, activities) and activities > 0
        assert conn.scalar(text("SELECT deleted_at FROM issues WHERE id = :i"), {"i": other}) is None
    sent = [e["data"] for e in embed_deletes(settings)]
    assert [(d["entity_type"], d["entity_id"], d["project_id"]) for d in sent] == [
        ("issue", str(root), str(project.id))
    ]


def test_a_live_root_is_left_and_a_stamp_deletes_it_first(settings, engine) -> None:
    with engine.begin() as conn:
        owner = insert_user(conn)
        ws, (project,) = add_workspace(conn, owner, 1, 4)
    ctx = context(settings)
    handler.handle(soft_delete_event("projects", project.id, "project"), ctx)  # restored since
    with engine.connect() as conn:
        assert state_of(conn, ws, OLD)["issues"][0] == 5
    assert processed(engine, "soft-deletes") == 1
    stamp = datetime(2026, 4, 1, tzinfo=UTC)
    by_table = soft_delete_event("projects", project.id).data  # by table, with a stamp
    by_operator = new_event(handler.EVENT_TYPE, {**by_table, "deleted_at": "2026-04-01T00:00:00Z"})
    handler.handle(by_operator, ctx)
    with engine.connect() as conn:
        after = state_of(conn, ws, stamp)
    assert (
        after["projects"] == (0, 1, 0) and after["issues"] == (0, 5, 0) and after["workspace_members"][0] == 1
    )


def test_a_missing_root_is_retried_and_bad_ids_are_permanent(settings, engine) -> None:
    ctx = context(settings)
    with pytest.raises(RootNotFound):
        handler.handle(soft_delete_event("issues", uuid.uuid4(), "issue"), ctx)

    for data, message in [
        (
            {"app_label": "db", "model_name": "nosuchmodel", "instance_pk": str(uuid.uuid4())},
            "unknown soft-deletable",
        ),
        (
            {"app_label": "db", "model_name": "user", "instance_pk": str(uuid.uuid4())},
            "unknown soft-deletable",
        ),
        ({"model_name": "issue", "instance_pk": 42}, "keyed by uuid"),
        ({"model_name": "issue", "table": "pages", "instance_pk": str(uuid.uuid4())}, "is table issues"),
        ({"table": "users", "instance_pk": str(uuid.uuid4())}, "has no deleted_at"),
    ]:
        with pytest.raises(PermanentError, match=message):
            handler.handle(new_event(handler.EVENT_TYPE, data), ctx)
    assert processed(engine, "soft-deletes") == 0


def test_malformed_events_are_dead_lettered_and_the_consumer_goes_on(settings, engine, tmp_path) -> None:
    stamp = datetime(2026, 5, 1, tzinfo=UTC)
    with engine.begin() as conn:
        owner = insert_user(conn)
        ws, (project,) = add_workspace(conn, owner, 1, 3)
        mark(conn, "projects", project.id, stamp)
    producer = EventProducer(settings)
    topic = settings.topic(handler.TOPIC)
    key = str(project.id)
    bad = [
        {"app_label": "db", "model_name": "nosuchmodel", "instance_pk": key},  # unknown model
        {"app_label": "db", "model_name": "project", "instance_pk": 42},  # an integer for a uuid key
    ]
    for data in bad:
        envelope = soft_delete_event("projects", project.id, "project").to_dict() | {"data": data}
        producer.send_raw(topic, json.dumps(envelope).encode(), key=key)
    schema_bad = soft_delete_event("projects", project.id, "project").to_dict()
    schema_bad["data"] = {"model_name": "project", "instance_pk": "not-a-uuid"}
    producer.send_raw(topic, json.dumps(schema_bad).encode(), key=key)
    producer.send(handler.TOPIC, soft_delete_event("projects", project.id, "project"), key=key)
    log = (tmp_path / "consumer.log").open("wb")
    consumer = spawn_consumer("soft-deletes", settings, stderr=log)
    try:
        wait_until(lambda: processed(engine, "soft-deletes") == 1, timeout_s=90, interval_s=0.2)
        letters = wait_until(lambda: (d := dead_letters(settings, handler.TOPIC)) and len(d) >= 3 and d, 60)
        assert consumer.poll() is None, "the consumer died"
    finally:
        stop_processes([consumer])
    messages = sorted(letter["headers"][h.ERROR_MESSAGE] for letter in letters)
    assert len(letters) == 3, messages
    assert all(letter["headers"][h.ATTEMPTS] == "1" for letter in letters)
    assert any("unknown soft-deletable model db.nosuchmodel" in m for m in messages), messages
    assert any("keyed by uuid" in m for m in messages), messages
    classes = {letter["headers"][h.ERROR_CLASS] for letter in letters}
    assert "InvalidEvent.schema_violation" in classes, classes
    with engine.connect() as conn:
        assert state_of(conn, ws, stamp)["issues"] == (0, 3, 0)


def subtree_state(engine: Engine) -> list[tuple]:
    with engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                text(
                    "SELECT s.phase, s.stamp, count(r.id) FROM plane_workers.soft_delete_subtrees s "
                    "LEFT JOIN plane_workers.soft_delete_subtree_rows r ON r.subtree_id = s.id "
                    "GROUP BY s.id ORDER BY s.id"
                )
            )
        ]


def test_collecting_is_bounded_per_call_and_resumes_from_the_table(
    settings, engine, ws_world, monkeypatch
) -> None:
    """With no time budget and small collecting statements, each call does one statement and
    leaves its collection in plane_workers (no temporary table, no session kept between calls);
    the next call goes on from the cursor, and no row of Plane's changes until it is complete."""
    monkeypatch.setattr(cascade_module, "COLLECT_ROWS", 500)
    monkeypatch.setattr(cascade_module, "COLLECT_PARENTS", 200)
    graph = handler.graph_for(settings.database_url)
    root = Root("workspaces", ws_world.dead)
    sizes, calls = [], 0
    while True:
        outcome = Cascade(engine, graph, root, deadline=0.0).run()
        calls += 1
        phase, stamp, rows = subtree_state(engine)[0]
        assert stamp == ws_world.stamp
        if outcome.rows:
            break
        assert outcome.status == "paused" and outcome.collect_statements <= 1, outcome
        assert phase in ("collecting", "marking")
        sizes.append(rows)
        with engine.connect() as conn:
            assert sum(n for _, n, _ in state_of(conn, ws_world.dead, ws_world.stamp).values()) == 0
    assert calls > 20 and sizes == sorted(sizes) and sizes[-1] > 5000, (calls, sizes[-3:])
    # A fan-out larger than COLLECT_ROWS (a project's issue links) was collected in pieces.
    while Cascade(engine, graph, root, deadline=0.0).run().status == "paused":
        pass
    assert subtree_state(engine) == []  # dropped when the cascade finished
    with engine.connect() as conn:
        after = state_of(conn, ws_world.dead, ws_world.stamp)
    assert all(live == 0 for live, _, _ in after.values()), after


def test_a_root_stamped_anew_discards_its_old_collection(settings, engine, ws_world, monkeypatch) -> None:
    monkeypatch.setattr(cascade_module, "COLLECT_ROWS", 500)
    graph = handler.graph_for(settings.database_url)
    root = Root("workspaces", ws_world.dead)
    for _ in range(5):
        assert Cascade(engine, graph, root, deadline=0.0).run().status == "paused"
    (first,) = subtree_state(engine)
    assert first[0] == "collecting" and first[2] > 1
    # Restored: the next call finds the root live and discards the collection.
    with engine.begin() as conn:
        conn.execute(text("UPDATE workspaces SET deleted_at = NULL WHERE id = :w"), {"w": ws_world.dead})
    assert Cascade(engine, graph, root).run().status == "live"
    assert [s[0] for s in subtree_state(engine)] == ["discarded"]
    # Deleted again: collected anew for the new stamp, the discarded rows left to prune.
    again = ws_world.stamp + timedelta(hours=1)
    with engine.begin() as conn:
        mark(conn, "workspaces", ws_world.dead, again)
    assert Cascade(engine, graph, root).run().status == "done"
    assert [s[0] for s in subtree_state(engine)] == ["discarded"]
    with engine.connect() as conn:
        after = state_of(conn, ws_world.dead, again)
    assert all(live == 0 for live, _, _ in after.values()), after


def test_a_soft_delete_committed_after_the_event_arrived_still_cascades(
    settings, engine, monkeypatch
) -> None:
    """Plane queues the task inside the delete's transaction: the event can arrive first. The
    root is read FOR SHARE, which waits for that transaction; one that commits 2 s later
    cascades, one held past ROOT_WAIT_MS is a retried lock timeout, one rolled back is live."""
    import threading

    from sqlalchemy.exc import OperationalError

    stamp = datetime(2026, 6, 1, tzinfo=UTC)
    with engine.begin() as conn:
        owner = insert_user(conn)
        ws, (project, other, third) = add_workspace(conn, owner, 3, 4)
    ctx = context(settings)

    def delete_later(project_id: uuid.UUID, hold_s: float, commit: bool) -> threading.Thread:
        started = threading.Event()

        def run() -> None:
            with engine.connect() as conn:
                mark(conn, "projects", project_id, stamp)
                started.set()
                time.sleep(hold_s)
                conn.commit() if commit else conn.rollback()

        thread = threading.Thread(target=run)
        thread.start()
        started.wait(5)
        return thread

    thread = delete_later(project.id, 2.0, commit=True)
    began = time.monotonic()
    handler.handle(soft_delete_event("projects", project.id, "project"), ctx)
    waited = time.monotonic() - began
    thread.join()
    assert waited >= 1.5, waited
    with engine.connect() as conn:
        assert state_of(conn, ws, stamp)["issues"] == (10, 5, 0)  # this project's 5, others live
    assert processed(engine, "soft-deletes") == 1

    monkeypatch.setattr(cascade_module, "ROOT_WAIT_MS", 300)
    thread = delete_later(other.id, 2.0, commit=True)
    late = soft_delete_event("projects", other.id, "project")
    with pytest.raises(OperationalError, match="lock timeout"):  # transient: the retry tiers
        handler.handle(late, ctx)
    thread.join()
    assert processed(engine, "soft-deletes") == 1
    handler.handle(late, ctx)  # the retry tier's attempt
    with engine.connect() as conn:
        assert state_of(conn, ws, stamp)["issues"] == (5, 10, 0)

    monkeypatch.setattr(cascade_module, "ROOT_WAIT_MS", 5000)
    thread = delete_later(third.id, 1.0, commit=False)
    handler.handle(soft_delete_event("projects", third.id, "project"), ctx)
    thread.join()
    with engine.connect() as conn:
        assert state_of(conn, ws, stamp)["issues"] == (5, 10, 0)
    assert processed(engine, "soft-deletes") == 3


def test_embed_deletes_go_after_commit_and_none_is_lost_to_a_kill(settings, engine, monkeypatch) -> None:
    """The embed deletes of a batch are sent once it committed (its rows are no longer locked),
    from what the batch recorded in the collection; a call killed before sending them sends them
    on the replay, and the event is claimed after the last."""
    monkeypatch.setattr(cascade_module, "FIRST_BATCH", 3)
    monkeypatch.setattr(cascade_module, "MAX_BATCH", 3)
    stamp = datetime(2026, 7, 1, tzinfo=UTC)
    with engine.begin() as conn:
        owner = insert_user(conn)
        ws, (project,) = add_workspace(conn, owner, 1, 12, pages=0)
        mark(conn, "projects", project.id, stamp)
    ctx = context(settings)
    sent_batches: list[list[str]] = []
    killed: list[list[str]] = []
    real_send = handler._send_embed_deletes

    def send(ctx_, table, rows, deleted_at):  # type: ignore[no-untyped-def]
        ids = [r["id"] for r in rows]
        with engine.connect() as other:  # the batch's rows are not locked any more
            other.execute(text("SET lock_timeout = 100"))
            other.execute(
                text("SELECT 1 FROM issues WHERE id = ANY(CAST(:i AS uuid[])) FOR UPDATE"), {"i": ids}
            )
            other.rollback()
        if len(sent_batches) == 2 and not killed:
            killed.append(ids)
            raise Killed  # after the batch committed, before its events went out
        real_send(ctx_, table, rows, deleted_at)
        sent_batches.append(ids)

    monkeypatch.setattr(handler, "_send_embed_deletes", send)
    event = soft_delete_event("projects", project.id, "project")
    with pytest.raises(Killed):
        handler.handle(event, ctx)
    assert processed(engine, "soft-deletes") == 0
    with engine.connect() as conn:
        pending = conn.scalar(
            text("SELECT count(*) FROM plane_workers.soft_delete_subtree_rows WHERE layer = -1")
        )
    assert pending == 3
    handler.handle(event, ctx)
    assert processed(engine, "soft-deletes") == 1
    with engine.connect() as conn:
        marked = content_ids(conn, "issues", ws, stamp)
    told = [e["data"]["entity_id"] for e in embed_deletes(settings)]
    assert set(told) == marked and len(marked) == 12 + 3 and len(told) == len(marked)
    assert subtree_state(engine) == []


def test_the_fk_graph_is_read_again_after_its_ttl_and_when_a_table_is_gone(
    settings, engine, monkeypatch
) -> None:
    """A table Plane adds is cascaded into once the graph is read again (GRAPH_TTL_S); a table
    the cached graph names but that is gone fails the event (retried) and drops the graph."""
    url = settings.database_url
    handler.forget_graph(url)
    ddl = (
        "CREATE TABLE issue_extras (id uuid PRIMARY KEY, issue_id uuid NOT NULL REFERENCES issues(id), "
        "deleted_at timestamptz)"
    )
    stamp = datetime(2026, 8, 1, tzinfo=UTC)
    with engine.begin() as conn:
        owner = insert_user(conn)
        ws, (project,) = add_workspace(conn, owner, 1, 4)
    first = handler.graph_for(url)
    with engine.begin() as conn:
        conn.execute(text(ddl))
        for issue in project.issues:
            conn.execute(text("INSERT INTO issue_extras VALUES (gen_random_uuid(), :i, NULL)"), {"i": issue})
    assert handler.graph_for(url) is first  # cached
    monkeypatch.setattr(handler, "GRAPH_TTL_S", 0.0)
    fresh = handler.graph_for(url)
    assert fresh is not first and "issue_extras" in fresh.soft_deletable
    monkeypatch.setattr(handler, "GRAPH_TTL_S", 300.0)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE issue_extras"))
        mark(conn, "projects", project.id, stamp)
    event = soft_delete_event("projects", project.id, "project")
    with pytest.raises(Exception, match="issue_extras"):
        handler.handle(event, context(settings))
    assert handler.graph_for(url) is not fresh  # dropped, read again
    handler.handle(event, context(settings))
    with engine.connect() as conn:
        assert state_of(conn, ws, stamp)["issues"] == (0, 5, 0)


def test_the_subtree_models_match_the_migration(engine) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from shared.db.base import StateBase

    tables = {"soft_delete_subtrees", "soft_delete_subtree_rows"}

    def ours(obj, name, type_, reflected, compare_to) -> bool:  # type: ignore[no-untyped-def]
        table = obj if type_ == "table" else getattr(obj, "table", None)
        return table is None or (table.schema == "plane_workers" and table.name in tables)

    with engine.connect() as conn:
        context_ = MigrationContext.configure(
            conn, opts={"include_schemas": True, "include_object": ours, "compare_type": True}
        )
        assert compare_metadata(context_, StateBase.metadata) == []
