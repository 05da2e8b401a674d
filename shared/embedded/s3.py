"""moto's S3 in server mode: the real S3 HTTP API on loopback, reached by boto3 over the wire."""

from __future__ import annotations

from shared.embedded.ports import free_port


class EmbeddedS3:
    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self._server = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> str:
        from moto.server import ThreadedMotoServer

        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()
        return self.endpoint

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
