"""Sending one e-mail over SMTP with the EMAIL_* settings (Plane's own variable names)."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage

from shared.settings import Settings

SMTP_TIMEOUT_S = 10.0


class MailNotConfigured(RuntimeError):
    pass


def send_mail(settings: Settings, to: str, subject: str, text: str, html: str | None = None) -> None:
    """Send and return once the server accepted the message; raise on any refusal."""
    if not settings.email_host:
        raise MailNotConfigured("EMAIL_HOST is not set")
    message = EmailMessage()
    message["From"] = settings.email_from
    message["To"] = to
    message["Subject"] = subject
    message.set_content(text)
    if html is not None:
        message.add_alternative(html, subtype="html")
    smtp_class = smtplib.SMTP_SSL if settings.email_use_ssl else smtplib.SMTP
    with smtp_class(settings.email_host, settings.email_port, timeout=SMTP_TIMEOUT_S) as smtp:
        if settings.email_use_tls and not settings.email_use_ssl:
            smtp.starttls()
        if settings.email_host_user:
            smtp.login(settings.email_host_user, settings.email_host_password)
        smtp.send_message(message)
