"""Telling a webhook's creator that it was switched off (Plane's send_webhook_deactivation_email)."""

from __future__ import annotations

import html
import logging

from sqlalchemy import Connection, text

from services.webhooks.store import Disabled
from shared import plane_templates
from shared.mail.message import compose
from shared.mail.smtp import SmtpConfig, SmtpSession
from shared.settings import Settings

log = logging.getLogger(__name__)

SUBJECT = "Webhook Deactivated"  # Plane's subject line
TEMPLATE = "emails/notifications/webhook-deactivate.html"  # Plane's, when PLANE_TEMPLATES_DIR has it

_OWNER = text(
    """
    SELECT u.email, ws.slug FROM workspaces ws LEFT JOIN users u ON u.id = :user_id
    WHERE ws.id = :workspace_id
    """
)


def notify_owner(settings: Settings, conn: Connection, disabled: Disabled) -> None:
    """Send the mail, or raise so the caller's transaction (which disabled the webhook) rolls back
    and is tried again. Without a creator or an SMTP server there is nobody to tell: log it."""
    row = conn.execute(
        _OWNER, {"user_id": disabled.created_by_id, "workspace_id": disabled.workspace_id}
    ).first()
    if row is None or not row.email:
        log.warning("webhook %s disabled; its creator has no e-mail address", disabled.webhook_id)
        return
    if not settings.email_host:
        log.warning("webhook %s disabled; EMAIL_HOST is not set, %s not told", disabled.webhook_id, row.email)
        return
    site = settings.web_url.rstrip("/")
    settings_url = f"{site}/{row.slug}/settings/webhooks/{disabled.webhook_id}"
    message = f"Webhook {disabled.url} has been deactivated due to failed requests."
    text_body = f"{message}\n\nReason: {disabled.reason}\n\nRe-enable it here: {settings_url}\n"
    # Plane's context for its template (the reason is not in it, as in Plane).
    context = {"email": row.email, "message": message, "webhook_url": settings_url}
    html_body = plane_templates.render(settings, TEMPLATE, context) or (
        f"<p>{html.escape(message)}</p><p>Reason: {html.escape(disabled.reason)}</p>"
        f'<p><a href="{html.escape(settings_url)}">Open the webhook settings</a></p>'
    )
    config = SmtpConfig.from_settings(settings)
    with SmtpSession(config) as smtp:
        smtp.send(compose(config.from_address, row.email, SUBJECT, html_body, text_body))
    log.info("webhook %s: deactivation mail sent to its creator", disabled.webhook_id)
