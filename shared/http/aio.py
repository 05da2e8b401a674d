"""`AsyncSafeHttpClient`: the safe client's rules on asyncio, for callers that keep many requests
in flight on one event loop (webhook-deliveries) instead of a thread per request.

The rules are `SafeHttpClient`'s, most of them through the same code:
- strict URL parse (`parse_target`), then the host resolved once per request (the injected
  resolver, on a thread, abandoned at the deadline) and every address vetted (`needs_dns`,
  `vet_resolved`: reject-any, allowlist, IANA special-purpose registries);
- the socket connects to a vetted IP, pooled per (scheme, host, port, IP), with `Host` naming
  the URL's host and TLS negotiated for it: SNI and certificate checks on the name
  (`aiopool`); only a failed connect moves to the next vetted address;
- redirects are returned, never followed, unless the caller asks (`follow_redirects=N`), and
  then every rule runs again for each hop;
- nothing is decompressed (`Accept-Encoding: identity` unless the caller asks), at most
  `max_response_bytes + 1` body bytes are read, and a longer body drops its connection;
- one total deadline (`asyncio.timeout`) over DNS, waiting for a pooled connection, connect,
  TLS, every hop and the whole body;
- no proxy, no environment, no cookies: there is nothing that would read them.

HTTP/1.1 itself is `wire`'s, with http.client's leniency, so a receiver's answer (a NUL in a
header, invalid UTF-8) means the same to both clients. Errors are the same `HttpError` tree.
`LoopSafeHttpClient` runs one on a loop thread of its own behind the sync client's `request()`,
for threaded callers and for tests that hold both clients to the same cases.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ssl
import threading
from collections.abc import Collection, Coroutine, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from urllib3 import HTTPHeaderDict

from shared.http.addresses import Allowlist, IPAddress
from shared.http.aiopool import PinnedConnections, PoolKey
from shared.http.client import (
    REDIRECT_STATUSES,
    Headers,
    SafeResponse,
    caller_headers_of,
    check_request,
    drop_credentials_across,
    next_hop,
    request_headers,
)
from shared.http.deadline import Deadline
from shared.http.errors import ConnectError, ProtocolError, TlsError, TooManyRedirects
from shared.http.transport import prepare_ssl_context
from shared.http.urls import Target, parse_target
from shared.http.vetting import (
    Resolver,
    address_verdict,
    needs_dns,
    resolve_error,
    system_resolver,
    vet_resolved,
)
from shared.http.wire import Connection, encode_request, framing_of, keeps_alive, read_body, read_head

T = TypeVar("T")

_REDIRECT_DRAIN_LIMIT = 64 * 1024
_DEFAULT_PORTS = {"http": 80, "https": 443}


def host_header(target: Target) -> str:
    """`Host` as http.client writes it: the port only when it is not the scheme's default."""
    host = f"[{target.host}]" if ":" in target.host else target.host
    return host if target.port == _DEFAULT_PORTS[target.scheme] else f"{host}:{target.port}"


# A URL's parse is pure (the same string always gives the same Target, or the same error): a
# webhook's URL is parsed once, not on every delivery. Its addresses are still vetted each time.
_parse = functools.lru_cache(maxsize=4096)(parse_target)


class AsyncSafeHttpClient:
    """SSRF-safe, bounded asyncio HTTP client; `SafeHttpClient`'s parameters and rules. Use it
    from one event loop."""

    def __init__(
        self,
        allowlist: Allowlist | None = None,
        *,
        resolver: Resolver = system_resolver,
        ssl_context: ssl.SSLContext | None = None,
        allowed_ports: Collection[int] | None = None,
        require_https: bool = False,
        connect_timeout_s: float = 10.0,
        default_deadline_s: float = 30.0,
        default_max_response_bytes: int = 1024 * 1024,
        max_request_bytes: int = 1024 * 1024,
        max_connections_per_endpoint: int = 10,
        max_pools: int = 256,
        keepalive_s: float = 15.0,
        dns_threads: int = 16,
        user_agent: str = "plane-workers",
    ) -> None:
        self.allowlist = allowlist or Allowlist()
        self._verdict = address_verdict(self.allowlist)
        self._resolver = resolver
        self._allowed_ports = frozenset(allowed_ports) if allowed_ports is not None else None
        self._require_https = require_https
        self._connect_timeout_s = connect_timeout_s
        self._default_deadline_s = default_deadline_s
        self._default_max_response_bytes = default_max_response_bytes
        self._max_request_bytes = max_request_bytes
        self._user_agent = user_agent
        self._pools = PinnedConnections(
            per_endpoint=max_connections_per_endpoint,
            max_pools=max_pools,
            keepalive_s=keepalive_s,
            ssl_context=prepare_ssl_context(ssl_context),
        )
        self._dns_threads = dns_threads
        self._dns: ThreadPoolExecutor | None = None

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        deadline_s: float | None = None,
        max_response_bytes: int | None = None,
        follow_redirects: int = 0,
    ) -> SafeResponse:
        """`SafeHttpClient.request`, awaited."""
        check_request(method, body, self._max_request_bytes, follow_redirects)
        deadline = Deadline(deadline_s if deadline_s is not None else self._default_deadline_s)
        cap = self._default_max_response_bytes if max_response_bytes is None else max_response_bytes
        caller = caller_headers_of(headers)
        try:
            async with asyncio.timeout(deadline.remaining()):
                return await self._hops(method, url, caller, body, deadline, cap, follow_redirects)
        except TimeoutError as exc:
            raise deadline.error() from exc

    async def _hops(
        self,
        method: str,
        url: str,
        caller: Headers,
        body: bytes | None,
        deadline: Deadline,
        cap: int,
        follow_redirects: int,
    ) -> SafeResponse:
        hops: list[str] = []
        origin: tuple[str, str, int] | None = None
        while True:
            target = _parse(url, allowed_ports=self._allowed_ports, require_https=self._require_https)
            origin = drop_credentials_across(origin, target, caller)
            addresses = await self._vet(target)
            sent = [("Host", host_header(target)), *request_headers(target, caller, self._user_agent)]
            request = encode_request(method, target.request_target, sent, body)  # checked before dialling
            conn, key = await self._connect(target, addresses, deadline)
            reusable = False
            try:
                status, headers, data, truncated, reusable = await self._exchange(
                    conn, request, method, caller, cap, follow_redirects > len(hops)
                )
            finally:
                self._pools.release(key, conn, reusable)
            location = headers.get("location")
            if follow_redirects and status in REDIRECT_STATUSES and location:
                if len(hops) >= follow_redirects:
                    raise TooManyRedirects(f"more than {follow_redirects} redirects from {hops[0]}")
                hops.append(target.url)
                url, method, body = next_hop(url, location, status, method, body, caller)
                continue
            return SafeResponse(
                status=status,
                headers=headers,
                body=bytes(data),
                truncated=truncated,
                elapsed_s=deadline.elapsed(),
                url=target.url,
                peer_ip=key[3],
                redirects=tuple(hops),
            )

    async def _exchange(
        self,
        conn: Connection,
        request: bytes,
        method: str,
        caller: Headers,
        cap: int,
        may_follow: bool,
    ) -> tuple[int, HTTPHeaderDict, bytearray, bool, bool]:
        """One request on `conn`: (status, headers, body, truncated, connection reusable)."""
        assert conn.transport is not None
        try:
            conn.transport.write(request)
            head = await read_head(conn)
            framing = framing_of(head, method)
            # A redirect about to be followed only has its body drained (up to a limit) so the
            # connection can serve the next hop.
            limit = _REDIRECT_DRAIN_LIMIT if may_follow and head.status in REDIRECT_STATUSES else cap
            data, truncated, complete = await read_body(conn, framing, limit)
        except OSError as exc:
            raise ProtocolError(f"HTTP exchange failed: {exc}") from exc
        if truncated:
            del data[limit:]
        reusable = (
            complete
            and keeps_alive(head, framing)
            and "close" not in caller.get("connection", ("", ""))[1].lower()
        )
        return head.status, head.headers, data, truncated, reusable

    async def _vet(self, target: Target) -> tuple[IPAddress, ...]:
        raw = None
        if needs_dns(target, self.allowlist):
            loop = asyncio.get_running_loop()
            if self._dns is None:
                self._dns = ThreadPoolExecutor(self._dns_threads, thread_name_prefix="safe-http-dns")
            try:
                # getaddrinfo blocks and has no timeout: a thread, abandoned at the deadline.
                raw = await loop.run_in_executor(self._dns, self._resolver, target.host, target.port)
            except OSError as exc:
                raise resolve_error(target, exc) from exc
        return vet_resolved(target, self.allowlist, raw, self._verdict)

    async def _connect(
        self, target: Target, addresses: tuple[IPAddress, ...], deadline: Deadline
    ) -> tuple[Connection, PoolKey]:
        """A connection to the first vetted address that accepts one."""
        failures: list[str] = []
        for address in addresses:
            ip = str(address)
            key = (target.scheme, target.host, target.port, ip)
            try:
                timeout = min(self._connect_timeout_s, deadline.check())
                return await self._pools.acquire(key, timeout), key
            except ssl.SSLError as exc:  # certificate or handshake: an OSError, but not a refusal
                raise TlsError(f"TLS with {target.host} ({ip}) failed: {exc}") from exc
            except TimeoutError as exc:
                if deadline.expired:
                    raise deadline.error() from exc
                failures.append(f"{ip}: connect timed out")
            except OSError as exc:
                failures.append(f"{ip}: {exc}")
        raise ConnectError(f"cannot connect to {target.host}:{target.port}: {'; '.join(failures)}")

    async def aclose(self) -> None:
        self._pools.close()
        if self._dns is not None:
            self._dns.shutdown(wait=False, cancel_futures=True)
            self._dns = None


class LoopThread:
    """One asyncio event loop, run by a daemon thread of its own."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), name=name, daemon=True)
        self._thread.start()
        ready.wait()

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(ready.set)
        self.loop.run_forever()

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def close(self, timeout_s: float = 5.0) -> None:
        """Cancel what still runs, then stop the loop."""
        if not self._thread.is_alive():
            return

        async def cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        with contextlib.suppress(Exception):
            self.submit(cancel_all()).result(timeout_s)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout_s)
        if not self._thread.is_alive():
            self.loop.close()


class LoopSafeHttpClient:
    """`AsyncSafeHttpClient` on a loop thread of its own, behind `SafeHttpClient`'s sync API."""

    def __init__(self, allowlist: Allowlist | None = None, **options: Any) -> None:
        self.aio = AsyncSafeHttpClient(allowlist, **options)
        self.allowlist = self.aio.allowlist
        self._loop = LoopThread("safe-http-loop")

    def request(self, method: str, url: str, **options: Any) -> SafeResponse:
        return self._loop.submit(self.aio.request(method, url, **options)).result()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._loop.submit(self.aio.aclose()).result(5)
        self._loop.close()

    def __enter__(self) -> LoopSafeHttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
