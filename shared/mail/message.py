"""Composing a mail as Plane does: an HTML body with its plain-text rendering, and safe headers."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from email import encoders
from email.charset import QP, Charset
from email.header import Header
from email.message import EmailMessage, Message
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import formataddr, formatdate, parseaddr

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
) -> Message:
    """The mail: text/plain and text/html alternatives (in a multipart/mixed with any attachments).

    Built with the email package's classic MIME classes, as Django builds Plane's mails: about a
    quarter of the CPU of the EmailMessage API, whose header parsing and refolding dominated a
    digest run's cost. Bodies are UTF-8 quoted-printable (lines stay under 78 characters whatever
    the HTML). Addresses that are not ASCII (SMTPUTF8) take the EmailMessage path, which can
    write them."""
    text_body = text_body if text_body is not None else plain_text(html_body)
    to, subject = header_text(to), header_text(subject)
    if not (parseaddr(from_address)[1].isascii() and parseaddr(to)[1].isascii()):
        return _compose_international(from_address, to, subject, html_body, text_body, msg_id, attachments)
    alternative = MIMEMultipart("alternative")
    alternative.attach(MIMEText(text_body, "plain", _UTF8_QP))
    alternative.attach(MIMEText(html_body, "html", _UTF8_QP))
    message: Message = alternative
    if attachments:
        message = MIMEMultipart("mixed")
        message.attach(alternative)
        for item in attachments:
            maintype, _, subtype = item.mime_type.partition("/")
            part = MIMEBase(maintype, subtype or "octet-stream")
            part.set_payload(item.content)
            encoders.encode_base64(part)
            part.add_header("Content-Disposition", "attachment", filename=item.filename)
            message.attach(part)
    message["From"] = _address(from_address)
    message["To"] = _address(to)
    message["Subject"] = subject if subject.isascii() else Header(subject, "utf-8").encode()
    message["Date"] = formatdate()
    if msg_id:
        message["Message-ID"] = msg_id
    return message


_UTF8_QP = Charset("utf-8")
_UTF8_QP.body_encoding = QP


def _address(value: str) -> str:
    """`Name <addr>` with a non-ASCII name encoded (RFC 2047), as Django's sanitize_address does."""
    if value.isascii():
        return value
    name, addr = parseaddr(value)
    return formataddr((name, addr), charset="utf-8")


def _compose_international(
    from_address: str,
    to: str,
    subject: str,
    html_body: str,
    text_body: str,
    msg_id: str | None,
    attachments: tuple[Attachment, ...],
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = from_address
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = formatdate()
    if msg_id:
        message["Message-ID"] = msg_id
    message.set_content(text_body)
    message.add_alternative(html_body, subtype="html")
    for item in attachments:
        maintype, _, subtype = item.mime_type.partition("/")
        message.add_attachment(
            item.content, maintype=maintype, subtype=subtype or "octet-stream", filename=item.filename
        )
    return message
