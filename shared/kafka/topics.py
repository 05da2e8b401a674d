"""Create every topic the registry needs (`plane-workers topics create`)."""

from __future__ import annotations

import logging
import time

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from shared import registry
from shared.kafka.config import client_config
from shared.settings import Settings

log = logging.getLogger(__name__)


def create_topics(settings: Settings, replication_factor: int = 1, timeout_s: float = 30.0) -> list[str]:
    """Create missing topics; existing ones are left alone. Returns the names created."""
    admin = AdminClient(client_config(settings))
    wanted = {settings.topic(name): partitions for name, partitions in registry.all_topics()}
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            existing = set(admin.list_topics(timeout=5).topics)
            break
        except KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    missing = [
        NewTopic(name, num_partitions=partitions, replication_factor=replication_factor)
        for name, partitions in sorted(wanted.items())
        if name not in existing
    ]
    if not missing:
        return []
    created: list[str] = []
    for name, future in admin.create_topics(missing, operation_timeout=timeout_s).items():
        try:
            future.result()
            created.append(name)
        except KafkaException as exc:
            if exc.args[0].code() != 36:  # TOPIC_ALREADY_EXISTS: a concurrent creator won
                raise
    log.info("created %d topic(s)", len(created))
    return created
