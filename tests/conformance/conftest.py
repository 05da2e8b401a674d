"""The world every conformance case starts from: Plane's schema in a fresh database, fresh topics,
S3 buckets, an SMTP capture and a loopback receiver, all real servers on this machine."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest

from shared.conformance import ReceivedRequest, SampleWorld
from shared.db.engine import get_engine
from shared.embedded.smtp import EmbeddedSMTP
from shared.settings import Settings
from tests.integration.http_servers import HttpServer


class RecordingReceiver:
    """A webhook endpoint on loopback: answers 200 to everything and keeps every request."""

    def __init__(self) -> None:
        self._server = HttpServer()

    def url(self, path: str = "/") -> str:
        return self._server.url(path)

    def requests(self) -> list[ReceivedRequest]:
        """Complete requests only: a sender killed mid-request leaves one whose body is shorter
        than its Content-Length, which a real receiver rejects (its signature cannot verify)."""
        received = []
        for r in list(self._server.requests):
            headers = {k.lower(): v for k, v in r.headers.items()}
            if len(r.body) == int(headers.get("content-length") or 0):
                received.append(ReceivedRequest(r.method, r.path, headers, r.body))
        return received

    def close(self) -> None:
        self._server.close()


@pytest.fixture
def receiver() -> Iterator[RecordingReceiver]:
    server = RecordingReceiver()
    yield server
    server.close()


@pytest.fixture
def world_of(
    s3_settings: Settings, smtp: EmbeddedSMTP, receiver: RecordingReceiver
) -> Callable[[int], SampleWorld]:
    """`world_of(size)`: the world for one case, sized for it."""
    settings = replace(
        s3_settings, email_host="127.0.0.1", email_port=smtp.port, email_use_tls=False, email_use_ssl=False
    )

    def make(size: int) -> SampleWorld:
        engine = get_engine(settings.database_url)
        return SampleWorld(engine, settings, receiver, smtp, random.Random(size), size)

    return make
