"""`AsyncSafeHttpClient`: the safe client's rules on asyncio (aiohttp), for callers that keep many
requests in flight on one event loop (webhook-deliveries) instead of a thread per request.

The rules are `SafeHttpClient`'s, most of them through the same code:
- strict URL parse (`parse_target`), then the host resolved once per request (the injected
  resolver, on a thread, cut off at the deadline) and every address vetted (`needs_dns`,
  `vet_resolved`: reject-any, allowlist, IANA special-purpose registries);
- the request is dialled at the vetted IP itself (the URL aiohttp gets names the IP, so aiohttp
  never resolves anything), with `Host` naming the URL's host and, for TLS, `server_hostname` set
  to it: SNI and certificate checks are on the name, on a context that requires both. aiohttp
  pools connections per (IP, port, TLS, server_hostname), so one opened for a vetted address and
  name is never used for another;
- redirects are never followed by aiohttp (`allow_redirects=False`); `follow_redirects=N` re-runs
  every rule per hop, here as in the sync client;
- nothing is decompressed (`auto_decompress=False`, `Accept-Encoding: identity` unless the caller
  asks), at most `max_response_bytes + 1` raw bytes are read, streaming, and a longer body drops
  its connection instead of being drained;
- one total deadline (`asyncio.timeout`) over DNS, connect, TLS, every hop and the whole body;
- no proxy and no environment (`trust_env=False`), no cookies kept between requests
  (`DummyCookieJar`: a receiver's cookie must not reach another webhook's request).

Errors are the same `HttpError` tree. `LoopSafeHttpClient` runs one on a loop thread of its own
behind the sync client's `request()`, for threaded callers and for tests that hold both clients
to the same cases.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
from collections.abc import Collection, Coroutine, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

import aiohttp
from urllib3 import HTTPHeaderDict
from yarl import URL

from shared.http.addresses import Allowlist, IPAddress
from shared.http.client import (
    REDIRECT_STATUSES,
    SafeResponse,
    caller_headers_of,
    check_request,
    drop_credentials_across,
    next_hop,
    request_headers,
)
from shared.http.deadline import Deadline
from shared.http.errors import ConnectError, HttpError, ProtocolError, TlsError, TooManyRedirects
from shared.http.transport import prepare_ssl_context
from shared.http.urls import Target, parse_target
from shared.http.vetting import Resolver, needs_dns, resolve_error, system_resolver, vet_resolved

T = TypeVar("T")

_READ_CHUNK = 64 * 1024
_REDIRECT_DRAIN_LIMIT = 64 * 1024
_DEFAULT_PORTS = {"http": 80, "https": 443}
# http.client's limit on a header line; aiohttp's default (8190) would fail answers urllib3 reads.
_MAX_LINE = 65536
_TLS_ERRORS = (aiohttp.ClientConnectorCertificateError, aiohttp.ClientSSLError, ssl.SSLError)


def host_header(target: Target) -> str:
    """`Host` as http.client writes it: the port only when it is not the scheme's default."""
    host = f"[{target.host}]" if ":" in target.host else target.host
    return host if target.port == _DEFAULT_PORTS[target.scheme] else f"{host}:{target.port}"


def _dial_url(target: Target, ip: str) -> URL:
    host = f"[{ip}]" if ":" in ip else ip
    # encoded=True: request_target is already the exact ASCII request line parse_target chose.
    return URL(f"{target.scheme}://{host}:{target.port}{target.request_target}", encoded=True)


def _mid_request_error(exc: BaseException, deadline: Deadline) -> HttpError:
    if deadline.expired:
        return deadline.error()
    return ProtocolError(f"HTTP exchange failed: {type(exc).__name__}: {exc}")


class AsyncSafeHttpClient:
    """SSRF-safe, bounded asyncio HTTP client; `SafeHttpClient`'s parameters and rules. Use it
    from one event loop: its connection pool is created there on the first request."""

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
        keepalive_s: float = 15.0,
        dns_threads: int = 16,
        user_agent: str = "plane-workers",
    ) -> None:
        self.allowlist = allowlist or Allowlist()
        self._resolver = resolver
        self._ssl_context = prepare_ssl_context(ssl_context)
        self._allowed_ports = frozenset(allowed_ports) if allowed_ports is not None else None
        self._require_https = require_https
        self._connect_timeout_s = connect_timeout_s
        self._default_deadline_s = default_deadline_s
        self._default_max_response_bytes = default_max_response_bytes
        self._max_request_bytes = max_request_bytes
        self._per_endpoint = max_connections_per_endpoint
        self._keepalive_s = keepalive_s
        self._user_agent = user_agent
        self._dns = ThreadPoolExecutor(dns_threads, thread_name_prefix="safe-http-dns")
        self._session: aiohttp.ClientSession | None = None

    def _session_here(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=0,  # the caller bounds requests in flight; idle sockets close after keepalive_s
                limit_per_host=self._per_endpoint,  # per (IP, port, TLS, name): a slow receiver's share
                keepalive_timeout=self._keepalive_s,
                use_dns_cache=False,  # it never resolves: every URL it gets is an IP
                ssl=self._ssl_context,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=None),  # our deadline governs
                auto_decompress=False,
                trust_env=False,
                cookie_jar=aiohttp.DummyCookieJar(),
                skip_auto_headers=("User-Agent", "Accept", "Content-Type"),
                max_line_size=_MAX_LINE,
                max_field_size=_MAX_LINE,
            )
        return self._session

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
        caller: HTTPHeaderDict,
        body: bytes | None,
        deadline: Deadline,
        cap: int,
        follow_redirects: int,
    ) -> SafeResponse:
        hops: list[str] = []
        origin: tuple[str, str, int] | None = None
        while True:
            target = parse_target(url, allowed_ports=self._allowed_ports, require_https=self._require_https)
            origin = drop_credentials_across(origin, target, caller)
            addresses = await self._vet(target)
            response, peer_ip = await self._send(target, addresses, method, caller, body, deadline)
            location = response.headers.get("location")
            if follow_redirects and response.status in REDIRECT_STATUSES and location:
                if len(hops) >= follow_redirects:
                    response.close()
                    raise TooManyRedirects(f"more than {follow_redirects} redirects from {hops[0]}")
                with contextlib.suppress(HttpError):  # drained to reuse the connection, else dropped
                    await self._read_body(response, _REDIRECT_DRAIN_LIMIT, deadline)
                hops.append(target.url)
                url, method, body = next_hop(url, location, response.status, method, body, caller)
                continue
            data, truncated = await self._read_body(response, cap, deadline)
            # Raw bytes as latin-1, as http.client reads them: SafeResponse is the same either way.
            raw = HTTPHeaderDict()
            for name, value in response.raw_headers:
                raw.add(name.decode("latin-1"), value.decode("latin-1"))
            return SafeResponse(
                status=response.status,
                headers=raw,
                body=data,
                truncated=truncated,
                elapsed_s=deadline.elapsed(),
                url=target.url,
                peer_ip=peer_ip,
                redirects=tuple(hops),
            )

    async def _vet(self, target: Target) -> tuple[IPAddress, ...]:
        raw = None
        if needs_dns(target, self.allowlist):
            loop = asyncio.get_running_loop()
            try:
                # getaddrinfo blocks and has no timeout: a thread, abandoned at the deadline.
                raw = await loop.run_in_executor(self._dns, self._resolver, target.host, target.port)
            except OSError as exc:
                raise resolve_error(target, exc) from exc
        return vet_resolved(target, self.allowlist, raw)

    async def _send(
        self,
        target: Target,
        addresses: tuple[IPAddress, ...],
        method: str,
        caller: HTTPHeaderDict,
        body: bytes | None,
        deadline: Deadline,
    ) -> tuple[aiohttp.ClientResponse, str]:
        """Try the vetted addresses in order; only a failed connect moves to the next one."""
        headers = request_headers(target, caller, self._user_agent)
        headers["Host"] = host_header(target)
        session = self._session_here()
        failures: list[str] = []
        for address in addresses:
            ip = str(address)
            timeout = aiohttp.ClientTimeout(
                total=None, sock_connect=min(self._connect_timeout_s, deadline.check())
            )
            try:
                response = await session.request(
                    method,
                    _dial_url(target, ip),
                    headers=headers,
                    data=body,
                    allow_redirects=False,
                    timeout=timeout,
                    server_hostname=target.host,
                    ssl=self._ssl_context,
                )
                return response, ip
            except _TLS_ERRORS as exc:
                raise TlsError(f"TLS with {target.host} ({ip}) failed: {exc}") from exc
            except aiohttp.ConnectionTimeoutError as exc:
                if deadline.expired:
                    raise deadline.error() from exc
                failures.append(f"{ip}: connect timed out")
            except aiohttp.ClientConnectorError as exc:
                failures.append(f"{ip}: {exc.os_error}")
            except (aiohttp.ClientError, OSError, ValueError) as exc:
                raise _mid_request_error(exc, deadline) from exc
        raise ConnectError(f"cannot connect to {target.host}:{target.port}: {'; '.join(failures)}")

    async def _read_body(
        self, response: aiohttp.ClientResponse, cap: int, deadline: Deadline
    ) -> tuple[bytes, bool]:
        """Read at most cap + 1 raw bytes; more means truncated, and the connection is dropped."""
        buf = bytearray()
        limit = cap + 1
        done = False
        try:
            while len(buf) < limit:
                chunk = await response.content.read(min(_READ_CHUNK, limit - len(buf)))
                if not chunk:
                    break
                buf += chunk
            done = True
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            raise _mid_request_error(exc, deadline) from exc
        finally:
            if not done:
                response.close()  # unknown state (or cancelled at the deadline): never reused
        truncated = len(buf) > cap
        if truncated:
            response.close()  # never drain the rest of a possibly endless body
            del buf[cap:]
        else:
            response.release()
        return bytes(buf), truncated

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        self._dns.shutdown(wait=False, cancel_futures=True)


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
