"""shared.mail.message's fast paths against the slow ones they replace: the regex tag stripper
against Django's strip_tags, and `wire` against compose + the email package's generator."""

from __future__ import annotations

from email import message_from_bytes, policy
from email.utils import parseaddr
from pathlib import Path

import pytest
from django.utils.html import strip_tags

from shared.mail.message import Attachment, address_of, as_wire, compose, strip_markup, wire

TEMPLATES = Path(__file__).resolve().parents[1] / "fixtures" / "plane_templates"
FROM = "Team Plane <team@mailer.plane.so>"

CASES = [
    "<p>a &amp; b</p>",
    "<a title=\"x > y\" href='/p?a=1&b=2'>link</a> after",
    "<!-- a comment --><p>x</p><!--[if mso]><table><tr><td><![endif]-->",
    "<!DOCTYPE html><html><head><meta charset='utf-8'></head><body>a < b > c</body></html>",
    "<<p>p>nested",
    "no markup at all, 3 > 2",
    "<p>unclosed <b",
    "<script>if (a<b) {}</script><p>s</p>",
    "<p>line\n\n\n<br/>two</p>",
]


@pytest.mark.parametrize("html", CASES + [p.read_text() for p in sorted(TEMPLATES.rglob("*.html"))])
def test_strip_markup_is_strip_tags(html: str) -> None:
    assert strip_markup(html) == strip_tags(html)


def parts(data: bytes) -> list[tuple[str, str]]:
    mail = message_from_bytes(data, policy=policy.default)
    return [(p.get_content_type(), p.get_content()) for p in mail.walk() if not p.is_multipart()]


@pytest.mark.parametrize(
    "subject",
    ["PRJ-7 Card moves are lost", "PRJ-8 Überschrift mit Umlauten", "PRJ-9 " + "a long issue name " * 12],
)
def test_wire_is_compose_as_smtp_sends_it(subject: str) -> None:
    html = "<p>Hi &amp; welcome, caf\u00e9 = ok. " + "word " * 40 + "</p>\n.\n<p>. leading dot</p>"
    fast = wire(FROM, "Ada <ada@example.com>", subject, html, None, "<k.mail@mailer.plane.so>")
    slow = as_wire(compose(FROM, "Ada <ada@example.com>", subject, html, None, "<k.mail@mailer.plane.so>"))
    assert (
        (fast.sender, fast.recipients)
        == (slow.sender, slow.recipients)
        == (
            "team@mailer.plane.so",
            ("ada@example.com",),
        )
    )
    a, b = (
        message_from_bytes(fast.data, policy=policy.default),
        message_from_bytes(slow.data, policy=policy.default),
    )
    for name in ("From", "To", "Subject", "Message-ID", "MIME-Version"):
        assert a[name] == b[name], name
    assert a.get_content_type() == "multipart/alternative"
    assert parts(fast.data) == parts(slow.data)
    assert b"\r\n" in fast.data and b"\n" not in fast.data.replace(b"\r\n", b"")
    assert max(len(line) for line in fast.data.split(b"\r\n")) <= 78


def test_header_injection_and_other_mails_take_the_email_package() -> None:
    fast = wire(FROM, "ada@example.com\r\nBcc: eve@example.com", "Hi\r\nBcc: eve@example.com", "<p>x</p>")
    assert b"\r\nBcc:" not in fast.data
    attached = wire(FROM, "ada@example.com", "Export", "<p>x</p>", attachments=(Attachment("a.csv", b"1,2"),))
    assert [t for t, _ in parts(attached.data)][-1] == "application/octet-stream"
    international = wire(FROM, "jos\u00e9@example.com", "Hola", "<p>x</p>")
    assert international.international and international.recipients == ("jos\u00e9@example.com",)


@pytest.mark.parametrize(
    "value",
    ["Team Plane <team@mailer.plane.so>", "a@b.c", " Ada L <ada@x.org> ", '"Q, x" <q@x.org>', "a@b.c, d@e.f",
     "x (c) <y@z.w>", "jos\u00e9@x.org", "Ada <ada@x.org>Bcc: e@v.il", "plain", ""],
)  # fmt: skip
def test_address_of_is_parseaddr(value: str) -> None:
    assert address_of(value) == parseaddr(value)[1]
