"""Which Plane task becomes which event: the bridge's map, for the consumers that exist.

Each route names Plane's task, the parameters of its signature in order (positional call sites
bind to these names, as Celery itself would bind them), our event type and logical topic, and how
the topic catalogue keys it (DESIGN.md). A task name that is not here goes to the legacy queue.

`needs` names a lookup in Plane's database that the event needs and the task's arguments lack
(webhook_send_task carries a webhook id, our delivery also its workspace id). A route with needs
is passed through unchanged when the bridge has no DATABASE_URL. "workspace" adds the slug's
workspace id to the event; "workspace_key" only keys the message by it (the event has no field
for it).
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

from services.api_logs.scrub import REDACTED, for_transport, secret_forms
from services.emails.catalogue import MAIL_TYPES

REQUIRED = inspect.Parameter.empty
Param = str | tuple[str, Any]  # a name, or (name, default) where Plane's signature has one

Keyer = Callable[[Mapping[str, Any]], str | None]


def _field(*names: str) -> Keyer:
    """The first of `names` that the data has (not null), as the message key."""

    def key(data: Mapping[str, Any]) -> str | None:
        for name in names:
            value = data.get(name)
            if value is not None and value != "":
                return str(value)
        return None

    return key


@dataclass(frozen=True)
class Route:
    plane_task: str
    topic: str
    event_type: str
    params: tuple[Param, ...]
    key: Keyer = field(compare=False)
    needs: Literal["", "webhook", "workspace", "workspace_key"] = ""
    # The bound arguments as the event should carry them, where Plane's hold what no topic may
    # (process_logs' raw API key); and the secrets in a raw body, which its dead letter replaces
    # (None: they cannot be found, and the body is withheld).
    prepare: Callable[[dict[str, Any]], dict[str, Any]] | None = field(default=None, compare=False)
    secrets: Callable[[bytes], tuple[str, ...] | None] | None = field(default=None, compare=False)

    @cached_property
    def signature(self) -> inspect.Signature:
        kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
        return inspect.Signature(
            [
                inspect.Parameter(p, kind)
                if isinstance(p, str)
                else inspect.Parameter(p[0], kind, default=p[1])
                for p in self.params
            ]
        )

    def bind(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """Plane's arguments by name, defaults filled in; TypeError as Celery's worker would raise
        it calling the task (missing, extra or doubled arguments)."""
        bound = self.signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return dict(bound.arguments)


_PLANE = "plane.bgtasks"
_WORKSPACE_PATH = re.compile(r"/workspaces/([^/?#]+)")


def _api_log_key(data: Mapping[str, Any]) -> str | None:
    """process_logs carries no workspace id: the slug in the request's path (one per workspace)."""
    path = (data.get("log_data") or {}).get("path")
    found = _WORKSPACE_PATH.search(path) if isinstance(path, str) else None
    return found.group(1) if found else None


def _api_log_for_transport(data: dict[str, Any]) -> dict[str, Any]:
    """Both of Plane's copies scrubbed: mongo_log is log_data plus timestamps, key included. Only
    its created_at (the request's time) is read downstream."""
    prepared = dict(data)
    if isinstance(data.get("log_data"), Mapping):
        prepared["log_data"] = for_transport(data["log_data"])
    if isinstance(data.get("mongo_log"), Mapping):
        created_at = data["mongo_log"].get("created_at")
        prepared["mongo_log"] = {"created_at": created_at} if created_at is not None else {}
    return prepared


def _api_log_secrets(body: bytes) -> tuple[str, ...] | None:
    """The API key in a process_logs message's raw body, so that its dead letter can replace it
    in the body and in Celery's argsrepr/kwargsrepr headers; None when it cannot be found."""
    try:
        args, kwargs, _embed = json.loads(body)
        bound = dict(zip(("log_data", "mongo_log"), args, strict=False)) | dict(kwargs)
        key = bound["log_data"]["token_identifier"]
    except (ValueError, TypeError, KeyError):
        return None
    return (key,) if isinstance(key, str) and key else None


def scrub(value: bytes, secrets: tuple[str, ...]) -> bytes:
    """`value` with each secret replaced in the forms api-logs replaces, and JSON-escaped or
    repr()-quoted as a raw Celery body and its argsrepr/kwargsrepr headers carry it."""
    for secret in secrets:
        escaped = (json.dumps(secret)[1:-1], repr(secret)[1:-1])
        for form in dict.fromkeys((*secret_forms(secret), *escaped)):
            value = value.replace(form.encode(), REDACTED.encode())
    return value


ROUTES: tuple[Route, ...] = (
    Route(
        f"{_PLANE}.issue_activities_task.issue_activity",
        "issue-activity",
        "plane.issue_activity.v1",
        (
            "type",
            "requested_data",
            "current_instance",
            "issue_id",
            "actor_id",
            "project_id",
            "epoch",
            ("subscriber", True),
            ("notification", False),
            ("origin", None),
            ("intake", None),
        ),
        # A few call sites have no issue (issue_id None): their project orders them.
        key=_field("issue_id", "project_id"),
    ),
    Route(
        f"{_PLANE}.notification_task.notifications",
        "notifications",
        "plane.notifications.v1",
        (
            "type",
            "issue_id",
            "project_id",
            "actor_id",
            "subscriber",
            "issue_activities_created",
            "requested_data",
            "current_instance",
        ),
        key=_field("issue_id"),
    ),
    Route(
        f"{_PLANE}.webhook_task.model_activity",
        "model-activity",
        "plane.model_activity.v1",
        (
            "model_name",
            "model_id",
            "requested_data",
            "current_instance",
            "actor_id",
            "slug",
            ("origin", None),
        ),
        key=_field("model_id"),
    ),
    Route(
        f"{_PLANE}.webhook_task.webhook_activity",
        "webhook-events",
        "plane.webhook_activity.v1",
        (
            "event",
            "verb",
            "field",
            "old_value",
            "new_value",
            "actor_id",
            "slug",
            "current_site",
            "event_id",
            "old_identifier",
            "new_identifier",
        ),
        # Keyed by workspace id like model-activity's own webhook events; the slug (one per
        # workspace) when the workspace cannot be looked up.
        key=_field("workspace_id", "slug"),
        needs="workspace",
    ),
    Route(
        f"{_PLANE}.webhook_task.webhook_send_task",
        "webhook-deliveries",
        "plane.webhook_delivery.v1",
        ("webhook_id", "slug", "event", "event_data", "action", "current_site", "activity"),
        key=_field("webhook_id"),
        needs="webhook",
    ),
    Route(
        f"{_PLANE}.issue_description_version_task.issue_description_version_task",
        "issue-description-versions",
        "plane.issue_description_version.v1",
        ("updated_issue", "issue_id", "user_id", ("is_creating", False)),
        key=_field("issue_id"),
    ),
    Route(
        f"{_PLANE}.work_item_link_task.crawl_work_item_link_title",
        "links",
        "plane.link_crawl.v1",
        ("id", "url"),
        key=_field("id"),
    ),
    Route(
        f"{_PLANE}.storage_metadata_task.get_asset_object_metadata",
        "assets",
        "plane.asset_metadata.v1",
        ("asset_id",),
        key=_field("asset_id"),
    ),
    Route(
        f"{_PLANE}.copy_s3_object.copy_s3_objects_of_description_and_assets",
        "assets",
        "plane.asset_copy.v1",
        ("entity_name", "entity_identifier", "project_id", "slug", "user_id"),
        key=_field("entity_identifier"),
    ),
    Route(
        f"{_PLANE}.export_task.issue_export_task",
        "exports",
        "plane.issue_export.v1",
        ("provider", "workspace_id", "project_ids", "token_id", "multiple", "slug"),
        key=_field("workspace_id"),
    ),
    Route(
        f"{_PLANE}.analytic_plot_export.analytic_export_task",
        "exports",
        "plane.analytics_export.v1",
        ("email", "data", "slug"),
        # The slug when the workspace cannot be looked up (one per workspace all the same).
        key=_field("workspace_id", "slug"),
        needs="workspace_key",
    ),
    Route(
        f"{_PLANE}.page_transaction_task.page_transaction",
        "pages",
        "plane.page_transaction.v1",
        ("new_description_html", "old_description_html", "page_id"),
        key=_field("page_id"),
    ),
    Route(
        f"{_PLANE}.page_version_task.track_page_version",
        "pages",
        "plane.page_version.v1",
        ("page_id", "existing_instance", "user_id"),
        key=_field("page_id"),
    ),
    Route(
        f"{_PLANE}.deletion_task.soft_delete_related_objects",
        "soft-deletes",
        "plane.soft_delete.v1",
        ("app_label", "model_name", "instance_pk", ("using", None)),
        key=_field("instance_pk"),
    ),
    Route(
        f"{_PLANE}.logger_task.process_logs",
        "api-logs",
        "plane.api_log.v1",
        ("log_data", "mongo_log"),
        key=_api_log_key,
        prepare=_api_log_for_transport,
        secrets=_api_log_secrets,
    ),
    Route(
        f"{_PLANE}.recent_visited_task.recent_visited_task",
        "analytics-events",
        "plane.recent_visit.v1",
        ("entity_name", "entity_identifier", "user_id", "project_id", "slug"),
        key=_field("user_id"),
    ),
    Route(
        f"{_PLANE}.event_tracking_task.track_event",
        "analytics-events",
        "plane.track_event.v1",
        ("user_id", "event_name", "slug", "event_properties"),
        key=_field("user_id"),
    ),
    Route(
        f"{_PLANE}.workspace_seed_task.workspace_seed",
        "workspace",
        "plane.workspace_seed.v1",
        ("workspace_id",),
        key=_field("workspace_id"),
    ),
    *(
        Route(kind.plane_task, "emails", kind.event_type, kind.plane_args, key=_field(kind.key_field))
        for kind in MAIL_TYPES
    ),
)

BY_TASK: dict[str, Route] = {route.plane_task: route for route in ROUTES}
