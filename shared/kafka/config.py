"""librdkafka configuration built from settings, shared by consumers, producers and admin."""

from __future__ import annotations

import logging
from typing import Any

from shared.settings import Settings


def client_config(settings: Settings) -> dict[str, Any]:
    if not settings.kafka_bootstrap_servers:
        raise RuntimeError(
            "KAFKA_BOOTSTRAP_SERVERS is not set (use `plane-workers dev` for the embedded stack)"
        )
    config: dict[str, Any] = {
        "bootstrap.servers": settings.kafka_bootstrap_servers,
        "security.protocol": settings.kafka_security_protocol,
        "client.id": "plane-workers",
    }
    if settings.kafka_sasl_mechanism:
        config |= {
            "sasl.mechanism": settings.kafka_sasl_mechanism,
            "sasl.username": settings.kafka_sasl_username,
            "sasl.password": settings.kafka_sasl_password,
        }
    # TLS (security.protocol SSL or SASL_SSL): only what is set, so librdkafka's defaults stay.
    tls = {
        "ssl.ca.location": settings.kafka_ssl_ca_location,
        "ssl.certificate.location": settings.kafka_ssl_certificate_location,
        "ssl.key.location": settings.kafka_ssl_key_location,
        "ssl.key.password": settings.kafka_ssl_key_password,
    }
    config |= {key: value for key, value in tls.items() if value}
    return config


def max_message_bytes(settings: Settings) -> int:
    """The producer's message.max.bytes: room for a valid event plus key and headers. Anything
    produced from what came in (dead letters) must be cut to fit it (shared/kafka/deadletter.py)."""
    return max(settings.event_max_bytes * 2, 1_048_576)


def producer_config(settings: Settings) -> dict[str, Any]:
    # Idempotent producer: broker-side dedupe of librdkafka's own retries, acks from all ISRs.
    return client_config(settings) | {
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "message.max.bytes": max_message_bytes(settings),
    }


# Retry tiers wait seconds to hours anyway: their idle fetches need not poll as often as the main
# topic's (which matters on the embedded broker, see KAFKA_FETCH_WAIT_MAX_MS).
RETRY_TIER_FETCH_WAIT_MS = 500


def consumer_config(settings: Settings, group: str, *, retry_tier: bool = False) -> dict[str, Any]:
    fetch_wait_ms = settings.kafka_fetch_wait_max_ms
    if retry_tier:
        fetch_wait_ms = max(fetch_wait_ms, RETRY_TIER_FETCH_WAIT_MS)
    return client_config(settings) | {
        "group.id": group,
        "auto.offset.reset": "earliest",
        # arroyo stores and commits offsets itself, only after the strategy says they are done.
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "session.timeout.ms": settings.kafka_session_timeout_ms,
        "heartbeat.interval.ms": max(settings.kafka_session_timeout_ms // 6, 500),
        "max.poll.interval.ms": settings.kafka_max_poll_interval_ms,
        "fetch.wait.max.ms": fetch_wait_ms,
        "fetch.max.bytes": max(settings.event_max_bytes * 4, 52_428_800),
    }


class LibrdkafkaLog(logging.Handler):
    """Keeps librdkafka's log lines (handed over by poll()) instead of letting them reach stderr,
    so a command can say in one line why a broker did not answer: `{"logger": log.logger}`."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.lines: list[str] = []
        self.logger = logging.getLogger(name)
        self.logger.handlers[:] = [self]
        self.logger.propagate = False

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())

    def last_reason(self) -> str:
        """The last line's message, without librdkafka's `[thrd:...]:` prefix ('' if none)."""
        return self.lines[-1].rpartition("]: ")[2] if self.lines else ""
