"""The one line a dead processor is logged with names the cause, not an empty wrapper."""

from __future__ import annotations

from arroyo.utils.retries import RetryException
from confluent_kafka import KafkaError, KafkaException

from shared.kafka.strategy import describe


def test_the_first_exception_with_a_message_in_the_chain_is_described() -> None:
    cause = KafkaException(
        KafkaError(KafkaError._WAIT_COORD, "Commit failed: Local: Waiting for coordinator")
    )
    try:
        try:
            raise cause
        except KafkaException as exc:
            raise RetryException() from exc  # as arroyo's commit retry policy gives up
    except RetryException as wrapper:
        line = describe(wrapper)
    assert line == "KafkaException: _WAIT_COORD: Commit failed: Local: Waiting for coordinator"
    assert describe(ValueError("bad\nsecond line")) == "ValueError: bad"
    assert describe(RuntimeError()) == "RuntimeError"
