"""asyncio connections dialled at a vetted IP, pooled per (scheme, host, port, IP), as
`transport.PinnedPools` does for the thread-per-request client.

Pinning: the socket connects to the address vetting approved; TLS is negotiated for the URL's
host name (SNI and certificate checks on the name, with a context that requires both). Keying on
the IP and the name means a connection opened for one vetted address and host is never used for
another. Each pool holds at most `per_endpoint` connections, busy or idle, and further requests
wait for one (within their deadline): a slow receiver ties up at most that many sockets. Idle
connections are dropped after `keepalive_s`, or as soon as the peer closes them; the least
recently used pools beyond `max_pools` lose their idle connections.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field

from shared.http.wire import Connection

PoolKey = tuple[str, str, int, str]  # scheme, host, port, vetted IP


@dataclass
class _Pool:
    open: int = 0  # idle and busy
    idle: deque[tuple[Connection, float]] = field(default_factory=deque)  # (connection, idle since)
    waiters: deque[asyncio.Future[None]] = field(default_factory=deque)

    def wake_one(self) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return


class PinnedConnections:
    """Use from one event loop."""

    def __init__(
        self, *, per_endpoint: int, max_pools: int, keepalive_s: float, ssl_context: ssl.SSLContext
    ) -> None:
        self._per_endpoint = per_endpoint
        self._max_pools = max_pools
        self._keepalive_s = keepalive_s
        self._ssl_context = ssl_context
        self._pools: OrderedDict[PoolKey, _Pool] = OrderedDict()

    async def acquire(self, key: PoolKey, connect_timeout_s: float) -> Connection:
        """An idle connection of the pool, or a new one; waits while the pool is full.
        Connect errors (OSError, ssl.SSLError, TimeoutError after `connect_timeout_s`) propagate."""
        pool = self._pool(key)
        while True:
            now = time.monotonic()
            while pool.idle:
                conn, since = pool.idle.pop()  # the most recently used: the likeliest still open
                if conn.reusable and now - since < self._keepalive_s:
                    return conn
                self._drop(pool, conn)
            if pool.open < self._per_endpoint:
                break
            waiter = asyncio.get_running_loop().create_future()
            pool.waiters.append(waiter)
            try:
                await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    pool.wake_one()  # woken, then cancelled: pass the turn on
                raise
        pool.open += 1
        try:
            return await self._connect(key, connect_timeout_s)
        except BaseException:
            pool.open -= 1
            pool.wake_one()
            raise

    async def _connect(self, key: PoolKey, connect_timeout_s: float) -> Connection:
        scheme, host, port, ip = key
        tls = scheme == "https"
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(connect_timeout_s):  # TCP and TLS handshake together
            _, conn = await loop.create_connection(
                Connection,
                ip,
                port,
                ssl=self._ssl_context if tls else None,
                server_hostname=host if tls else None,
            )
        return conn

    def release(self, key: PoolKey, conn: Connection, reusable: bool) -> None:
        """Back to its pool when `reusable` (its response read in full), closed otherwise."""
        pool = self._pools.get(key)
        if pool is None:  # evicted meanwhile
            conn.close()
            return
        if reusable and conn.reusable:
            pool.idle.append((conn, time.monotonic()))
        else:
            self._drop(pool, conn)
        pool.wake_one()

    def _drop(self, pool: _Pool, conn: Connection) -> None:
        conn.close()
        pool.open -= 1

    def _pool(self, key: PoolKey) -> _Pool:
        pool = self._pools.get(key)
        if pool is not None:
            self._pools.move_to_end(key)
            return pool
        pool = self._pools[key] = _Pool()
        if len(self._pools) > self._max_pools:
            # Only pools with nothing busy and nobody waiting go; their idle sockets are closed.
            for old_key in [k for k, p in self._pools.items() if p.open == len(p.idle) and not p.waiters]:
                if len(self._pools) <= self._max_pools or old_key == key:
                    break
                for conn, _ in self._pools.pop(old_key).idle:
                    conn.close()
        return pool

    def __len__(self) -> int:
        return len(self._pools)

    def close(self) -> None:
        for pool in self._pools.values():
            for conn, _ in pool.idle:
                conn.close()
            pool.idle.clear()
        self._pools.clear()
