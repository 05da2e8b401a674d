"""Real loopback servers for the safe HTTP client tests: they count every accepted connection.

`CountingListener` only accepts (and closes): it proves a blocked target was never dialled.
`HttpServer` runs a route table on http.server (HTTP/1.1 keep-alive, optional TLS) and records
each request. `RawServer` runs a function per connection for misbehaving peers (drip, flood).
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


class CountingListener:
    """Accepts and immediately closes connections, counting them."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.sock = socket.socket(_family(host), socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(64)
        self.sock.settimeout(0.05)
        self.host, self.port = host, self.sock.getsockname()[1]
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            self._on_accept(conn)

    def _on_accept(self, conn: socket.socket) -> None:
        conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


Route = Callable[[BaseHTTPRequestHandler], None]


@dataclass
class HttpServer:
    """ThreadingHTTPServer with routes `path -> handler(request)`; unknown paths answer 200 'ok'."""

    host: str = "127.0.0.1"
    port: int = 0
    routes: dict[str, Route] = field(default_factory=dict)
    tls: ssl.SSLContext | None = None
    requests: list[Recorded] = field(default_factory=list)
    accepted: int = 0

    def __post_init__(self) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                outer.requests.append(Recorded(self.command, self.path, dict(self.headers.items()), body))
                self.body = body  # for routes: the request's own body, whatever else arrives meanwhile
                route = outer.routes.get(self.path.split("?")[0])
                if route is not None:
                    route(self)
                else:
                    send(self, 200, b"ok")

            do_GET = do_POST = do_PUT = do_HEAD = _handle

        class Server(ThreadingHTTPServer):
            address_family = _family(self.host)
            daemon_threads = True
            # socketserver's default listen backlog of 5 makes a burst of connects (50 crawls at
            # once) wait for SYN retries of 1 s and more, which a real web server does not.
            request_queue_size = 128

            def get_request(self) -> tuple[socket.socket, object]:
                conn, addr = super().get_request()
                outer.accepted += 1
                if outer.tls is not None:
                    conn.settimeout(5)
                    conn = outer.tls.wrap_socket(conn, server_side=True)
                return conn, addr

        self.server = Server((self.host, self.port), Handler)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05})
        self._thread.daemon = True
        self._thread.start()

    def url(self, path: str = "/", host: str | None = None, scheme: str | None = None) -> str:
        scheme = scheme or ("https" if self.tls else "http")
        host = host or (f"[{self.host}]" if ":" in self.host else self.host)
        return f"{scheme}://{host}:{self.port}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def send(
    handler: BaseHTTPRequestHandler, status: int, body: bytes = b"", headers: dict[str, str] | None = None
) -> None:
    handler.send_response(status)
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    if handler.command != "HEAD":
        handler.wfile.write(body)


def redirect(location: str, status: int = 302) -> Route:
    return lambda h: send(h, status, b"moved", {"Location": location})


class RawServer(CountingListener):
    """Runs `serve(conn)` in a thread per accepted connection; for peers http.server can't fake."""

    def __init__(self, serve: Callable[[socket.socket], None], host: str = "127.0.0.1") -> None:
        self.serve = serve
        super().__init__(host)

    def _on_accept(self, conn: socket.socket) -> None:
        threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError), conn:
            self.serve(conn)

    def url(self, path: str = "/") -> str:
        return f"http://{self.host}:{self.port}{path}"


def read_request_head(conn: socket.socket) -> bytes:
    """Read up to the blank line ending the request head (the tests send no bodies here)."""
    data = b""
    conn.settimeout(5)
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


@contextlib.contextmanager
def running(*servers: CountingListener | HttpServer | RawServer) -> Iterator[None]:
    try:
        yield
    finally:
        for server in servers:
            server.close()
