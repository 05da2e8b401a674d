"""Composing a mail as Plane does: an HTML body with its plain-text rendering, and safe headers."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import parseaddr

from django.utils.html import strip_tags

# C0/C1 controls and the Unicode line and paragraph separators: none belongs in a header.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


@dataclass(frozen=True)
class Attachment:
    filename: str
    content: bytes
    mime_type: str = "application/octet-stream"


def header_text(value: str) -> str:
    """`value` with control characters removed, so a name can never add a header line."""
    return _CONTROL.sub("", value)


def plain_text(html_body: str) -> str:
    """Plane's generate_plain_text_from_html: drop <style>, strip tags, collapse blank lines."""
    body = re.sub(r"<style[^>]*>.*?</style>", "", html_body, flags=re.DOTALL | re.IGNORECASE)
    body = html.unescape(strip_tags(body))
    body = re.sub(r"[ \t]+\n", "\n", body)
    body = re.sub(r"\n\s*\n\s*\n+", "\n\n", body)
    return body.strip() + "\n"


def message_id(from_address: str, key: str, kind: str) -> str:
    """A Message-ID derived from `key`: the same mail sent twice carries the same one, which lets
    mail clients (and people) see a duplicate for what it is."""
    domain = parseaddr(from_address)[1].rpartition("@")[2] or "plane-workers.invalid"
    return f"<{key[:32]}.{kind}@{domain}>"  # short: one header line, unfolded


def compose(
    from_address: str,
    to: str,
    subject: str,
    html_body: str,
    text_body: str | None = None,
    msg_id: str | None = None,
    attachments: tuple[Attachment, ...] = (),
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = from_address
    message["To"] = header_text(to)
    message["Subject"] = header_text(subject)
    if msg_id:
        message["Message-ID"] = msg_id
    message.set_content(text_body if text_body is not None else plain_text(html_body))
    message.add_alternative(html_body, subtype="html")
    for item in attachments:
        maintype, _, subtype = item.mime_type.partition("/")
        message.add_attachment(
            item.content, maintype=maintype, subtype=subtype or "octet-stream", filename=item.filename
        )
    return message
