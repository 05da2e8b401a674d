"""Composing a mail as Plane does: an HTML body with its plain-text rendering, and safe headers."""

from __future__ import annotations

import binascii
import html
import re
import uuid
from dataclasses import dataclass
from email import encoders
from email.charset import QP, Charset
from email.header import Header
from email.message import EmailMessage, Message
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import formataddr, formatdate, getaddresses, parseaddr

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


# What Python's HTMLParser (Django's strip_tags) takes for markup: comments, declarations,
# processing instructions, start and end tags (a quoted attribute value may hold a '>').
_MARKUP = re.compile(
    r"""<!--.*?-->|<[!?][^>]*>|</?[a-zA-Z][^>"']*(?:(?:"[^"]*"|'[^']*')[^>"']*)*>""", re.DOTALL
)
_STYLE = re.compile(r"<style[^>]*>.*?</style>", re.DOTALL | re.IGNORECASE)


def strip_markup(body: str) -> str:
    """Django's strip_tags at a tenth of its CPU (its HTMLParser cost 0.25 ms a mail): one regex
    pass, repeated while it removes something, as strip_tags repeats. Markup the regex does not
    read as the parser would (a '<' left over, a <script> whose text the parser keeps raw) goes
    to strip_tags itself."""
    if "<script" in body.lower():
        return strip_tags(body)
    stripped = body
    while True:
        again = _MARKUP.sub("", stripped)
        if again == stripped:
            break
        stripped = again
    return strip_tags(body) if "<" in stripped and ">" in stripped else stripped


def plain_text(html_body: str) -> str:
    """Plane's generate_plain_text_from_html: drop <style>, strip tags, collapse blank lines."""
    body = _STYLE.sub("", html_body)
    body = html.unescape(strip_markup(body))
    body = re.sub(r"[ \t]+\n", "\n", body)
    body = re.sub(r"\n\s*\n\s*\n+", "\n\n", body)
    return body.strip() + "\n"


# `addr` or `Name <addr>` with nothing that needs RFC 5322's parser (quotes, comments, groups,
# several addresses): read by a regex, where email.utils.parseaddr cost 0.2 ms a call.
_SIMPLE_ADDRESS = re.compile(
    r'\s*(?:[^<>"(),;:\\@\[\]]*<([^<>"(),;:\\@\s\[\]]+@[^<>"(),;:\\@\s\[\]]+)>|([^<>"(),;:\\@\s\[\]]+@[^<>"(),;:\\@\s\[\]]+))\s*'
)


def address_of(value: str) -> str:
    """The address of `value`, as email.utils.parseaddr(value)[1]."""
    simple = _SIMPLE_ADDRESS.fullmatch(value)
    if simple:
        return simple.group(1) or simple.group(2)
    return parseaddr(value)[1]


def message_id(from_address: str, key: str, kind: str) -> str:
    """A Message-ID derived from `key`: the same mail sent twice carries the same one, which lets
    mail clients (and people) see a duplicate for what it is."""
    domain = address_of(from_address).rpartition("@")[2] or "plane-workers.invalid"
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
    if not (address_of(from_address).isascii() and address_of(to).isascii()):
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


@dataclass(frozen=True)
class Wire:
    """A mail as SMTP sends it: the envelope, and DATA's bytes with CRLF line ends."""

    sender: str
    recipients: tuple[str, ...]
    data: bytes
    international: bool = False  # an address is not ASCII: MAIL takes SMTPUTF8


def envelope(message: Message) -> tuple[str, list[str]]:
    """MAIL FROM and RCPT TO addresses of a composed message (From, and To/Cc/Bcc)."""
    sender = parseaddr(str(message["From"] or ""))[1]
    fields = [str(v) for name in ("To", "Cc", "Bcc") for v in message.get_all(name, [])]
    return sender, [addr for _name, addr in getaddresses(fields) if addr]


def as_wire(message: Message) -> Wire:
    sender, recipients = envelope(message)
    international = any(not a.isascii() for a in (sender, *recipients))
    policy = message.policy.clone(linesep="\r\n")
    if international:  # only EmailMessage's policy writes UTF-8 headers
        policy = policy.clone(utf8=True)
    return Wire(sender, tuple(recipients), message.as_bytes(policy=policy), international)


def wire(
    from_address: str,
    to: str,
    subject: str,
    html_body: str,
    text_body: str | None = None,
    msg_id: str | None = None,
    attachments: tuple[Attachment, ...] = (),
) -> Wire:
    """`compose(...)` as SMTP sends it. The common mail (ASCII addresses, no attachment) is written
    directly, the same MIME structure and headers as compose's, bodies quoted-printable by
    binascii: a tenth of the email package's CPU (composing and serialising a digest mail cost it
    0.5 ms, a third of the job's work per mail). Any other mail goes through compose."""
    from_address, to = header_text(from_address), header_text(to)
    sender, recipient = address_of(from_address), address_of(to)
    if attachments or not (sender.isascii() and recipient.isascii()) or not recipient:
        return as_wire(compose(from_address, to, subject, html_body, text_body, msg_id, attachments))
    text_body = text_body if text_body is not None else plain_text(html_body)
    subject = header_text(subject)
    if not subject.isascii() or len(subject) > 66:  # RFC 2047 words, folded under 78 characters
        subject = Header(
            subject, "utf-8" if not subject.isascii() else "us-ascii", header_name="Subject"
        ).encode(linesep="\r\n")
    boundary = f"=_{uuid.uuid4().hex[:24]}"  # "=_" never occurs in quoted-printable text
    head = [
        f'Content-Type: multipart/alternative; boundary="{boundary}"',
        "MIME-Version: 1.0",
        f"From: {_address(from_address)}",
        f"To: {_address(to)}",
        f"Subject: {subject}",
        f"Date: {formatdate()}",
    ]
    if msg_id:
        head.append(f"Message-ID: {header_text(msg_id)}")
    out = ["\r\n".join(head).encode(), b"\r\n\r\n"]
    for subtype, body in (("plain", text_body), ("html", html_body)):
        out += [
            f'--{boundary}\r\nContent-Type: text/{subtype}; charset="utf-8"\r\nMIME-Version: 1.0\r\n'
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n".encode(),
            _quoted_printable(body),
            b"\r\n",
        ]
    out.append(f"--{boundary}--\r\n".encode())
    return Wire(sender, (recipient,), b"".join(out))


def _quoted_printable(body: str) -> bytes:
    lines = body.replace("\r\n", "\n").replace("\r", "\n").encode()
    return binascii.b2a_qp(lines, istext=True).replace(b"\n", b"\r\n")


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
