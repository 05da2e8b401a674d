"""A webhook switched off after failed deliveries (Plane's send_webhook_deactivation_email).

Plane's context has no reason (its template shows none); the built-in mail tells it, since the
reader's next question is why."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, text

from services.emails.mails_common import (
    Mail,
    MailType,
    NothingToSend,
    address_of,
    e,
    finish,
    footer,
    link,
    one,
    site_of,
    user_by_id,
)
from shared.settings import Settings

WEBHOOK_DEACTIVATE = "emails/notifications/webhook-deactivate.html"

# `Webhook.objects` hides a soft-deleted webhook; its workspace (a foreign key) is read as it is.
_WEBHOOK = text(
    """
    SELECT w.id, w.url, ws.slug FROM webhooks w JOIN workspaces ws ON ws.id = w.workspace_id
    WHERE w.id = CAST(:id AS uuid) AND w.deleted_at IS NULL
    """
)


def webhook_deactivation(conn: Connection, settings: Settings, data: Mapping[str, Any]) -> Mail:
    webhook_id = data["webhook_id"]
    if not data.get("receiver_id"):
        raise NothingToSend(f"webhook {webhook_id} has no creator to tell")
    receiver = user_by_id(conn, data["receiver_id"], "receiving")
    webhook = one(conn.execute(_WEBHOOK, {"id": webhook_id}).all(), f"webhook {webhook_id}")
    email = address_of(receiver, "receiving")
    message = f"Webhook {webhook.url} has been deactivated due to failed requests."
    url = f"{site_of(settings, data)}/{webhook.slug}/settings/webhooks/{webhook.id}"
    reason = data.get("reason") or ""
    return finish(
        settings,
        email,
        "Webhook Deactivated",
        WEBHOOK_DEACTIVATE,
        {"email": email, "message": message, "webhook_url": url},
        [
            e(message),
            *([f"Reason: {e(reason)}"] if reason else []),
            "Its settings, where it can be switched on again:",
            link(url),
            footer(email, "If you are not the intended recipient, delete this mail."),
        ],
    )


WEBHOOK_MAILS = (
    MailType(
        name="webhook_deactivation",
        plane_task="plane.bgtasks.webhook_task.send_webhook_deactivation_email",
        plane_args=("webhook_id", "receiver_id", "current_site", "reason"),
        template=WEBHOOK_DEACTIVATE,
        build=webhook_deactivation,
        recipient="receiver_id",
    ),
)
