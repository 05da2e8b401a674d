"""The `emails` consumer's catalogue: one MailType per Plane transactional mail.

Each type is event `plane.email.<name>.v1` (schema in shared/events/schemas), whose `data` is the
Plane task's arguments by name; `build` reads Plane's tables as the task did and returns the Mail
(Plane's subject, Plane's template and context, else our built-in HTML), or raises NothingToSend
where the task returned silently. The `exports` consumer's analytics export mails its CSV through
the analytics_export type.
"""

from __future__ import annotations

from services.emails.mails_auth import AUTH_MAILS
from services.emails.mails_common import Mail, MailType, NothingToSend
from services.emails.mails_exports import EXPORT_MAILS
from services.emails.mails_invitations import INVITATION_MAILS
from services.emails.mails_users import USER_MAILS
from services.emails.mails_webhooks import WEBHOOK_MAILS

__all__ = ["MAIL_TYPES", "Mail", "MailType", "NothingToSend", "mail_type"]

MAIL_TYPES: tuple[MailType, ...] = (
    *AUTH_MAILS,
    *USER_MAILS,
    *INVITATION_MAILS,
    *WEBHOOK_MAILS,
    *EXPORT_MAILS,
)

_BY_EVENT_TYPE = {kind.event_type: kind for kind in MAIL_TYPES}


def mail_type(event_type: str) -> MailType:
    try:
        return _BY_EVENT_TYPE[event_type]
    except KeyError:
        known = ", ".join(sorted(_BY_EVENT_TYPE))
        raise KeyError(f"no mail for event type {event_type!r}; known: {known}") from None
