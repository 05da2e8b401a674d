"""The `pages` consumer on real PostgreSQL (Plane's schema) and a real broker.

Plane's rules are checked by calling the batch handler in a transaction, as the batch runtime
calls it; replays, the embed events and bad input go through the broker and the runtime.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, text

from services.pages import handler
from services.pages.samples import PageWorld, image, mention, page, seed, transaction_event, version_event
from shared import registry
from shared.db.engine import session_factory
from shared.events import Event
from shared.events.producer import EventProducer
from shared.kafka import headers as h
from shared.kafka.handler import HandlerContext, PermanentError
from shared.settings import Settings
from shared.testing.topics import read_topic
from tests.helpers import consumer_thread, dead_letters, processed, wait_until

SPEC = registry.consumer("pages")


@pytest.fixture
def pw(engine: Engine) -> PageWorld:
    return seed(engine, 2)


def run(settings: Settings, *events: Event) -> None:
    producer = EventProducer(settings)
    try:
        with session_factory(settings.database_url).begin() as session:
            handler.handle_batch(list(events), HandlerContext(SPEC.name, settings, producer, session))
    finally:
        producer.close()


def logs(engine: Engine, page_id: uuid.UUID) -> list[tuple]:
    """(transaction, entity_name, entity_identifier, entity_type, workspace, live) by transaction."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT transaction, entity_name, entity_identifier, entity_type, workspace_id,"
                " deleted_at IS NULL FROM page_logs WHERE page_id = :p ORDER BY transaction"
            ),
            {"p": page_id},
        ).all()
    return [tuple(r) for r in rows]


def versions(engine: Engine, page_id: uuid.UUID, live_only: bool = True) -> list:
    with engine.connect() as conn:
        return conn.execute(
            text(
                "SELECT * FROM page_versions WHERE page_id = :p"
                + (" AND deleted_at IS NULL" if live_only else "")
                + " ORDER BY last_saved_at, created_at"
            ),
            {"p": page_id},
        ).all()


def set_page(engine: Engine, page_id: uuid.UUID, html: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE pages SET description_html = :h, updated_at = now() WHERE id = :p"),
            {"h": html, "p": page_id},
        )


# --- page_transaction -----------------------------------------------------------------------------


def test_mentions_and_images_are_logged_as_plane_logs_them(engine, settings, pw) -> None:
    page_id, user = pw.pages[0], pw.users[1].id
    m, img, odd_src, no_id, bad_id = (uuid.uuid4() for _ in range(5))
    asset = uuid.uuid4()
    html = (
        f"<p>hi {mention(m, user)}</p>{image(img, asset)}"
        f"{image(odd_src, 'https://cdn.example/a.png')}"  # not an asset id: logged without one
        f'<mention-component entity_name="user_mention" entity_identifier="{user}"></mention-component>'
        f'<image-component id="not-a-uuid" src="{asset}"></image-component>'
        f'<mention-component id="{bad_id}" entity_identifier="{user}"></mention-component>'  # no name
    )
    run(settings, transaction_event(page_id, html))
    assert logs(engine, page_id) == sorted(
        [
            (m, "user_mention", user, None, pw.workspace_id, True),
            (img, "image", asset, None, pw.workspace_id, True),
            (odd_src, "image", None, None, pw.workspace_id, True),
        ]
    )
    assert no_id not in {row[0] for row in logs(engine, page_id)}


def test_a_save_logs_new_components_and_removes_gone_ones_of_this_page_only(engine, settings, pw) -> None:
    """A duplicated page carries the same component ids (Plane copies the HTML): removing one
    from the original must leave the copy's log alone (Plane's delete is not scoped by page)."""
    original, copy = pw.pages
    kept, gone, added = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    target = pw.users[1].id
    before = f"<p>{mention(kept, target)}{mention(gone, target)}</p>"
    run(settings, transaction_event(original, before), transaction_event(copy, before))
    copy_logs = logs(engine, copy)

    after = f"<p>{mention(kept, target)}{mention(added, uuid.uuid4(), 'issue_mention')}</p>"
    run(settings, transaction_event(original, after, before))
    live = {(row[0], row[1]): row[5] for row in logs(engine, original)}
    assert live == {
        (kept, "user_mention"): True,
        (gone, "user_mention"): False,
        (added, "issue_mention"): True,
    }
    assert logs(engine, copy) == copy_logs
    assert all(row[5] for row in copy_logs)


def test_a_component_still_there_with_a_bad_entity_name_keeps_its_log(engine, settings, pw) -> None:
    """Removal compares component ids, as Plane's does: a mention whose entity_name went bad
    (not loggable) is still in the page, so its earlier log stays live."""
    page_id, c = pw.pages[0], uuid.uuid4()
    good = f"<p>{mention(c, pw.users[1].id)}</p>"
    run(settings, transaction_event(page_id, good))
    bad = good.replace('entity_name="user_mention"', 'entity_name="' + "x" * 40 + '"')
    assert bad != good
    run(settings, transaction_event(page_id, bad, good))
    assert [(row[0], row[5]) for row in logs(engine, page_id)] == [(c, True)]


def test_known_components_are_logged_when_the_page_has_no_logs_yet(engine, settings, pw) -> None:
    """Plane's has_existing_logs rule: an old component counts as logged only if the page has
    live logs; a page saved before the consumer ran gets all of its components."""
    page_id, known = pw.pages[0], uuid.uuid4()
    html = f"<p>{mention(known, pw.users[0].id)}</p>"
    run(settings, transaction_event(page_id, html, html))
    assert [row[0] for row in logs(engine, page_id)] == [known]


def test_a_component_put_back_is_live_again_and_replaying_changes_nothing(engine, settings, pw) -> None:
    page_id, c = pw.pages[0], uuid.uuid4()
    with_c = f"<p>{mention(c, pw.users[1].id)}</p>"
    run(settings, transaction_event(page_id, with_c))
    run(settings, transaction_event(page_id, "<p></p>", with_c))
    assert [row[5] for row in logs(engine, page_id)] == [False]
    undo = transaction_event(page_id, with_c, "<p></p>")  # Plane leaves it deleted for ever
    run(settings, undo)
    once = logs(engine, page_id)
    assert [row[5] for row in once] == [True]
    run(settings, undo)  # the handler itself, without the runtime's claim
    assert logs(engine, page_id) == once


# --- track_page_version ---------------------------------------------------------------------------


def test_versions_follow_plane_window_owner_and_unchanged_rules(engine, settings, pw) -> None:
    page_id, (alice, bob, _) = pw.pages[0], pw.users
    set_page(engine, page_id, "<p>v1</p>")
    run(settings, version_event(page_id, alice.id))
    (first,) = versions(engine, page_id)
    assert (first.owned_by_id, first.created_by_id, first.description_html) == (
        alice.id,
        alice.id,
        "<p>v1</p>",
    )
    assert first.description_json == {"type": "doc", "content": [{"type": "paragraph"}]}
    assert (bytes(first.description_binary), first.description_stripped) == (b"\x01yjs", "page")
    assert (first.sub_pages_data, first.workspace_id) == ({}, pw.workspace_id)

    # The same user within 10 minutes: amended; last_saved_at stays (Plane's window is from creation).
    set_page(engine, page_id, "<p>v2</p>")
    run(settings, version_event(page_id, alice.id, "<p>v1</p>"))
    (amended,) = versions(engine, page_id)
    assert (amended.id, amended.description_html) == (first.id, "<p>v2</p>")
    assert amended.last_saved_at == first.last_saved_at and amended.updated_at > first.updated_at

    # The description as it was before the save: nothing.
    run(settings, version_event(page_id, bob.id, "<p>v2</p>"))
    assert len(versions(engine, page_id)) == 1

    # Another user: a version of its own.
    set_page(engine, page_id, "<p>v3</p>")
    run(settings, version_event(page_id, bob.id, "<p>v2</p>"))
    assert [(v.owned_by_id, v.description_html) for v in versions(engine, page_id)] == [
        (alice.id, "<p>v2</p>"),
        (bob.id, "<p>v3</p>"),
    ]

    # Bob again, but his version (still the newest) is 601 s old: a new version.
    with engine.begin() as conn:
        conn.execute(text("UPDATE page_versions SET last_saved_at = last_saved_at - interval '601 seconds'"))
    set_page(engine, page_id, "<p>v4</p>")
    run(settings, version_event(page_id, bob.id, "<p>v3</p>"))
    assert [v.description_html for v in versions(engine, page_id)] == ["<p>v2</p>", "<p>v3</p>", "<p>v4</p>"]
    assert versions(engine, pw.pages[1]) == []


def test_the_twenty_first_version_soft_deletes_the_oldest(engine, settings, pw) -> None:
    page_id, (alice, bob, _) = pw.pages[0], pw.users
    start = datetime.now(UTC) - timedelta(hours=5)
    with engine.begin() as conn:
        for n in range(20):
            conn.execute(
                text(
                    "INSERT INTO page_versions (id, created_at, updated_at, last_saved_at, description_html,"
                    " description_json, sub_pages_data, owned_by_id, page_id, workspace_id)"
                    " VALUES (gen_random_uuid(), :t, :t, :t, :h, '{}', '{}', :u, :p, :w)"
                ),
                {
                    "t": start + timedelta(minutes=n),
                    "h": f"<p>{n}</p>",
                    "u": bob.id,
                    "p": page_id,
                    "w": pw.workspace_id,
                },
            )
    set_page(engine, page_id, "<p>new</p>")
    run(settings, version_event(page_id, alice.id, "<p>19</p>"))
    live = versions(engine, page_id)
    assert len(live) == 20
    assert [v.description_html for v in live] == [f"<p>{n}</p>" for n in range(1, 20)] + ["<p>new</p>"]
    (dropped,) = [v for v in versions(engine, page_id, live_only=False) if v.deleted_at is not None]
    assert dropped.description_html == "<p>0</p>"


def test_bad_existing_instance_and_unknown_user_are_permanent(engine, settings, pw) -> None:
    page_id = pw.pages[0]
    bad_json = replace(version_event(page_id, pw.users[0].id), data={
        "page_id": str(page_id), "existing_instance": "{not json", "user_id": str(pw.users[0].id),
    })  # fmt: skip
    with pytest.raises(PermanentError, match="existing_instance is not a JSON string"):
        run(settings, bad_json)
    with pytest.raises(PermanentError, match="does not exist"):
        run(settings, version_event(page_id, uuid.uuid4()))
    assert versions(engine, page_id) == []


# --- through the broker ---------------------------------------------------------------------------


def embeds(settings: Settings) -> dict[str, dict]:
    return {
        (d := json.loads(m.value()))["id"]: d
        for m in read_topic(settings, settings.topic(handler.EMBEDDINGS_TOPIC))
    }


def test_replayed_events_change_nothing_and_each_save_embeds_the_page_once(engine, settings, pw) -> None:
    page_id, marker_page = pw.pages
    c = uuid.uuid4()
    html = f"<p>{mention(c, pw.users[1].id)}</p>"
    set_page(engine, page_id, html)
    events = [transaction_event(page_id, html), version_event(page_id, pw.users[0].id)]
    producer = EventProducer(settings)
    key = str(page_id)
    with consumer_thread(SPEC, settings):
        for event in events:
            producer.send(SPEC.topic, event, key=key)
        wait_until(lambda: processed(engine, SPEC.name) == 2)
        before = (logs(engine, page_id), versions(engine, page_id))
        for event in events:  # the same ids again, as after a crash before the commit of offsets
            producer.send(SPEC.topic, event, key=key)
        producer.send(SPEC.topic, transaction_event(marker_page, "<p></p>"), key=key)  # after them
        wait_until(lambda: processed(engine, SPEC.name) == 3)
    producer.close()
    assert (logs(engine, page_id), versions(engine, page_id)) == before
    assert len(before[0]) == 1 and len(before[1]) == 1
    sent = embeds(settings)
    assert len(sent) == 3  # one per event processed (a replay is skipped before the handler)
    mine = [d for d in sent.values() if d["data"]["entity_id"] == str(page_id)]
    assert sorted(d["data"]["reason"] for d in mine) == sorted(handler.EVENT_TYPES)
    assert {
        (d["type"], d["data"]["action"], d["data"]["entity_type"], d["data"]["workspace_id"]) for d in mine
    } == {("plane.embed.v1", "upsert", "page", str(pw.workspace_id))}


def test_malformed_events_are_dead_lettered_and_the_page_goes_on(engine, settings, pw) -> None:
    page_id = pw.pages[0]
    producer = EventProducer(settings)
    topic, key = settings.topic(SPEC.topic), str(page_id).encode()
    not_uuid = transaction_event(page_id, "<p></p>").to_dict()
    not_uuid["data"]["page_id"] = "page-1"
    producer.send_raw(topic, json.dumps(not_uuid).encode(), key=key)
    producer.send_raw(topic, b"{ not json", key=key)
    bad_instance = version_event(page_id, pw.users[0].id).to_dict()
    bad_instance["data"]["existing_instance"] = "{not json"
    producer.send_raw(topic, json.dumps(bad_instance).encode(), key=key)
    producer.send(SPEC.topic, version_event(page_id, uuid.uuid4()), key=str(page_id))  # no such user
    c = uuid.uuid4()
    producer.send(
        SPEC.topic, transaction_event(page_id, f"<p>{mention(c, pw.users[1].id)}</p>"), key=str(page_id)
    )
    producer.close()
    with consumer_thread(SPEC, settings):
        letters = wait_until(lambda: (d := dead_letters(settings, SPEC.topic)) and len(d) >= 4 and d, 120)
        wait_until(lambda: len(logs(engine, page_id)) == 1)
    classes = sorted(d["headers"][h.ERROR_CLASS] for d in letters)
    assert len(letters) == 4, classes
    assert sum(c.startswith("InvalidEvent.") for c in classes) == 2, classes
    assert classes.count("shared.kafka.handler.PermanentError") == 2, classes
    assert [row[0] for row in logs(engine, page_id)] == [c]
    assert versions(engine, page_id) == []


def test_a_missing_page_is_retried_then_dead_lettered(engine, settings, pw) -> None:
    fast = replace(SPEC, retry_delays_s=(0.2, 0.2))
    missing = uuid.uuid4()
    EventProducer(settings).send(SPEC.topic, transaction_event(missing, "<p></p>"), key=str(missing))
    with consumer_thread(fast, settings):
        letters = wait_until(lambda: dead_letters(settings, SPEC.topic), timeout_s=60)
    assert len(letters) == 1
    assert letters[0]["headers"][h.ERROR_CLASS].endswith("PageNotFound")
    assert letters[0]["headers"][h.ATTEMPTS] == "3"  # first try + two retries


def test_a_deleted_page_is_left_alone(engine, settings, pw) -> None:
    with engine.begin() as conn:
        deleted = page(conn, pw.workspace_id, pw.users[0].id, "<p>x</p>", deleted_at=datetime.now(UTC))
    c = uuid.uuid4()
    run(
        settings,
        transaction_event(deleted, f"<p>{mention(c, pw.users[1].id)}</p>"),
        version_event(deleted, pw.users[0].id),
    )
    assert logs(engine, deleted) == [] and versions(engine, deleted) == []
