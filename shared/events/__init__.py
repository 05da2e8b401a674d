"""CloudEvents envelopes, their JSON Schemas, and the producer that waits for the broker."""

from shared.events.envelope import Event, InvalidEvent, new_event, parse_event

__all__ = ["Event", "InvalidEvent", "new_event", "parse_event"]
