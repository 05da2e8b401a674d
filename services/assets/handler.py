"""Consumer `assets`: one topic for Plane's two asset tasks, dispatched by event type."""

from __future__ import annotations

from services.assets import copy, metadata
from shared.events import Event
from shared.kafka.handler import HandlerContext

HANDLERS = {"plane.asset_metadata.v1": metadata.handle, "plane.asset_copy.v1": copy.handle}


def handle(event: Event, ctx: HandlerContext) -> None:
    HANDLERS[event.type](event, ctx)
