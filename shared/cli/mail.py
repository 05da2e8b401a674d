"""`plane-workers mail preview`: a transactional mail rendered to a file, never sent.

The mail is built exactly as the `emails` consumer builds it, from the event's `data`, inside a
transaction that is rolled back: what it reads comes from the configured database (Plane's
users, workspaces and invites), and what Plane's tasks write (an invite's `message`) is undone.
"""

from __future__ import annotations

import json
from pathlib import Path

from shared.cli.errors import CliError, ConfigError, require_database
from shared.settings import Settings


def preview(settings: Settings, name: str, data_json: str, out: Path | None) -> tuple[Path, str, str]:
    """Write the mail as an .eml file (both parts, openable in any mail client); return the
    path, the recipient and the subject."""
    from services.emails import catalogue
    from shared.db.engine import get_engine
    from shared.events.schemas import validator_for
    from shared.kafka.handler import PermanentError
    from shared.mail.message import compose, message_id

    try:
        kind = catalogue.mail_type(name if name.startswith("plane.") else f"plane.email.{name}.v1")
    except KeyError:
        known = ", ".join(k.name for k in catalogue.MAIL_TYPES)
        raise ConfigError(f"mail {name!r}: no such mail (known: {known})") from None
    try:
        data = json.loads(data_json)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--data: not JSON: {exc}") from None
    errors = sorted(validator_for(kind.event_type).iter_errors(data), key=lambda e: list(e.path))
    if errors:
        where = "/".join(str(p) for p in errors[0].path) or "(top level)"
        raise ConfigError(f"--data: not a valid {kind.event_type}: {where}: {errors[0].message}")
    require_database(settings)
    with get_engine(settings.database_url).connect() as conn:
        try:
            mail = kind.build(conn, settings, data)
        except catalogue.NothingToSend as exc:
            raise CliError(f"mail {kind.name}: nothing to send: {exc}") from None
        except PermanentError as exc:
            raise CliError(f"mail {kind.name}: {exc}") from None
        finally:
            conn.rollback()
    sender = settings.email_from
    msg_id = message_id(sender, "preview", kind.name)
    message = compose(sender, mail.to, mail.subject, mail.html, mail.text, msg_id, mail.attachments)
    path = out or Path(f"mail-preview-{kind.name}.eml")
    path.write_bytes(bytes(message))
    return path, mail.to, mail.subject
