"""The embedded default: start whatever is not configured, hand back the environment to use.

`EmbeddedStack` is a context manager; on exit every server it started is stopped, so no process
is left behind. A configured URL (DATABASE_URL, KAFKA_BOOTSTRAP_SERVERS, AWS_S3_ENDPOINT_URL,
EMAIL_HOST) always wins over the embedded server.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from types import TracebackType

from shared.embedded.kafka import EmbeddedKafka
from shared.embedded.postgres import EmbeddedPostgres
from shared.embedded.s3 import EmbeddedS3
from shared.embedded.smtp import EmbeddedSMTP
from shared.settings import Settings

log = logging.getLogger(__name__)

# tansu makes a new group's first join wait ~half the session timeout; keep it short locally.
EMBEDDED_SESSION_TIMEOUT_MS = 6000
# tansu holds a fetch for its whole wait even when data arrives (Kafka answers at once): with
# librdkafka's 500 ms each hop took ~125-250 ms, with 10 ms about 2 ms.
EMBEDDED_FETCH_WAIT_MAX_MS = 10


class EmbeddedStack:
    def __init__(self, settings: Settings, state_dir: Path | None = None) -> None:
        self.base = settings
        self.state_dir = Path(state_dir or settings.plane_workers_state_dir).resolve()
        self.postgres: EmbeddedPostgres | None = None
        self.kafka: EmbeddedKafka | None = None
        self.s3: EmbeddedS3 | None = None
        self.smtp: EmbeddedSMTP | None = None
        self._stack = contextlib.ExitStack()
        self.settings = settings

    def __enter__(self) -> EmbeddedStack:
        try:
            self.settings = self._start()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stack.close()

    def _start(self) -> Settings:
        s = self.base
        changes: dict[str, object] = {}
        if not s.database_url:
            self.postgres = EmbeddedPostgres(self.state_dir / "postgres")
            changes["database_url"] = self.postgres.start()
            self._stack.callback(self.postgres.stop)
            log.info("embedded PostgreSQL at %s", self.state_dir / "postgres")
        if not s.kafka_bootstrap_servers:
            self.kafka = EmbeddedKafka(self.state_dir / "logs")
            changes["kafka_bootstrap_servers"] = self.kafka.start()
            changes["kafka_session_timeout_ms"] = EMBEDDED_SESSION_TIMEOUT_MS
            changes["kafka_fetch_wait_max_ms"] = EMBEDDED_FETCH_WAIT_MAX_MS
            self._stack.callback(self.kafka.stop)
            log.info("embedded Kafka-protocol broker (tansu) at %s", self.kafka.bootstrap)
        if not s.aws_s3_endpoint_url:
            self.s3 = EmbeddedS3()
            changes |= {
                "aws_s3_endpoint_url": self.s3.start(),
                "aws_access_key_id": "embedded",
                "aws_secret_access_key": "embedded",
            }
            self._stack.callback(self.s3.stop)
        if not s.email_host:
            self.smtp = EmbeddedSMTP()
            host, port = self.smtp.start()
            changes |= {
                "email_host": host,
                "email_port": port,
                "email_use_tls": False,
                "email_use_ssl": False,
            }
            self._stack.callback(self.smtp.stop)
        return replace(s, **changes)  # type: ignore[arg-type]

    def environ(self) -> dict[str, str]:
        """Environment variables that point a child process at this stack."""
        return env_for(self.settings)


def env_for(settings: Settings, base: Mapping[str, str] | None = None) -> dict[str, str]:
    from shared.settings import VARIABLES

    env = dict(os.environ if base is None else base)
    for var in VARIABLES:
        value = getattr(settings, var.env.lower())
        if isinstance(value, bool):
            value = "1" if value else "0"
        elif isinstance(value, tuple):
            value = ",".join(value)
        env[var.env] = str(value)
    env["KAFKA_SESSION_TIMEOUT_MS"] = str(settings.kafka_session_timeout_ms)
    return env
