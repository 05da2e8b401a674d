"""The `emails` consumer end to end: the embedded broker, PostgreSQL, and SMTP servers over the
wire that answer 4xx, 5xx and 421, drop the connection mid-DATA, hang, or never greet."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from email.message import Message

import pytest

from services.emails import catalogue, handler
from shared import registry
from shared.events import new_event
from shared.events.producer import EventProducer
from shared.settings import Settings
from shared.testing.topics import read_topic
from tests.helpers import consumer_thread, dead_letters, processed, wait_until
from tests.integration.smtp_servers import ScriptedSMTP, SilentServer

EMAILS = registry.consumer("emails")
# Tiers of 0.2 s: a deferred mail comes back at once, but still through the retry topics.
FAST = replace(EMAILS, retry_delays_s=(0.2, 0.2, 0.2))


def magic(to: str, token: str = "123456") -> object:
    return new_event("plane.email.magic_link.v1", {"email": to, "key": f"magic_{to}", "token": token})


def mail_settings(settings: Settings, port: int, **overrides: object) -> Settings:
    return replace(
        settings,
        email_host="127.0.0.1",
        email_port=port,
        email_use_tls=False,
        email_use_ssl=False,
        email_timeout_s=1.0,
        email_rate_limit_per_s=0.0,
        **overrides,
    )


def produce(settings: Settings, events: list) -> None:  # type: ignore[type-arg]
    producer = EventProducer(settings)
    producer.send_many(EMAILS.topic, [(e.data.get("email") or e.id, e) for e in events])
    producer.close()


def parts(message: Message) -> dict[str, str]:
    return {
        p.get_content_type(): p.get_payload(decode=True).decode()  # type: ignore[union-attr]
        for p in message.walk()
        if not p.is_multipart()
    }


@pytest.fixture
def server():  # type: ignore[no-untyped-def]
    servers: list[ScriptedSMTP] = []

    def start(plan: dict | None = None, port: int | None = None) -> ScriptedSMTP:  # type: ignore[type-arg]
        servers.append(ScriptedSMTP(plan, port).start())
        return servers[-1]

    yield start
    for s in servers:
        s.stop()


def test_registry_lists_exactly_the_catalogue() -> None:
    assert EMAILS.event_types == tuple(m.event_type for m in catalogue.MAIL_TYPES)
    assert set(registry.EMAIL_TYPES) == {m.name for m in catalogue.MAIL_TYPES}


def test_each_mail_once_over_kept_connections_with_its_event_as_message_id(settings, engine, server) -> None:
    """20 sign-in codes, one of them produced twice: 20 mails over the LANES kept connections, each
    with Plane's subject, both parts carrying the code, a Message-ID derived from its event."""
    smtp = server()
    s = mail_settings(settings, smtp.port)
    events = [magic(f"user{n}@example.com", token=f"{n:06d}") for n in range(20)]
    produce(s, [*events, events[3]])
    with consumer_thread(EMAILS, s):
        wait_until(lambda: len(smtp.messages) >= 20, 60)
        wait_until(lambda: processed(engine, EMAILS.name) == 20, 30)
    assert len(smtp.messages) == 20 and smtp.connections == handler.LANES
    by_rcpt = {m.recipients[0]: m.message for m in smtp.messages}
    for n, event in enumerate(events):
        message = by_rcpt[f"user{n}@example.com"]
        assert message["Subject"] == f"Your unique Plane login code is {n:06d}"
        assert message["Message-ID"].startswith(f"<{event.id.replace('-', '')[:32]}.")
        body = parts(message)
        assert f"{n:06d}" in body["text/plain"] and f"{n:06d}" in body["text/html"]


def test_4xx_is_retried_in_tiers_and_5xx_dead_lettered_with_the_servers_reply(settings, server) -> None:
    smtp = server({"grey": ["451", "ok"], "full": ["452", "452", "ok"], "nobody": ["550"], "policy": ["554"]})
    s = mail_settings(settings, smtp.port)
    names = ("grey", "full", "nobody", "policy", "fine")
    produce(s, [magic(f"{n}@example.com") for n in names])
    with consumer_thread(FAST, s):
        wait_until(lambda: len(smtp.messages) >= 3, 60)
        wait_until(lambda: len(dead_letters(s, EMAILS.topic)) >= 2, 30)
    assert sorted(m.recipients[0] for m in smtp.messages) == [
        "fine@example.com",
        "full@example.com",
        "grey@example.com",
    ]
    assert (smtp.attempts("grey@example.com"), smtp.attempts("full@example.com")) == (2, 3)
    letters = {d["value"]["data"]["email"]: d["headers"] for d in dead_letters(s, EMAILS.topic)}
    assert set(letters) == {"nobody@example.com", "policy@example.com"}
    assert "550 scripted reply" in letters["nobody@example.com"]["error-message"]
    assert "554 scripted reply" in letters["policy@example.com"]["error-message"]
    assert smtp.attempts("nobody@example.com") == 1, "a 5xx is not tried again"


def test_a_connection_dropped_or_silent_during_data_is_retried_until_delivered(settings, server) -> None:
    """After DATA the server may have the mail: retried (at least once), never lost."""
    smtp = server({"dropped": ["close", "ok"], "slow": ["hang", "ok"]})
    s = mail_settings(settings, smtp.port)
    produce(s, [magic("dropped@example.com"), magic("slow@example.com"), magic("after@example.com")])
    with consumer_thread(FAST, s):
        wait_until(lambda: len(smtp.messages) >= 3, 60)
    assert sorted(m.recipients[0] for m in smtp.messages) == [
        "after@example.com",
        "dropped@example.com",
        "slow@example.com",
    ]
    assert smtp.attempts("dropped@example.com") == 2 and smtp.attempts("slow@example.com") == 2
    assert dead_letters(s, EMAILS.topic) == []


def test_a_server_that_never_answers_or_says_421_holds_the_mail_without_spending_retries(
    settings, engine, server
) -> None:
    """A hung server (no greeting: every connect times out) holds the partition; the mails wait,
    nothing is dead-lettered or sent to a retry tier. Once a server answers on that port, all of
    them go, once; its 421 ("closing") holds again rather than counting against the mail."""
    silent = SilentServer()
    s = mail_settings(settings, silent.port)
    events = [magic(f"waiting{n}@example.com") for n in range(5)]
    produce(s, events)
    with consumer_thread(FAST, s):
        wait_until(lambda: silent.accepted >= 2, 30)  # tried, timed out, tried again
        assert processed(engine, EMAILS.name) == 0
        silent.close()
        smtp = server({"waiting0": ["421", "ok"]}, port=silent.port)
        wait_until(lambda: len(smtp.messages) >= 5, 60)
        wait_until(lambda: processed(engine, EMAILS.name) == 5, 30)
    assert sorted(m.recipients[0] for m in smtp.messages) == sorted(e.data["email"] for e in events)
    assert smtp.attempts("waiting0@example.com") == 2
    assert dead_letters(s, EMAILS.topic) == []
    for tier in FAST.retry_topics:
        assert read_topic(s, s.topic(tier)) == [], f"{tier} got a held mail"


def test_malformed_events_are_dead_lettered_and_the_rest_still_go(settings, server) -> None:
    smtp = server()
    s = mail_settings(settings, smtp.port)
    no_token = magic("a@example.com").to_dict()
    del no_token["data"]["token"]
    unknown = magic("b@example.com").to_dict() | {"type": "plane.email.no_such_mail.v1"}
    producer = EventProducer(s)
    for key, value in [
        ("a@example.com", json.dumps(no_token).encode()),
        ("b@example.com", json.dumps(unknown).encode()),
        ("c@example.com", b"\x00not json"),
        ("d@example.com", json.dumps({"specversion": "1.0"}).encode()),
    ]:
        producer.send_raw(s.topic(EMAILS.topic), value, key=key)
    producer.close()
    produce(s, [magic("good@example.com")])
    with consumer_thread(EMAILS, s):
        wait_until(lambda: len(dead_letters(s, EMAILS.topic)) >= 4, 60)
        wait_until(lambda: len(smtp.messages) >= 1, 30)
    assert [m.recipients for m in smtp.messages] == [("good@example.com",)]
    classes = sorted(d["headers"]["error-class"] for d in dead_letters(s, EMAILS.topic))
    assert all(c.startswith("InvalidEvent.") for c in classes), classes


def test_a_broken_plane_template_falls_back_to_the_built_in_mail(settings, server, tmp_path) -> None:
    smtp = server()
    broken = tmp_path / "emails" / "auth" / "magic_signin.html"
    broken.parent.mkdir(parents=True)
    broken.write_text("{% if %}never renders")
    s = mail_settings(settings, smtp.port, plane_templates_dir=str(tmp_path))
    produce(s, [magic("fallback@example.com", token="424242")])
    with consumer_thread(EMAILS, s):
        wait_until(lambda: smtp.messages, 60)
    [mail] = smtp.messages
    body = parts(mail.message)
    assert "424242" in body["text/html"] and "never renders" not in body["text/html"]


def test_a_failure_mid_batch_never_sends_the_mails_before_it_again(settings, engine, server) -> None:
    """One batch: two mails go, the third gets 421 (the server goes away), so it and those after
    it wait; a user that does not exist (a savepoint's read) and a 550 fail alone. When the batch
    comes again, the mails already taken are skipped, never sent twice."""
    smtp = server({"closing": ["421", "ok"], "nobody": ["550"]})
    s = mail_settings(settings, smtp.port)
    gone = new_event(
        "plane.email.user_activation.v1",
        {"current_site": "https://plane.example", "user_id": str(uuid.uuid4())},
    )
    names = ("first", "second", "closing", "nobody", "after")
    events = [magic(f"{n}@example.com") for n in names[:4]] + [gone, magic("after@example.com")]
    produce(s, events)
    with consumer_thread(FAST, s):
        wait_until(lambda: len(smtp.messages) >= 4, 60)
        wait_until(lambda: len(dead_letters(s, EMAILS.topic)) >= 1, 30)
        wait_until(lambda: processed(engine, EMAILS.name) == 5, 30)  # all but the dead letter
    assert sorted(m.recipients[0] for m in smtp.messages) == [
        f"{n}@example.com" for n in sorted(names) if n != "nobody"
    ]
    assert [smtp.attempts(f"{n}@example.com") for n in names] == [1, 1, 2, 1, 1]
    [letter] = dead_letters(s, EMAILS.topic)
    assert letter["value"]["data"]["email"] == "nobody@example.com"
    assert "550 scripted reply" in letter["headers"]["error-message"]
    for tier in FAST.retry_topics:
        assert read_topic(s, s.topic(tier)) == [], f"{tier} got a mail"
