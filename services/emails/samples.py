"""Conformance samples for emails: sign-in codes and workspace invitations, at least once.

A process killed after the server accepted a mail and before the event's claim committed sends
that mail again, with the same Message-ID (services/emails/handler.py), so the effects read the
mailbox deduplicated by Message-ID: a lost mail, or a repeat under another Message-ID, shows.
Every fifth event is an invitation, which also writes the invite's `message` in Plane's table.
"""

from __future__ import annotations

import uuid

from sqlalchemy import text

from shared.conformance import ConsumerSamples, SampleWorld
from shared.events import new_event
from shared.testing.plane_rows import insert_one, insert_user

_WRITTEN = text(
    "SELECT email FROM workspace_member_invites"
    " WHERE workspace_id = :ws AND message IS NOT NULL ORDER BY email"
)


def cases(world: SampleWorld) -> ConsumerSamples:
    domain = f"{uuid.uuid4().hex[:10]}.example"  # this case's mails only: the mailbox is shared
    with world.engine.begin() as conn:
        inviter_id = insert_user(conn, first_name="Ines", display_name="ines")
        inviter = conn.scalar(text("SELECT email FROM users WHERE id = :id"), {"id": inviter_id})
        slug = f"mail-{uuid.uuid4().hex[:8]}"
        workspace = insert_one(conn, "workspaces", name="Mailroom", slug=slug, owner_id=inviter_id)
        events, expected, invited = [], [], []
        for n in range(world.size):
            to = f"person{n}@{domain}"
            if n % 5 == 4:
                token = uuid.uuid4().hex
                insert_one(conn, "workspace_member_invites", email=to, token=token, workspace_id=workspace,
                           role=15, accepted=False)  # fmt: skip
                data = {"email": to, "workspace_id": str(workspace), "token": token}
                data |= {"current_site": "https://plane.example", "inviter": inviter}
                event = new_event("plane.email.workspace_invitation.v1", data)
                subject = "Ines has invited you to join them in Mailroom on Plane"
                invited.append(to)
            else:
                code = f"{world.rng.randrange(10**6):06d}"
                event = new_event(
                    "plane.email.magic_link.v1", {"email": to, "key": f"magic_{to}", "token": code}
                )
                subject = f"Your unique Plane login code is {code}"
            events.append((to, event))
            expected.append((event.id.replace("-", "")[:32], to, subject))

    def effects() -> dict[str, object]:
        mails = {}
        for mail in world.mailbox.messages:
            if mail.recipients and mail.recipients[0].endswith(f"@{domain}"):
                key = "".join(str(mail.message["Message-ID"]).split()).strip("<>").split(".")[0]
                mails[key] = (key, mail.recipients[0], str(mail.message["Subject"]))
        with world.engine.connect() as conn:
            written = list(conn.scalars(_WRITTEN, {"ws": workspace}))
        return {"mails": sorted(mails.values()), "invite_messages": written}

    return ConsumerSamples(
        events=events,
        effects=effects,
        expected={"mails": sorted(expected), "invite_messages": sorted(invited)},
        delivery="at_least_once",
        # The suite replays hundreds of mails; the production default (20/s) would only add waiting.
        env={"EMAIL_RATE_LIMIT_PER_S": "0"},
    )
