"""Telling a webhook's creator that it was switched off: Plane's send_webhook_deactivation_email,
handed to the `emails` consumer as a `plane.email.webhook_deactivation.v1` event.

The event is produced, and the broker's acknowledgement awaited, inside the transaction that
disables the webhook: if it cannot be written, the disabling rolls back and the batch is tried
again, so the creator is told at least once, and only by the run that disabled it. (A commit that
fails after the acknowledgement tells them twice; the mail is sent with a new Message-ID.)
"""

from __future__ import annotations

import logging

from services.webhooks.store import Disabled
from shared.events import new_event
from shared.events.producer import EventProducer
from shared.settings import Settings

log = logging.getLogger(__name__)

EMAILS_TOPIC = "emails"
EVENT_TYPE = "plane.email.webhook_deactivation.v1"


def announce(settings: Settings, producer: EventProducer, disabled: Disabled) -> None:
    if disabled.created_by_id is None:
        log.warning("webhook %s disabled; it has no creator to tell", disabled.webhook_id)
        return
    receiver = str(disabled.created_by_id)
    data = {
        "webhook_id": str(disabled.webhook_id),
        "receiver_id": receiver,
        # Plane passes the request's origin; deliveries are not tied to one, so Plane's web address.
        "current_site": settings.web_url,
        "reason": disabled.reason,
    }
    producer.send(EMAILS_TOPIC, new_event(EVENT_TYPE, data), key=receiver)
