"""An analytics export, mailed as a CSV attachment (Plane's export_analytics_to_csv_email).

Plane's task takes rows as dicts, the header row and the keys to read from each dict, writes
`[headers] + [[row.get(key, "") for key in keys] ...]` with QUOTE_ALL and its formula sanitising,
and attaches it as `{slug}-analytics.csv` to "Your Export is ready" (template
emails/exports/analytics.html, empty context). The `exports` consumer's analytics export
(plane.analytics_export.v1, Plane's analytic_export_task) computes its rows and hands them here.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection

from services.emails.mails_common import Mail, MailType, finish, footer
from services.exports.formats import neutralise
from shared.mail.message import Attachment
from shared.settings import Settings

ANALYTICS = "emails/exports/analytics.html"


def analytics_csv(rows: Sequence[Sequence[Any]]) -> bytes:
    """Plane's generate_csv_from_rows: QUOTE_ALL, every string cell sanitised."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=",", quoting=csv.QUOTE_ALL)
    for row in rows:
        writer.writerow([neutralise(value) for value in row])
    return out.getvalue().encode()


def analytics_export(conn: Connection, settings: Settings, data: Mapping[str, Any]) -> Mail:
    keys = list(data["keys"])
    rows = [list(data["headers"])] + [[item.get(key, "") for key in keys] for item in data["data"]]
    email = str(data["email"])
    mail = finish(
        settings,
        email,
        "Your Export is ready",
        ANALYTICS,
        {},
        [
            "The analytics you exported from Plane are attached to this mail as a CSV file.",
            footer(email, "You asked Plane for this export."),
        ],
    )
    attachment = Attachment(f"{data['slug']}-analytics.csv", analytics_csv(rows), "text/csv")
    return Mail(mail.to, mail.subject, mail.html, mail.text, (attachment,))


EXPORT_MAILS = (
    MailType(
        name="analytics_export",
        plane_task="plane.bgtasks.analytic_plot_export.export_analytics_to_csv_email",
        plane_args=("data", "headers", "keys", "email", "slug"),
        template=ANALYTICS,
        build=analytics_export,
        reads_database=False,
    ),
)
