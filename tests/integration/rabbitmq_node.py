"""A RabbitMQ node of a test's own: the machine's `rabbitmq-server` under another node name, port
and data directory, so a test can stop and start the broker itself. The shared node on 5672 serves
every other bridge test at once and is never restarted.

Started as root, RabbitMQ's wrapper script runs the node as the `rabbitmq` user, which must own
the data directory and reach it: it lives outside pytest's tmp dir (0700, root's).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

WRAPPER = "/usr/sbin/rabbitmq-server"  # Debian's: switches to the rabbitmq user when root
SCRIPT = "/usr/lib/rabbitmq/bin/rabbitmq-server"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True
    return False


def available() -> bool:
    return shutil.which("rabbitmq-server") is not None and Path(SCRIPT).exists()


class RabbitMQNode:
    def __init__(self) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="plane-workers-rabbitmq-"))
        self.base.chmod(0o755)
        self.name = f"pw{uuid.uuid4().hex[:10]}@localhost"
        self.port = _free_port()
        self.dist_port = _free_port()
        self._process: subprocess.Popen[bytes] | None = None
        base = self.base
        (base / "rabbitmq.conf").write_text(f"listeners.tcp.default = {self.port}\nloopback_users = none\n")
        (base / "enabled_plugins").write_text("[].\n")  # no management listener to collide on
        if os.geteuid() == 0:
            shutil.chown(base, "rabbitmq")
            for child in base.iterdir():
                shutil.chown(child, "rabbitmq")

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    def start(self, timeout_s: float = 90) -> None:
        """Start the node (again, on the same name, port and data) and wait for its listener."""
        env = os.environ | {
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.base / "log"),
            "RABBITMQ_CONFIG_FILE": str(self.base / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.base / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(self.base / "pid"),
        }
        command = WRAPPER if os.geteuid() == 0 else SCRIPT
        log = (self.base / "server.out").open("ab")
        self._process = subprocess.Popen(
            [command], env=env, cwd=self.base, stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout_s
        while not _listening(self.port):
            if self._process.poll() is not None or time.monotonic() > deadline:
                tail = (self.base / "server.out").read_bytes()[-2000:].decode("utf-8", "replace")
                self.stop()
                raise RuntimeError(f"RabbitMQ node {self.name} did not come up: {tail}")
            time.sleep(0.2)

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        """Stop the node: SIGTERM is RabbitMQ's orderly shutdown (durable queues and persistent
        messages survive it), SIGKILL a crash. Returns once the process is gone."""
        pid_file = self.base / "pid"
        with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError):
            os.kill(int(pid_file.read_text().strip()), sig)
        if self._process is not None:
            try:
                self._process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None
        pid_file.unlink(missing_ok=True)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)
