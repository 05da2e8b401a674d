"""urllib3 connections that dial a vetted IP, and a bounded pool per (scheme, host, port, IP).

Pinning: the connection keeps the original host name (so `Host`, TLS SNI and certificate
verification all use the name) but its socket connects to the address vetting approved. There is
no DNS lookup at connect time, so a rebinding DNS server gets no second chance.

Deadline: every socket call first sets its timeout to what is left of the running request's
deadline (`deadline.current_deadline`), for plain TCP and for TLS (via `SSLContext.sslsocket_class`),
so connect + handshake + headers + body together cannot outlast it, however slowly a peer drips.

No proxy is ever used (urllib3 ignores *_PROXY variables): a proxy would do its own DNS.
"""

from __future__ import annotations

import socket
import ssl
import sys
import threading
from collections import OrderedDict
from typing import Any

from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
from urllib3.util.timeout import Timeout

from shared.http.deadline import current_deadline


def _arm(sock: socket.socket) -> None:
    deadline = current_deadline.get()
    if deadline is not None:
        sock.settimeout(deadline.socket_timeout())


class DeadlineSocket(socket.socket):
    """A TCP socket whose every blocking call is bounded by the running request's deadline."""

    __slots__ = ()

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        _arm(self)
        return super().recv(bufsize, flags)

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        _arm(self)
        return super().recv_into(buffer, nbytes, flags)

    def send(self, data: Any, flags: int = 0) -> int:
        _arm(self)
        return super().send(data, flags)

    def sendall(self, data: Any, flags: int = 0) -> None:
        _arm(self)
        super().sendall(data, flags)


class DeadlineSSLSocket(ssl.SSLSocket):
    """The TLS counterpart; `recv*`/`sendall` go through `read`/`send`, so these cover all I/O."""

    def do_handshake(self, block: bool = False) -> None:
        _arm(self)
        super().do_handshake(block)

    def read(self, len: int = 1024, buffer: Any = None) -> Any:
        _arm(self)
        return super().read(len, buffer)

    def write(self, data: Any) -> int:
        _arm(self)
        return super().write(data)

    def send(self, data: Any, flags: int = 0) -> int:
        _arm(self)
        return super().send(data, flags)


def prepare_ssl_context(context: ssl.SSLContext | None) -> ssl.SSLContext:
    """Verified TLS only (certificate + host name); sockets bounded by the request deadline."""
    context = context or ssl.create_default_context()
    if context.verify_mode != ssl.CERT_REQUIRED or not context.check_hostname:
        raise ValueError("the safe client requires CERT_REQUIRED and check_hostname=True")
    context.sslsocket_class = DeadlineSSLSocket
    return context


class _PinnedDial:
    """Mixin for urllib3 connections: `_new_conn` dials `pinned_ip`, never resolving `host`."""

    host: str
    port: int
    timeout: Any
    socket_options: Any

    def __init__(self, *args: Any, pinned_ip: str, **kwargs: Any) -> None:
        self.pinned_ip = pinned_ip
        super().__init__(*args, **kwargs)

    def _new_conn(self) -> socket.socket:
        ip = self.pinned_ip
        sock = DeadlineSocket(socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_STREAM)
        try:
            for option in self.socket_options or ():
                sock.setsockopt(*option)
            cap = Timeout.resolve_default_timeout(self.timeout)
            deadline = current_deadline.get()
            sock.settimeout(deadline.socket_timeout(cap) if deadline is not None else cap)
            sock.connect((ip, self.port))
        except TimeoutError as exc:
            sock.close()
            raise ConnectTimeoutError(self, f"connect to {self.host} ({ip}) timed out") from exc
        except OSError as exc:
            sock.close()
            raise NewConnectionError(self, f"cannot connect to {self.host} ({ip}): {exc}") from exc
        sys.audit("http.client.connect", self, self.host, self.port)
        return sock


class PinnedHTTPConnection(_PinnedDial, HTTPConnection):
    pass


class PinnedHTTPSConnection(_PinnedDial, HTTPSConnection):
    pass


class _PinnedHTTPPool(HTTPConnectionPool):
    ConnectionCls = PinnedHTTPConnection


class _PinnedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = PinnedHTTPSConnection


PoolKey = tuple[str, str, int, str]


class PinnedPools:
    """Thread-safe LRU of connection pools, one per (scheme, host, port, vetted IP).

    Keying on the IP means a connection opened for one vetted address is never reused for
    another. Each pool blocks at `maxsize` connections, which is the per-endpoint limit: a slow
    receiver can tie up at most that many of a worker's sockets.
    """

    def __init__(self, *, maxsize_per_endpoint: int, max_pools: int, ssl_context: ssl.SSLContext) -> None:
        self._maxsize = maxsize_per_endpoint
        self._max_pools = max_pools
        self._ssl_context = ssl_context
        self._lock = threading.Lock()
        self._pools: OrderedDict[PoolKey, HTTPConnectionPool] = OrderedDict()

    def get(self, scheme: str, host: str, port: int, ip: str) -> HTTPConnectionPool:
        key = (scheme, host, port, ip)
        with self._lock:
            pool = self._pools.get(key)
            if pool is not None:
                self._pools.move_to_end(key)
                return pool
            pool = self._new_pool(key)
            self._pools[key] = pool
            while len(self._pools) > self._max_pools:
                # Closing only drops idle sockets; a request still using the pool finishes and its
                # connection is closed on release instead of being pooled.
                _, evicted = self._pools.popitem(last=False)
                evicted.close()
            return pool

    def _new_pool(self, key: PoolKey) -> HTTPConnectionPool:
        scheme, host, port, ip = key
        common: dict[str, Any] = {"maxsize": self._maxsize, "block": True, "retries": False, "pinned_ip": ip}
        if scheme == "https":
            return _PinnedHTTPSPool(host, port, ssl_context=self._ssl_context, **common)
        return _PinnedHTTPPool(host, port, **common)

    def __len__(self) -> int:
        return len(self._pools)

    def close(self) -> None:
        with self._lock:
            pools = list(self._pools.values())
            self._pools.clear()
        for pool in pools:
            pool.close()
