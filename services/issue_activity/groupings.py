"""Cycle, module and relation types: rows on issues other than (or besides) the event's own.

`cycle.activity.*` arrive with `issue_id=None` or one issue and name their issues in the payload;
relations write a mirror row on the related issue.
"""

from __future__ import annotations

from typing import Any

from services.issue_activity.context import Context
from services.issue_activity.lookups import Kind, NamedRef
from services.issue_activity.payload import as_uuid, parse_json
from services.issue_activity.result import InvalidActivity

# plane.utils.issue_relation_mapper.get_inverse_relation; symmetric types map to themselves.
INVERSE_RELATION = {
    "blocked_by": "blocking",
    "blocking": "blocked_by",
    "start_before": "start_after",
    "start_after": "start_before",
    "finish_before": "finish_after",
    "finish_after": "finish_before",
    "implemented_by": "implements",
    "implements": "implemented_by",
}


def inverse_relation(relation_type: Any) -> Any:
    try:
        return INVERSE_RELATION.get(relation_type, relation_type)
    except TypeError:  # unhashable: Plane raises, the value is no relation type anyway
        raise InvalidActivity(f"relation_type {relation_type!r} is not a string") from None


def _list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise InvalidActivity(f"{what} must be a list, got {type(value).__name__}")
    return value


def _named(ctx: Context, kind: Kind, value: object, what: str) -> NamedRef | None:
    """`Model.objects.filter(pk=value).first()`: None for None, a raise for a non-UUID."""
    key = as_uuid(value, what)
    ref: NamedRef | None = ctx.get(kind, key) if key is not None else None
    return ref


def cycle_created(ctx: Context) -> None:
    """Issues added to a cycle: moved from another cycle ("updated") or newly added ("created").

    `created_cycle_issues` is Django's `serializers.serialize("json", ...)` output, a JSON string
    inside the JSON: `[{"model": "db.cycleissue", "pk": ..., "fields": {"cycle": ..., "issue": ...}}]`.
    """
    current = ctx.payload.current()
    updated = _list(current.get("updated_cycle_issues", []), "updated_cycle_issues")
    created = _list(
        parse_json(current.get("created_cycle_issues"), "created_cycle_issues"), "created_cycle_issues"
    )
    for record in updated:
        if not isinstance(record, dict):
            raise InvalidActivity("updated_cycle_issues entries must be objects")
        old = _named(ctx, Kind.CYCLE, record.get("old_cycle_id"), "old_cycle_id")
        new = _named(ctx, Kind.CYCLE, record.get("new_cycle_id"), "new_cycle_id")
        issue_id = as_uuid(record.get("issue_id"), "updated_cycle_issues.issue_id")
        ctx.touch(issue_id)
        old_name, new_name = (old.name if old else ""), (new.name if new else "")
        ctx.add(
            issue_id=issue_id,
            verb="updated",
            field="cycles",
            old_value=old_name,
            new_value=new_name,
            old_identifier=old.id if old else None,
            new_identifier=new.id if new else None,
            # Plane's triple-quoted f-string: a newline and 16 spaces before "to".
            comment=f"updated cycle from {old_name}\n                to {new_name}",
        )
    for record in created:
        fields = record.get("fields") if isinstance(record, dict) else None
        if not isinstance(fields, dict):
            raise InvalidActivity("created_cycle_issues entries must have 'fields'")
        cycle = _named(ctx, Kind.CYCLE, fields.get("cycle"), "created_cycle_issues.cycle")
        issue_id = as_uuid(fields.get("issue"), "created_cycle_issues.issue")
        ctx.touch(issue_id)
        if cycle is None:  # Plane: cycle.name on None aborts the event
            ctx.warn(f"cycle {fields.get('cycle')} no longer exists: its 'added cycle' row is left out")
            continue
        ctx.add(
            issue_id=issue_id,
            verb="created",
            field="cycles",
            old_value="",
            new_value=cycle.name,
            new_identifier=cycle.id,
            comment=f"added cycle {cycle.name}",
        )


def cycle_deleted(ctx: Context) -> None:
    requested = ctx.payload.requested()
    cycle_id = requested.get("cycle_id", "")  # Plane's default, which its own filter then rejects
    cycle = _named(ctx, Kind.CYCLE, cycle_id, "cycle_id")
    name = cycle.name if cycle is not None else requested.get("cycle_name", "")
    for value in _list(requested.get("issues"), "issues"):
        issue_id = as_uuid(value, "issues[]")
        ctx.touch(issue_id)
        ctx.add(
            issue_id=issue_id,
            verb="deleted",
            field="cycles",
            old_value=name,
            new_value="",
            old_identifier=cycle_id,
            comment=f"removed this issue from {name}",
        )


def module_created(ctx: Context) -> None:
    module_id = ctx.payload.requested().get("module_id")
    module = _named(ctx, Kind.MODULE, module_id, "module_id")
    ctx.touch(ctx.issue_id)
    name = module.name if module else ""
    ctx.add(
        verb="created",
        field="modules",
        old_value="",
        new_value=name,
        new_identifier=module_id,
        comment=f"added module {name}",
    )


def module_deleted(ctx: Context) -> None:
    module_id = ctx.payload.requested().get("module_id")
    name = ctx.payload.current().get("module_name")
    if name is None:
        # The API sends None when it found no link; Plane then wrote "removed this issue from
        # None". The module's own name, or nothing, reads better and names the same thing.
        module = _named(ctx, Kind.MODULE, module_id, "module_id")
        name = module.name if module else ""
    ctx.touch(ctx.issue_id)
    ctx.add(
        verb="deleted",
        field="modules",
        old_value=name,
        new_value="",
        old_identifier=module_id,
        comment=f"removed this issue from {name}",
    )


def relation_created(ctx: Context) -> None:
    """Each related issue gets the inverse relation: A blocking B shows B blocked_by A."""
    requested = ctx.payload.requested()
    if ctx.payload.current_or_none() is not None or requested.get("issues") is None:
        return  # Plane's guard: only a create without current_instance writes
    relation = requested.get("relation_type")
    inverse = inverse_relation(relation)
    for value in _list(requested["issues"], "issues"):
        related_id = as_uuid(value, "issues[]")
        related = ctx.live_issue(related_id)
        this = ctx.live_issue(ctx.issue_id)
        if related is None or this is None:  # Plane: Issue.DoesNotExist aborts the event
            ctx.warn(f"relation with {related_id}: an issue of the pair is gone, no rows for it")
            continue
        ctx.add(
            verb="updated",
            field=relation,
            old_value="",
            new_value=related.key,
            old_identifier=related.id,
            comment=f"added {relation} relation",
        )
        ctx.add(
            issue_id=related.id,
            verb="updated",
            field=inverse,
            old_value="",
            new_value=this.key,
            old_identifier=this.id,
            comment=f"added {inverse} relation",
        )


def relation_deleted(ctx: Context) -> None:
    """The mirror of a removed relation is the inverse of the mirror of an added one.

    Plane's deletion mirror swaps only blocked_by/blocking (so a removed start_before showed as
    start_before on the other issue too), keeps the original type in its comment and points its
    old_identifier at the related issue itself; all three are fixed here.
    """
    requested = ctx.payload.requested()
    relation = requested.get("relation_type")
    related_id = as_uuid(requested.get("related_issue"), "related_issue")
    related = ctx.live_issue(related_id)
    if related is None:
        ctx.warn(f"related issue {related_id} is gone: no relation rows")
        return
    ctx.add(
        verb="deleted",
        field=relation,
        old_value=related.key,
        new_value="",
        old_identifier=related.id,
        comment=f"deleted {relation} relation",
    )
    this = ctx.live_issue(ctx.issue_id)
    if this is None:
        ctx.warn("the event's issue is gone: the related issue's mirror row is left out")
        return
    inverse = inverse_relation(relation)
    ctx.add(
        issue_id=related.id,
        verb="deleted",
        field=inverse,
        old_value=this.key,
        new_value="",
        old_identifier=this.id,
        comment=f"deleted {inverse} relation",
    )
