"""A producer that returns only once the broker confirmed every message.

Used by `plane-workers produce`, the DLQ and retry paths and by handlers that emit events: a
caller that moves on (commits an offset, answers an operator) must know the event is durable.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from confluent_kafka import KafkaError, Message, Producer

from shared.events.envelope import Event
from shared.kafka.config import max_message_bytes, producer_config
from shared.metrics import EVENTS_PRODUCED
from shared.settings import Settings

Headers = Sequence[tuple[str, bytes]]


class DeliveryFailed(RuntimeError):
    pass


class EventProducer:
    def __init__(self, settings: Settings, timeout_s: float = 30.0) -> None:
        self._settings = settings
        self._producer = Producer(producer_config(settings))
        # librdkafka refuses a larger message (key, value and headers) in produce() itself.
        self.max_message_bytes = max_message_bytes(settings)
        self._timeout_s = timeout_s

    def send(self, topic: str, event: Event, key: str | None = None) -> None:
        """Produce one event to a logical topic and wait for the broker's acknowledgement."""
        self.send_raw(self._settings.topic(topic), event.to_json(), key=key)
        EVENTS_PRODUCED.labels(topic=topic).inc()

    def send_many(self, topic: str, events: Iterable[tuple[str | None, Event]]) -> int:
        batch = [(key, event.to_json(), ()) for key, event in events]
        self.send_raw_many(self._settings.topic(topic), batch)
        EVENTS_PRODUCED.labels(topic=topic).inc(len(batch))
        return len(batch)

    def send_raw(
        self, physical_topic: str, value: bytes, key: str | bytes | None = None, headers: Headers = ()
    ) -> None:
        self.send_raw_many(physical_topic, [(key, value, headers)])

    def send_raw_many(
        self,
        physical_topic: str,
        messages: Iterable[tuple[str | bytes | None, bytes, Headers]],
    ) -> None:
        errors: list[KafkaError] = []
        pending = 0

        def on_delivery(err: KafkaError | None, _msg: Message) -> None:
            nonlocal pending
            pending -= 1
            if err is not None:
                errors.append(err)

        for key, value, headers in messages:
            while True:
                try:
                    self._producer.produce(
                        physical_topic,
                        value=value,
                        key=key,
                        headers=list(headers),
                        on_delivery=on_delivery,
                    )
                    pending += 1
                    break
                except BufferError:
                    # Local queue full: serve delivery reports to make room, then try again.
                    self._producer.poll(0.1)
        remaining = self._producer.flush(self._timeout_s)
        if remaining or pending:
            raise DeliveryFailed(f"{pending} message(s) to {physical_topic} not confirmed in time")
        if errors:
            raise DeliveryFailed(f"broker refused {len(errors)} message(s): {errors[0]}")

    def check_broker(self, physical_topic: str, timeout_s: float) -> None:
        """Raise KafkaException unless a broker answers a metadata request in `timeout_s`."""
        self._producer.list_topics(physical_topic, timeout=timeout_s)

    def close(self) -> None:
        self._producer.flush(self._timeout_s)
