"""The benchmarks' SMTP server: aiosmtpd in a process of its own that only counts.

`Sink(tally)` spawns it on a free port; the process shares no GIL with anything measured, and its
CPU is read apart (`cpu_s`). What it counts is the `tally`'s (a `Tally` subclass, defined at a
module's top level so that the spawned process can import it): every mail accepted is handed to
`tally.count`, and `Sink.call(op)` answers `tally.answer(op)` (`"reset"`: the answer, then the
counts reset). All of the tally's methods run under one lock.

The clients are smtplib (ours and Django's) and the envelope is only counted: MAIL and RCPT skip
aiosmtpd's RFC 5321 address parser (a fifth of its CPU per mail), and DATA reads the message in a
few reads up to the final CRLF.CRLF instead of awaiting every line (about 1 ms of CPU per mail,
as much as a job's own work), so the sink stays far from being the limit. smtplib sends nothing
after the data until the reply.
"""

from __future__ import annotations

import time
from multiprocessing.connection import Connection as Pipe
from typing import Any

import psutil


class Tally:
    """Mails, bytes and connections; a subclass counts more (extending `reset`, `count`, `stats`)."""

    def reset(self) -> None:
        self.mails = self.bytes = self.connections = 0

    def count(self, rcpt_tos: list[str], message: bytes) -> None:
        """One mail accepted: `message` as it came in DATA (dot-stuffed, without the final '.')."""
        self.mails += 1
        self.bytes += len(message)

    def stats(self) -> dict[str, Any]:
        return {"mails": self.mails, "bytes": self.bytes, "connections": self.connections}

    def answer(self, op: str) -> Any:
        return self.stats()


def unstuffed(message: bytes) -> bytes:
    """The message without DATA's dot-stuffing."""
    return message.replace(b"\r\n..", b"\r\n.")


def head(message: bytes) -> bytes:
    """The header block, folded lines unfolded, LF line ends."""
    block = message[: message.find(b"\r\n\r\n")].replace(b"\r\n ", b" ").replace(b"\r\n\t", b" ")
    return block.replace(b"\r\n", b"\n")


def _sink_main(pipe: Pipe, port: int, tally: Tally, server_hostname: str | None) -> None:
    """aiosmtpd that counts into `tally`; answers on `pipe` until 'stop'."""
    import threading

    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import SMTP

    lock = threading.Lock()

    class CountingSMTP(SMTP):
        def connection_made(self, transport: Any) -> None:
            with lock:
                tally.connections += 1
            super().connection_made(transport)

        async def smtp_MAIL(self, arg: str) -> None:
            self.envelope.mail_from = arg.partition(":")[2].split(" ")[0].strip("<>")
            await self.push("250 OK")

        async def smtp_RCPT(self, arg: str) -> None:
            self.envelope.rcpt_tos.append(arg.partition(":")[2].split(" ")[0].strip("<>"))
            await self.push("250 OK")

        async def smtp_DATA(self, arg: str) -> None:
            if not self.envelope.rcpt_tos:
                await self.push("503 Error: need RCPT command")
                return
            await self.push("354 End data with <CR><LF>.<CR><LF>")
            data = b"\r\n"  # so that an empty message also ends in CRLF.CRLF
            while not data.endswith(b"\r\n.\r\n"):
                more = await self._reader.read(1 << 16)
                if not more:
                    return  # the client went away: not accepted, not counted
                data += more
            with lock:
                tally.count(self.envelope.rcpt_tos, data[2:-3])
            self._set_post_data_state()
            await self.push("250 OK")

    class CountingController(Controller):
        def factory(self) -> SMTP:
            return CountingSMTP(self.handler, **self.SMTP_kwargs)

    kwargs = {"server_hostname": server_hostname} if server_hostname else {}
    controller = CountingController(object(), hostname="127.0.0.1", port=port, **kwargs)
    with lock:
        tally.reset()
    controller.start()
    with lock:
        tally.reset()  # the controller's own readiness probe
    pipe.send("ready")
    while (op := pipe.recv()) != "stop":
        with lock:
            answer = tally.answer(op)
            if op == "reset":
                tally.reset()
        pipe.send(answer)
    controller.stop()


class Sink:
    """The sink's process; `server_hostname` fixes its greeting name (else aiosmtpd resolves its
    FQDN on every connection), `poll_s` is how often `wait` asks."""

    def __init__(self, tally: Tally, *, server_hostname: str | None = None, poll_s: float = 0.02) -> None:
        import multiprocessing

        from shared.embedded.ports import free_port

        context = multiprocessing.get_context("spawn")
        self.port = free_port()
        self.poll_s = poll_s
        self._pipe, child = context.Pipe()
        args = (child, self.port, tally, server_hostname)
        self.proc = context.Process(target=_sink_main, args=args, daemon=True)
        self.proc.start()
        if not self._pipe.poll(60) or self._pipe.recv() != "ready":
            raise RuntimeError("the SMTP sink did not start")
        self._process = psutil.Process(self.proc.pid)

    def call(self, op: str) -> Any:
        self._pipe.send(op)
        return self._pipe.recv()

    def cpu_s(self) -> float:
        times = self._process.cpu_times()
        return times.user + times.system

    def wait(self, mails: int, timeout_s: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while (stats := self.call("stats"))["mails"] < mails:
            if time.monotonic() > deadline:
                raise RuntimeError(f"after {timeout_s:.0f} s the sink has {stats['mails']}/{mails} mails")
            time.sleep(self.poll_s)
        return stats

    def close(self) -> None:
        if self.proc.is_alive():
            self._pipe.send("stop")
            self.proc.join(10)
        if self.proc.is_alive():
            self.proc.kill()
