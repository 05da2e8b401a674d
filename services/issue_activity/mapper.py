"""Plane's ACTIVITY_MAPPER: one handler per event `type`.

Issue, comment, link, attachment, reaction, vote, draft and intake types live here; cycles,
modules and relations (which write rows on other issues than the event's) in `groupings.py`;
the field trackers of `issue.activity.updated` in `trackers.py`.
"""

from __future__ import annotations

from collections.abc import Callable

from services.issue_activity import groupings
from services.issue_activity.context import Context
from services.issue_activity.lookups import Kind
from services.issue_activity.payload import as_uuid
from services.issue_activity.trackers import track_assignees, track_update

Handler = Callable[[Context], None]


def issue_created(ctx: Context) -> None:
    """The `created` row takes the issue's own creation time and creator, not the event's."""
    issue = ctx.live_issue(ctx.issue_id)
    if issue is None:  # Plane: Issue.DoesNotExist, nothing written
        ctx.warn("the created issue does not exist (or is deleted): no activity")
        return
    ctx.add(
        verb="created",
        comment="created the issue",
        actor_id=issue.created_by_id,
        created_at=issue.created_at,
    )
    # Plane has already saved the created row when it reads requested_data, so a missing one
    # costs only the assignee rows.
    requested = ctx.payload.requested_or_none() or {}
    if requested.get("assignee_ids") is not None:
        track_assignees(ctx, requested)


def issue_deleted(ctx: Context) -> None:
    ctx.add(verb="deleted", field="issue", comment="deleted the issue")


def comment_created(ctx: Context) -> None:
    requested = ctx.payload.requested()
    comment_id = requested.get("id")
    ctx.add(
        verb="created",
        field="comment",
        new_value=requested.get("comment_html", ""),
        new_identifier=comment_id,
        issue_comment_id=comment_id,
        comment="created a comment",
    )


def comment_updated(ctx: Context) -> None:
    requested, current = ctx.payload.requested(), ctx.payload.current()
    # Plane compares even when the edit did not send comment_html (an access change), and then
    # records the comment as edited to "". Only an edit that sends the HTML is one here.
    if "comment_html" not in requested or current.get("comment_html") == requested["comment_html"]:
        return
    comment_id = current.get("id")
    ctx.add(
        verb="updated",
        field="comment",
        old_value=current.get("comment_html", ""),
        new_value=requested.get("comment_html", ""),
        old_identifier=comment_id,
        new_identifier=comment_id,
        issue_comment_id=comment_id,
        comment="updated a comment",
    )


def comment_deleted(ctx: Context) -> None:
    ctx.add(
        verb="deleted",
        field="comment",
        issue_comment_id=ctx.payload.requested().get("comment_id"),
        comment="deleted the comment",
    )


def link_created(ctx: Context) -> None:
    requested = ctx.payload.requested()
    ctx.add(
        verb="created",
        field="link",
        new_value=requested.get("url", ""),
        new_identifier=requested.get("id"),
        comment="created a link",
    )


def link_updated(ctx: Context) -> None:
    requested, current = ctx.payload.requested(), ctx.payload.current()
    if "url" not in requested or current.get("url") == requested["url"]:  # as for comments
        return
    ctx.add(
        verb="updated",
        field="link",
        old_value=current.get("url", ""),
        new_value=requested.get("url", ""),
        old_identifier=current.get("id"),
        new_identifier=current.get("id"),
        comment="updated a link",
    )


def link_deleted(ctx: Context) -> None:
    ctx.add(
        verb="deleted",
        field="link",
        old_value=ctx.payload.current().get("url", ""),
        new_value="",
        comment="deleted the link",
    )


def attachment_created(ctx: Context) -> None:
    current = ctx.payload.current()  # the attachment's serializer data
    ctx.add(
        verb="created",
        field="attachment",
        new_value=current.get("asset", ""),
        new_identifier=current.get("id"),
        comment="created an attachment",
    )


def attachment_deleted(ctx: Context) -> None:
    ctx.add(verb="deleted", field="attachment", comment="deleted the attachment")


def issue_reaction_created(ctx: Context) -> None:
    requested = ctx.payload.requested_or_none()
    if not requested or requested.get("reaction") is None or ctx.issue_id is None:
        return
    reaction = str(requested["reaction"])
    # Plane takes the newest reaction with this emoji by this actor anywhere in the project; the
    # issue is known, so the lookup is limited to it (the id could name another issue's reaction).
    reaction_id = ctx.get(Kind.ISSUE_REACTION, (ctx.issue_id, ctx.project_id, ctx.actor_id, reaction))
    if reaction_id is None:
        return
    ctx.add(
        verb="created",
        field="reaction",
        new_value=requested["reaction"],
        new_identifier=reaction_id,
        comment="added the reaction",
    )


def issue_reaction_deleted(ctx: Context) -> None:
    current = ctx.payload.current_or_none()
    if not current or current.get("reaction") is None:
        return
    ctx.add(
        verb="deleted",
        field="reaction",
        old_value=current["reaction"],
        old_identifier=current.get("identifier"),
        comment="removed the reaction",
    )


def comment_reaction_created(ctx: Context) -> None:
    """Sent with issue_id=None: the row goes to the reacted comment's issue."""
    requested = ctx.payload.requested_or_none()
    if not requested or requested.get("reaction") is None:
        return
    ref = ctx.get(Kind.COMMENT_REACTION, (ctx.project_id, ctx.actor_id, str(requested["reaction"])))
    if ref is None:  # Plane unpacks None here and aborts
        ctx.warn("no such comment reaction by the actor in the project: no activity")
        return
    comment = ctx.get(Kind.COMMENT, ref.comment_id)
    if comment is None or comment.deleted or comment.project_id != ctx.project_id:
        ctx.warn(f"comment {ref.comment_id} is not a live comment of the project: no activity")
        return
    ctx.add(
        verb="created",
        field="reaction",
        new_value=requested["reaction"],
        new_identifier=ref.id,
        issue_id=comment.issue_id,
        comment="added the reaction",
    )


def comment_reaction_deleted(ctx: Context) -> None:
    current = ctx.payload.current_or_none()
    if not current or current.get("reaction") is None:
        return
    comment_id = as_uuid(current.get("comment_id"), "current_instance.comment_id")
    comment = ctx.get(Kind.COMMENT, comment_id) if comment_id is not None else None
    if comment is None or comment.deleted or comment.project_id != ctx.project_id:
        return  # Plane: no live comment in the project, no row
    ctx.add(
        verb="deleted",
        field="reaction",
        old_value=current["reaction"],
        old_identifier=current.get("identifier"),
        issue_id=comment.issue_id,
        comment="removed the reaction",
    )


def vote_created(ctx: Context) -> None:
    requested = ctx.payload.requested_or_none()
    if requested and requested.get("vote") is not None:
        ctx.add(verb="updated", field="vote", new_value=requested["vote"], comment="added the vote")


def vote_deleted(ctx: Context) -> None:
    current = ctx.payload.current_or_none()
    if current and current.get("vote") is not None:
        ctx.add(
            verb="deleted",
            field="vote",
            old_value=current["vote"],
            old_identifier=current.get("identifier"),
            comment="removed the vote",
        )


def draft_created(ctx: Context) -> None:
    ctx.add(verb="created", field="draft", comment="drafted the issue")


def draft_updated(ctx: Context) -> None:
    if ctx.payload.requested().get("is_draft") is False:
        ctx.add(verb="updated", comment="created the issue")
    else:
        ctx.add(verb="updated", field="draft", comment="updated the draft issue")


def draft_deleted(ctx: Context) -> None:
    ctx.add(verb="deleted", field="draft", issue_id=None, comment="deleted the draft issue")


INTAKE_STATUS = {-2: "Pending", -1: "Rejected", 0: "Snoozed", 1: "Accepted", 2: "Duplicate"}


def _status_name(value: object) -> str | None:
    # Plane's dict.get: ints (and what hashes equal to them) map, anything else gives None.
    try:
        return INTAKE_STATUS.get(value)  # type: ignore[call-overload]
    except TypeError:  # a list or an object: unhashable, where Plane raises
        return None


def intake_created(ctx: Context) -> None:
    """An intake status change; the verb is the status number itself."""
    requested = ctx.payload.requested()
    status = requested.get("status")
    if status is None:
        return
    ctx.add(
        verb=status,
        field="intake",
        old_value=_status_name(ctx.payload.current().get("status")),
        new_value=_status_name(status),
        comment="updated the intake status",
    )


ACTIVITY_MAPPER: dict[str, Handler] = {
    "issue.activity.created": issue_created,
    "issue.activity.updated": track_update,
    "issue.activity.deleted": issue_deleted,
    "comment.activity.created": comment_created,
    "comment.activity.updated": comment_updated,
    "comment.activity.deleted": comment_deleted,
    "cycle.activity.created": groupings.cycle_created,
    "cycle.activity.deleted": groupings.cycle_deleted,
    "module.activity.created": groupings.module_created,
    "module.activity.deleted": groupings.module_deleted,
    "link.activity.created": link_created,
    "link.activity.updated": link_updated,
    "link.activity.deleted": link_deleted,
    "attachment.activity.created": attachment_created,
    "attachment.activity.deleted": attachment_deleted,
    "issue_relation.activity.created": groupings.relation_created,
    "issue_relation.activity.deleted": groupings.relation_deleted,
    "issue_reaction.activity.created": issue_reaction_created,
    "issue_reaction.activity.deleted": issue_reaction_deleted,
    "comment_reaction.activity.created": comment_reaction_created,
    "comment_reaction.activity.deleted": comment_reaction_deleted,
    "issue_vote.activity.created": vote_created,
    "issue_vote.activity.deleted": vote_deleted,
    "issue_draft.activity.created": draft_created,
    "issue_draft.activity.updated": draft_updated,
    "issue_draft.activity.deleted": draft_deleted,
    "intake.activity.created": intake_created,
}
