"""`SafeHttpClient`: the project's only way to make outbound HTTP requests to user-given URLs.

Every request (and every redirect hop) goes: strict URL parse -> resolve once -> vet every
address (reject-any, allowlist) -> connect to a vetted IP with Host/SNI/certificate checks on the
name -> read at most `max_response_bytes + 1` raw bytes, all inside one total deadline.
Redirects are NOT followed unless the caller asks (`follow_redirects=N`, crawler only); webhooks
get the 3xx back and the target is never contacted. Bodies are returned as sent on the wire:
nothing is decompressed (we ask for `Accept-Encoding: identity`), so a gzip bomb stays small.

Thread-safe: one client per process serves concurrent deliveries; connections are pooled per
(scheme, host, port, vetted IP) with a per-endpoint limit.
"""

from __future__ import annotations

import contextlib
import http.client
import re
import ssl
import threading
from collections.abc import Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from urllib.parse import urljoin

from urllib3 import BaseHTTPResponse, HTTPHeaderDict
from urllib3 import exceptions as u3
from urllib3.exceptions import ClosedPoolError
from urllib3.util.timeout import Timeout

from shared.http.addresses import Allowlist, IPAddress
from shared.http.deadline import Deadline, bound_to
from shared.http.errors import (
    ConnectError,
    HttpError,
    ProtocolError,
    RequestTooLarge,
    TlsError,
    TooManyRedirects,
)
from shared.http.transport import PinnedPools, prepare_ssl_context
from shared.http.urls import Target, parse_target
from shared.http.vetting import Resolver, address_verdict, system_resolver, vet_addresses

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_READ_CHUNK = 64 * 1024
_REDIRECT_DRAIN_LIMIT = 64 * 1024
_METHOD = re.compile(r"[A-Z]{1,20}")
_CREDENTIAL_HEADERS = ("authorization", "cookie", "proxy-authorization")


@dataclass(frozen=True)
class SafeResponse:
    """A complete, bounded response. `body` holds at most `max_response_bytes` raw bytes."""

    status: int
    headers: HTTPHeaderDict
    body: bytes
    truncated: bool
    elapsed_s: float
    url: str
    peer_ip: str
    redirects: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class SafeHttpClient:
    """SSRF-safe, bounded HTTP client; see the module docstring for the rules it enforces."""

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
        dns_threads: int = 16,
        user_agent: str = "plane-workers",
    ) -> None:
        """`ssl_context` (optional, e.g. a private CA) must verify certificates and host names;
        the client installs its deadline-aware socket class on it."""
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
        self._pools = PinnedPools(
            maxsize_per_endpoint=max_connections_per_endpoint,
            max_pools=max_pools,
            ssl_context=prepare_ssl_context(ssl_context),
        )
        self._dns_threads = dns_threads
        self._dns: ThreadPoolExecutor | None = None
        self._dns_lock = threading.Lock()

    def request(
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
        """Send one request; raise an `HttpError` subclass (see `.retryable`) on failure.

        `deadline_s` bounds everything (DNS, connect, TLS, every hop, the whole body). A `Host`
        header from the caller is ignored: Host always names the vetted URL host.
        """
        check_request(method, body, self._max_request_bytes, follow_redirects)
        deadline = Deadline(deadline_s if deadline_s is not None else self._default_deadline_s)
        cap = self._default_max_response_bytes if max_response_bytes is None else max_response_bytes
        caller_headers = caller_headers_of(headers)

        hops: list[str] = []
        origin: tuple[str, str, int] | None = None
        while True:
            target = parse_target(url, allowed_ports=self._allowed_ports, require_https=self._require_https)
            origin = drop_credentials_across(origin, target, caller_headers)
            addresses = vet_addresses(target, self.allowlist, self._resolver_within(deadline), self._verdict)
            response, peer_ip = self._send(target, addresses, method, caller_headers, body, deadline)
            location = response.headers.get("location")
            if follow_redirects and response.status in REDIRECT_STATUSES and location:
                if len(hops) >= follow_redirects:
                    _discard(response)
                    raise TooManyRedirects(f"more than {follow_redirects} redirects from {hops[0]}")
                self._drain(response, deadline)
                hops.append(target.url)
                url, method, body = next_hop(url, location, response.status, method, body, caller_headers)
                continue
            data, truncated = self._read_body(response, cap, deadline)
            return SafeResponse(
                status=response.status,
                headers=HTTPHeaderDict(response.headers),
                body=data,
                truncated=truncated,
                elapsed_s=deadline.elapsed(),
                url=target.url,
                peer_ip=peer_ip,
                redirects=tuple(hops),
            )

    def _send(
        self,
        target: Target,
        addresses: tuple[IPAddress, ...],
        method: str,
        caller_headers: Headers,
        body: bytes | None,
        deadline: Deadline,
    ) -> tuple[BaseHTTPResponse, str]:
        """Try the vetted addresses in order; only a failed connect moves to the next one."""
        headers = HTTPHeaderDict(request_headers(target, caller_headers, self._user_agent))
        failures: list[str] = []
        for address in addresses:
            ip = str(address)
            left = deadline.check()
            timeout = Timeout(connect=min(self._connect_timeout_s, left), read=left)
            try:
                with bound_to(deadline):
                    response = self._urlopen(target, ip, method, headers, body, timeout, left)
                return response, ip
            except u3.NewConnectionError as exc:
                failures.append(f"{ip}: {exc}")
            except u3.ConnectTimeoutError as exc:
                if deadline.expired:
                    raise deadline.error() from exc
                failures.append(f"{ip}: connect timed out")
            except u3.EmptyPoolError as exc:
                raise deadline.error() from exc
            except u3.SSLError as exc:
                raise TlsError(f"TLS with {target.host} ({ip}) failed: {exc}") from exc
            except (u3.HTTPError, OSError, http.client.HTTPException) as exc:
                raise _mid_request_error(exc, deadline) from exc
        raise ConnectError(f"cannot connect to {target.host}:{target.port}: {'; '.join(failures)}")

    def _urlopen(
        self,
        target: Target,
        ip: str,
        method: str,
        headers: HTTPHeaderDict,
        body: bytes | None,
        timeout: Timeout,
        pool_timeout: float,
    ) -> BaseHTTPResponse:
        for _attempt in range(2):
            pool = self._pools.get(target.scheme, target.host, target.port, ip)
            try:
                return pool.urlopen(
                    method,
                    target.request_target,
                    body=body,
                    headers=headers,
                    retries=False,
                    redirect=False,
                    assert_same_host=False,
                    timeout=timeout,
                    pool_timeout=pool_timeout,
                    preload_content=False,
                    decode_content=False,
                    release_conn=False,
                )
            except ClosedPoolError:
                continue  # evicted from the LRU between get() and urlopen(): take a fresh pool
        raise ConnectError(f"connection pool for {target.host} kept closing")

    def _read_body(self, response: BaseHTTPResponse, cap: int, deadline: Deadline) -> tuple[bytes, bool]:
        """Read at most cap + 1 raw bytes; more means truncated, and the connection is dropped."""
        buf = bytearray()
        limit = cap + 1
        try:
            with bound_to(deadline):
                while len(buf) < limit:
                    deadline.check()
                    chunk = response.read1(min(_READ_CHUNK, limit - len(buf)), decode_content=False)
                    if not chunk:
                        break
                    buf += chunk
        except HttpError:
            _discard(response)
            raise
        except (u3.HTTPError, OSError, http.client.HTTPException) as exc:
            _discard(response)
            raise _mid_request_error(exc, deadline) from exc
        truncated = len(buf) > cap
        if truncated:
            _discard(response)  # never drain the rest of a possibly endless body
            del buf[cap:]
        else:
            response.release_conn()
        return bytes(buf), truncated

    def _drain(self, response: BaseHTTPResponse, deadline: Deadline) -> None:
        """Finish a small redirect body so its connection can be reused; drop it otherwise."""
        with contextlib.suppress(HttpError):  # the next hop re-checks the deadline anyway
            self._read_body(response, _REDIRECT_DRAIN_LIMIT, deadline)

    def _resolver_within(self, deadline: Deadline) -> Resolver:
        """The injected resolver, cut off at the deadline (getaddrinfo has no timeout of its own)."""

        def resolve(host: str, port: int) -> list[str | IPAddress]:
            future = self._dns_executor().submit(self._resolver, host, port)
            try:
                return list(future.result(timeout=deadline.check()))
            except FutureTimeout as exc:
                future.cancel()
                raise deadline.error() from exc

        return resolve

    def _dns_executor(self) -> ThreadPoolExecutor:
        with self._dns_lock:
            if self._dns is None:
                self._dns = ThreadPoolExecutor(self._dns_threads, thread_name_prefix="safe-http-dns")
            return self._dns

    def close(self) -> None:
        self._pools.close()
        with self._dns_lock:
            if self._dns is not None:
                self._dns.shutdown(wait=False, cancel_futures=True)
                self._dns = None

    def __enter__(self) -> SafeHttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- the rules both clients share (`aio.AsyncSafeHttpClient` too) ----------------------------------


def check_request(method: str, body: bytes | None, max_request_bytes: int, follow_redirects: int) -> None:
    if not _METHOD.fullmatch(method):
        raise ValueError(f"invalid HTTP method {method!r}")
    if body is not None and not isinstance(body, bytes | bytearray | memoryview):
        raise TypeError("body must be bytes")
    if body is not None and len(body) > max_request_bytes:
        raise RequestTooLarge(f"request body of {len(body)} bytes exceeds {max_request_bytes}")
    if follow_redirects < 0:
        raise ValueError("follow_redirects must be >= 0")


Headers = dict[str, tuple[str, str]]
"""Request headers by lower-cased name: (the name as given, its value). Case-insensitive, one value
each, the last given winning: what urllib3's HTTPHeaderDict made of them, without its cost."""


def caller_headers_of(headers: Mapping[str, str] | None) -> Headers:
    """The caller's headers, less `Host`: Host always names the vetted URL host."""
    return {name.lower(): (name, value) for name, value in (headers or {}).items() if name.lower() != "host"}


def drop_credentials_across(
    origin: tuple[str, str, int] | None, target: Target, caller: Headers
) -> tuple[str, str, int]:
    """Never hand the caller's credentials to a host a redirect chose; the new origin."""
    if origin is not None and target.origin != origin:
        for name in _CREDENTIAL_HEADERS:
            caller.pop(name, None)
    return target.origin


def next_hop(
    url: str, location: str, status: int, method: str, body: bytes | None, caller: Headers
) -> tuple[str, str, bytes | None]:
    """The URL, method and body of the hop a followed redirect asks for."""
    if status == 303 or (status in (301, 302) and method == "POST"):
        method, body = "GET", None
        caller.pop("content-type", None)
    return urljoin(url, location), method, body


def request_headers(target: Target, caller: Headers, user_agent: str) -> list[tuple[str, str]]:
    """What goes on the wire besides Host: ours, then the caller's (which override ours)."""
    out: Headers = {
        "user-agent": ("User-Agent", user_agent),
        "accept-encoding": ("Accept-Encoding", "identity"),
    }
    auth = target.basic_auth()
    if auth is not None:
        out["authorization"] = ("Authorization", auth)
    out.update(caller)
    return list(out.values())


def _discard(response: BaseHTTPResponse) -> None:
    """Close the connection (unknown state) and free its pool slot."""
    response.close()
    response.release_conn()


def _mid_request_error(exc: BaseException, deadline: Deadline) -> HttpError:
    if deadline.expired or isinstance(exc, u3.ReadTimeoutError | TimeoutError):
        return deadline.error()
    return ProtocolError(f"HTTP exchange failed: {exc}")
