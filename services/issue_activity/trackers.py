"""Field trackers of `issue.activity.updated`: one per key of `requested_data` Plane knows.

Each compares `requested_data[key]` with `current_instance[key]` as Plane does (raw JSON values,
so "2024-05-01" and "2024-05-01T00:00:00" differ) and appends Plane's row. Texts, including their
trailing spaces, are Plane's: the web app matches on them.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from services.issue_activity.context import Context
from services.issue_activity.lookups import EstimatePointRef, Kind, NamedRef
from services.issue_activity.payload import as_uuid, id_list, is_valid_uuid4
from services.issue_activity.result import DescriptionBump, SubscriberToAdd

Tracker = Callable[[Context, dict[str, Any]], None]


def track_name(ctx: Context, requested: dict[str, Any]) -> None:
    current = ctx.payload.current()
    if current.get("name") != requested.get("name"):
        ctx.add(
            verb="updated",
            field="name",
            old_value=current.get("name"),
            new_value=requested.get("name"),
            comment="updated the name to",
        )


def track_description(ctx: Context, requested: dict[str, Any]) -> None:
    current = ctx.payload.current()
    if current.get("description_html") == requested.get("description_html"):
        return
    # Coalescing: while the same actor keeps editing, Plane moves their description activity
    # forward instead of writing one row per autosave.
    latest = ctx.get(Kind.LATEST_ACTIVITY, ctx.issue_id) if ctx.issue_id is not None else None
    if latest is not None and latest.field == "description" and latest.actor_id == ctx.actor_id:
        assert ctx.issue_id is not None
        ctx.bumps.append(DescriptionBump(latest.id, ctx.issue_id, ctx.now))
        return
    ctx.add(
        verb="updated",
        field="description",
        old_value=current.get("description_html"),
        new_value=requested.get("description_html"),
        comment="updated the description to",
    )


def track_parent(ctx: Context, requested: dict[str, Any]) -> None:
    current = ctx.payload.current()
    old_id = current.get("parent_id") or current.get("parent")
    new_id = requested.get("parent_id") or requested.get("parent")
    # Plane skips the tracker (not the event) when either side is not a UUID v4.
    if (old_id is not None and not is_valid_uuid4(old_id)) or (
        new_id is not None and not is_valid_uuid4(new_id)
    ):
        return
    if old_id == new_id:
        return
    old = ctx.live_issue(uuid.UUID(old_id)) if old_id is not None else None
    new = ctx.live_issue(uuid.UUID(new_id)) if new_id is not None else None
    ctx.add(
        verb="updated",
        field="parent",
        old_value=old.key if old is not None else "",
        new_value=new.key if new is not None else "",
        old_identifier=old.id if old is not None else None,
        new_identifier=new.id if new is not None else None,
        comment="updated the parent issue to",
    )


def track_priority(ctx: Context, requested: dict[str, Any]) -> None:
    current = ctx.payload.current()
    if current.get("priority") != requested.get("priority"):
        ctx.add(
            verb="updated",
            field="priority",
            old_value=current.get("priority"),
            new_value=requested.get("priority"),
            comment="updated the priority to",
        )


def _state(ctx: Context, state_id: str | None) -> NamedRef | None:
    """`State.objects.filter(pk=..., project_id=...).first()` (not triage, not deleted)."""
    if state_id is None:
        return None
    ref: NamedRef | None = ctx.get(Kind.STATE, (uuid.UUID(state_id), ctx.project_id))
    return ref


def track_state(ctx: Context, requested: dict[str, Any]) -> None:
    current = ctx.payload.current()
    old_id = current.get("state_id") or current.get("state")
    new_id = requested.get("state_id") or requested.get("state")
    # Unlike parent, an invalid state id counts as "no state".
    old_id = old_id if is_valid_uuid4(old_id) else None
    new_id = new_id if is_valid_uuid4(new_id) else None
    if old_id == new_id:
        return
    old, new = _state(ctx, old_id), _state(ctx, new_id)
    ctx.add(
        verb="updated",
        field="state",
        old_value=old.name if old else None,
        new_value=new.name if new else None,
        old_identifier=old.id if old else None,
        new_identifier=new.id if new else None,
        comment="updated the state to",
    )


def _date_tracker(key: str, comment: str) -> Tracker:
    def track(ctx: Context, requested: dict[str, Any]) -> None:
        current = ctx.payload.current()
        old, new = current.get(key), requested.get(key)
        if old != new:
            ctx.add(
                verb="updated",
                field=key,
                old_value=old if old is not None else "",
                new_value=new if new is not None else "",
                comment=comment,
            )

    track.__name__ = f"track_{key}"
    return track


track_target_date = _date_tracker("target_date", "updated the target date to")
track_start_date = _date_tracker("start_date", "updated the start date to ")  # sic: trailing space


def _diff(ctx: Context, requested: dict[str, Any], primary: str, fallback: str) -> tuple[list, list]:
    """Added and removed ids, v4 only (Plane skips the rest), sorted: Plane's set order is random."""
    new = id_list(requested, primary, fallback)
    old = id_list(ctx.payload.current_or_none(), primary, fallback)
    added = [uuid.UUID(i) for i in sorted(new - old) if is_valid_uuid4(i)]
    removed = [uuid.UUID(i) for i in sorted(old - new) if is_valid_uuid4(i)]
    return added, removed


def track_labels(ctx: Context, requested: dict[str, Any]) -> None:
    added, removed = _diff(ctx, requested, "label_ids", "labels")
    for label_id in added:
        label = ctx.get(Kind.LABEL, label_id)
        if label is None:  # Plane: Label.DoesNotExist aborts the whole event
            ctx.warn(f"label {label_id} no longer exists: its 'added label' row is left out")
            continue
        ctx.add(
            verb="updated",
            field="labels",
            old_value="",
            new_value=label.name,
            new_identifier=label.id,
            comment="added label ",
        )
    for label_id in removed:
        label = ctx.get(Kind.LABEL, label_id)
        if label is None:
            ctx.warn(f"label {label_id} no longer exists: its 'removed label' row is left out")
            continue
        ctx.add(
            verb="updated",
            field="labels",
            old_value=label.name,
            new_value="",
            old_identifier=label.id,
            comment="removed label ",
        )


def track_assignees(ctx: Context, requested: dict[str, Any]) -> None:
    added, removed = _diff(ctx, requested, "assignee_ids", "assignees")
    for user_id in added:
        user = ctx.get(Kind.USER, user_id)
        if user is None:  # Plane: User.DoesNotExist aborts the whole event
            ctx.warn(f"user {user_id} does not exist: its 'added assignee' row is left out")
            continue
        ctx.add(
            verb="updated",
            field="assignees",
            old_value="",
            new_value=user.name,
            new_identifier=user.id,
            comment="added assignee ",
        )
        if ctx.issue_id is not None:
            ctx.subscribers.append(SubscriberToAdd(ctx.issue_id, user.id, ctx.project_id, ctx.workspace_id))
    for user_id in removed:
        user = ctx.get(Kind.USER, user_id)
        if user is None:
            ctx.warn(f"user {user_id} does not exist: its 'removed assignee' row is left out")
            continue
        ctx.add(
            verb="updated",
            field="assignees",
            old_value=user.name,
            new_value="",
            old_identifier=user.id,
            comment="removed assignee ",
        )


def _point(ctx: Context, value: object, what: str) -> EstimatePointRef | None:
    point_id = as_uuid(value, what)  # Plane's filter(pk=...) raises on a non-UUID
    if point_id is None:
        return None
    ref: EstimatePointRef | None = ctx.get(Kind.ESTIMATE_POINT, point_id)
    return ref


def track_estimate_points(ctx: Context, requested: dict[str, Any]) -> None:
    current = ctx.payload.current()
    old_value, new_value = current.get("estimate_point"), requested.get("estimate_point")
    if old_value == new_value:
        return
    old = _point(ctx, old_value, "current_instance.estimate_point")
    new = _point(ctx, new_value, "requested_data.estimate_point")
    if new_value is not None and new is None:
        ctx.warn(f"estimate point {new_value} no longer exists: the estimate row is left out")
        return
    # Plane builds the field from the new point's estimate type and crashes when the estimate was
    # cleared (bug 14). The cleared point's type names it instead; "estimate_point" (the field's
    # old name, which the web app still renders) when that point is gone too.
    source = new or old
    ctx.add(
        verb="removed" if new is None else "updated",
        field=f"estimate_{source.estimate_type}" if source is not None else "estimate_point",
        old_value=old.value if old else None,
        new_value=new.value if new else None,
        old_identifier=old_value,
        new_identifier=new_value,
        comment="updated the estimate point to ",
    )


def track_archived_at(ctx: Context, requested: dict[str, Any]) -> None:
    current = ctx.payload.current()
    if current.get("archived_at") == requested.get("archived_at"):
        return
    if requested.get("archived_at") is None:
        ctx.add(
            verb="updated",
            field="archived_at",
            old_value="archive",
            new_value="restore",
            comment="has restored the issue",
        )
    elif requested.get("automation"):
        ctx.add(
            verb="updated", field="archived_at", new_value="archive", comment="Plane has archived the issue"
        )
    else:
        ctx.add(
            verb="updated",
            field="archived_at",
            new_value="manual_archive",
            comment="Actor has archived the issue",
        )


def track_closed_to(ctx: Context, requested: dict[str, Any]) -> None:
    """The auto-close job's state change; `current_instance` is not read (the job sends null)."""
    target = requested.get("closed_to")
    if target is None:
        return
    state_id = as_uuid(target, "requested_data.closed_to")
    state = ctx.get(Kind.STATE, (state_id, ctx.project_id))
    if state is None:  # Plane: State.DoesNotExist aborts the event
        ctx.warn(f"state {state_id} is not a live state of the project: the close row is left out")
        return
    ctx.add(
        verb="updated",
        field="state",
        new_value=state.name,
        new_identifier=state.id,
        comment="Plane updated the state to ",
    )


# Plane's ISSUE_ACTIVITY_MAPPER: web app keys, then the public API's names for the same trackers.
FIELD_TRACKERS: dict[str, Tracker] = {
    "name": track_name,
    "parent_id": track_parent,
    "priority": track_priority,
    "state_id": track_state,
    "description_html": track_description,
    "target_date": track_target_date,
    "start_date": track_start_date,
    "label_ids": track_labels,
    "assignee_ids": track_assignees,
    "estimate_point": track_estimate_points,
    "archived_at": track_archived_at,
    "closed_to": track_closed_to,
    "parent": track_parent,
    "state": track_state,
    "assignees": track_assignees,
    "labels": track_labels,
}


def track_update(ctx: Context) -> None:
    """`issue.activity.updated`: the trackers of the requested keys, in the request's key order.

    Plane runs a tracker once per key, so a request carrying both `state_id` and `state` got two
    identical rows; here each tracker runs once (at its first key).
    """
    requested = ctx.payload.requested()
    done: set[Tracker] = set()
    for key in requested:
        tracker = FIELD_TRACKERS.get(key)
        if tracker is not None and tracker not in done:
            done.add(tracker)
            tracker(ctx, requested)
