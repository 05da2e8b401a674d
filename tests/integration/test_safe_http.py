"""The safe HTTP clients against real loopback servers: R4, R6, R8, R9, R10.

Every case runs against both clients, `SafeHttpClient` (urllib3, threads) and the asyncio one
(`AsyncSafeHttpClient`, asyncio, here behind `LoopSafeHttpClient`'s sync API): the same rules,
the same answers. Every server is a real socket on 127.0.0.0/8 (or ::1). The allowlist opens
127.0.0.1/32 only, so 127.0.0.2 stands in for "internal address": listeners there must see zero
connections.
"""

from __future__ import annotations

import base64
import gzip
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler
from ipaddress import ip_address

import pytest
import trustme

from shared.http import (
    Allowlist,
    BlockedAddress,
    DeadlineExceeded,
    RequestTooLarge,
    SafeHttpClient,
    TlsError,
    TooManyRedirects,
    UnsafeUrl,
)
from shared.http.aio import LoopSafeHttpClient
from tests.integration.http_servers import (
    CountingListener,
    HttpServer,
    RawServer,
    read_request_head,
    redirect,
    running,
    send,
)

LOOPBACK = Allowlist.parse("127.0.0.1/32")


def resolver_for(table: dict[str, list[str]]) -> Callable[[str, int], list[str]]:
    def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "unknown test name")
        return table[host]

    return resolve


Client = SafeHttpClient | LoopSafeHttpClient
MakeClient = type[SafeHttpClient] | type[LoopSafeHttpClient]


@pytest.fixture(params=[SafeHttpClient, LoopSafeHttpClient], ids=["urllib3", "asyncio"])
def make(request: pytest.FixtureRequest) -> MakeClient:
    return request.param


@pytest.fixture
def client(make: MakeClient) -> Iterator[Client]:
    with make(LOOPBACK, resolver=resolver_for({"internal.test": ["127.0.0.2"]})) as c:
        yield c


# --- R8: pinning, DNS rebinding, TLS on the name, basic auth -------------------------------------


def test_dns_rebinding_only_the_vetted_address_is_dialled(
    monkeypatch: pytest.MonkeyPatch, make: MakeClient
) -> None:
    good = HttpServer("127.0.0.1")
    evil = CountingListener("127.0.0.2", good.port)
    calls: list[str] = []

    def rebinding_dns(host: str, port: int) -> list[str]:
        calls.append(host)
        return ["127.0.0.1"] if len(calls) == 1 else ["127.0.0.2"]  # TTL 0, then rebinds

    def no_dns(*args: object, **kwargs: object) -> None:
        raise AssertionError("a DNS lookup happened outside the vetted resolver")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    url = f"http://rebind.test:{good.port}/hook"
    with running(good, evil), make(LOOPBACK, resolver=rebinding_dns) as client:
        first = client.request("POST", url, body=b'{"a":1}')
        # Next send: DNS now points inside; refused at send time, before any connection.
        with pytest.raises(BlockedAddress) as info:
            client.request("POST", url, body=b'{"a":1}')
    assert first.status == 200 and first.peer_ip == "127.0.0.1"
    assert info.value.address == "127.0.0.2"
    assert calls == ["rebind.test", "rebind.test"]  # once per request, never at connect time
    assert evil.accepted == 0
    assert [r.headers["Host"] for r in good.requests] == [f"rebind.test:{good.port}"]


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def _tls_server(ca: trustme.CA, cert_names: list[str], sni_seen: list[str | None]) -> HttpServer:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert(*cert_names).configure_cert(context)
    context.sni_callback = lambda _sock, name, _ctx: sni_seen.append(name)  # type: ignore[assignment,misc,return-value]
    return HttpServer(tls=context)


def _trusting(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


def test_https_dials_pinned_ip_with_sni_host_and_basic_auth_of_the_name(
    ca: trustme.CA, make: MakeClient
) -> None:
    sni: list[str | None] = []
    server = _tls_server(ca, ["rebind.test"], sni)
    dns = resolver_for({"rebind.test": ["127.0.0.1"]})
    with running(server), make(LOOPBACK, resolver=dns, ssl_context=_trusting(ca)) as client:
        response = client.request(
            "POST", f"https://us%65r:p%40ss@rebind.test:{server.port}/hook", body=b"{}", deadline_s=5
        )
    assert response.status == 200 and response.body == b"ok" and response.peer_ip == "127.0.0.1"
    assert response.url == f"https://rebind.test:{server.port}/hook"  # no credentials in it
    assert sni == ["rebind.test"]
    request = server.requests[0]
    assert request.headers["Host"] == f"rebind.test:{server.port}"
    assert request.headers["Authorization"] == "Basic " + base64.b64encode(b"user:p@ss").decode()
    assert request.body == b"{}"


def test_https_certificate_is_checked_against_the_name_not_the_ip(ca: trustme.CA, make: MakeClient) -> None:
    server = _tls_server(ca, ["other.test"], [])
    dns = resolver_for({"rebind.test": ["127.0.0.1"]})
    with running(server), make(LOOPBACK, resolver=dns, ssl_context=_trusting(ca)) as client:
        for url in (f"https://rebind.test:{server.port}/", f"https://127.0.0.1:{server.port}/"):
            with pytest.raises(TlsError) as info:
                client.request("GET", url, deadline_s=5)
            assert info.value.retryable
    assert server.requests == []


def test_ipv6_pinned_connection(make: MakeClient) -> None:
    try:
        server = HttpServer("::1")
    except OSError:
        pytest.skip("no IPv6 loopback")
    with running(server), make(Allowlist.parse("::1/128")) as client:
        response = client.request("GET", server.url("/v6"))
    assert response.status == 200 and response.peer_ip == "::1"
    assert server.requests[0].headers["Host"] == f"[::1]:{server.port}"


# --- R4 / R9: redirects ---------------------------------------------------------------------------


def test_redirect_is_returned_not_followed_by_default(client: Client) -> None:
    target = HttpServer()
    origin = HttpServer(routes={"/hook": redirect(target.url("/landing"))})
    with running(target, origin):
        response = client.request("POST", origin.url("/hook"), body=b"{}")
    assert response.status == 302 and response.headers["Location"] == target.url("/landing")
    assert response.redirects == ()
    assert target.accepted == 0 and target.requests == []


def test_every_redirect_hop_is_revalidated_before_connecting(client: Client) -> None:
    trap = CountingListener("127.0.0.2")
    origin = HttpServer(
        routes={
            "/metadata": redirect("http://169.254.169.254/latest/meta-data/"),
            "/literal": redirect(f"http://127.0.0.2:{trap.port}/"),
            "/named": redirect(f"http://internal.test:{trap.port}/"),
            "/mapped": redirect(f"http://[::ffff:127.0.0.2]:{trap.port}/"),
        }
    )
    with running(trap, origin):
        for path, blocked in (
            ("/metadata", "169.254.169.254"),
            ("/literal", "127.0.0.2"),
            ("/named", "127.0.0.2"),
            ("/mapped", "::ffff:127.0.0.2"),
        ):
            with pytest.raises(BlockedAddress) as info:
                client.request("GET", origin.url(path), follow_redirects=5, deadline_s=3)
            assert ip_address(info.value.address) == ip_address(blocked)
    assert trap.accepted == 0
    assert [r.path for r in origin.requests] == ["/metadata", "/literal", "/named", "/mapped"]


def test_redirect_hop_limit(client: Client) -> None:
    routes = {f"/ok/{i}": redirect(f"/ok/{i + 1}" if i < 4 else "/done") for i in range(5)}
    routes |= {f"/loop/{i}": redirect(f"/loop/{i + 1}") for i in range(20)}
    server = HttpServer(routes=routes)
    with running(server):
        response = client.request("GET", server.url("/ok/0"), follow_redirects=5)
        with pytest.raises(TooManyRedirects):
            client.request("GET", server.url("/loop/0"), follow_redirects=5)
    assert response.status == 200 and response.url.endswith("/done") and len(response.redirects) == 5
    assert sum(r.path.startswith("/loop/") for r in server.requests) == 6  # 5 hops followed, 6th refused
    assert server.accepted == 1  # drained redirect bodies let one keep-alive connection serve all


@pytest.mark.parametrize(
    "location", ["file:///etc/passwd", "gopher://127.0.0.1:70/_GET", "ftp://127.0.0.1/x", "dict://127.0.0.1/"]
)
def test_redirect_to_a_non_http_scheme_is_rejected(client: Client, location: str) -> None:
    server = HttpServer(routes={"/": redirect(location)})
    with running(server), pytest.raises(UnsafeUrl, match="scheme"):
        client.request("GET", server.url("/"), follow_redirects=5)
    assert len(server.requests) == 1


def test_cross_origin_redirect_drops_credentials(client: Client) -> None:
    second = HttpServer()
    first = HttpServer(routes={"/": redirect(second.url("/next"), status=307)})
    with running(first, second):
        url = f"http://u:p@127.0.0.1:{first.port}/"
        response = client.request("GET", url, headers={"Cookie": "s=1"}, follow_redirects=1)
    assert response.status == 200
    assert {"Authorization", "Cookie"} <= set(first.requests[0].headers)
    assert not {"Authorization", "Cookie"} & set(second.requests[0].headers)


# --- R4 / R10: the total deadline ------------------------------------------------------------------


def _drip_body(conn: socket.socket) -> None:
    read_request_head(conn)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
    for _ in range(1000):
        conn.sendall(b"x")
        time.sleep(0.2)


def _drip_head(conn: socket.socket) -> None:
    read_request_head(conn)
    for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 1000:
        conn.sendall(bytes([byte]))
        time.sleep(0.2)


@pytest.mark.parametrize("serve", [_drip_body, _drip_head], ids=["body", "headers"])
def test_drip_is_abandoned_at_the_total_deadline(
    client: Client, serve: Callable[[socket.socket], None]
) -> None:
    server = RawServer(serve)
    with running(server):
        start = time.monotonic()
        with pytest.raises(DeadlineExceeded) as info:
            client.request("GET", server.url(), deadline_s=1.0)
        elapsed = time.monotonic() - start
    assert 0.9 <= elapsed < 1.5, elapsed
    assert info.value.retryable and server.accepted == 1


def test_tls_drip_is_abandoned_at_the_total_deadline(ca: trustme.CA, make: MakeClient) -> None:
    def drip_head(handler: BaseHTTPRequestHandler) -> None:
        # One status line byte per 0.2 s: a single header read never returns on its own.
        try:
            for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 1000:
                handler.wfile.write(bytes([byte]))
                time.sleep(0.2)
        except OSError:
            pass

    server = _tls_server(ca, ["127.0.0.1"], [])
    server.routes["/drip"] = drip_head
    with running(server), make(LOOPBACK, ssl_context=_trusting(ca)) as client:
        start = time.monotonic()
        with pytest.raises(DeadlineExceeded):
            client.request("GET", server.url("/drip"), deadline_s=1.0)
        assert 0.9 <= time.monotonic() - start < 1.5
    assert len(server.requests) == 1


def test_slow_dns_counts_against_the_deadline(make: MakeClient) -> None:
    def slow_dns(host: str, port: int) -> list[str]:
        time.sleep(2)
        return ["93.184.216.34"]

    with make(resolver=slow_dns) as client:
        start = time.monotonic()
        with pytest.raises(DeadlineExceeded):
            client.request("GET", "http://slow.test/", deadline_s=0.3)
        assert time.monotonic() - start < 0.8


# --- R6 / R10: size bounds ---------------------------------------------------------------------------


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRss:
    """Samples this process's resident set every 2 ms, so a transient buffer would show."""

    def __enter__(self) -> PeakRss:
        self.baseline = self.peak = _rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, _rss_bytes())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_bytes())

    @property
    def growth(self) -> int:
        return self.peak - self.baseline


def _flood(framing: str) -> Callable[[socket.socket], None]:
    total = 100_000_000
    head = {
        "length": f"Content-Length: {total}\r\n",
        "chunked": "Transfer-Encoding: chunked\r\n",
        "close": "Connection: close\r\n",
    }[framing]
    chunk = b"x" * 65536
    frame = b"%x\r\n%s\r\n" % (len(chunk), chunk) if framing == "chunked" else chunk

    def serve(conn: socket.socket) -> None:
        read_request_head(conn)
        conn.sendall(f"HTTP/1.1 200 OK\r\n{head}\r\n".encode())
        for _ in range(total // len(chunk)):
            conn.sendall(frame)

    return serve


@pytest.mark.parametrize("framing", ["length", "chunked", "close"])
def test_100mb_response_is_capped_and_memory_stays_flat(client: Client, framing: str) -> None:
    server = RawServer(_flood(framing))
    with running(server), PeakRss() as rss:
        response = client.request("GET", server.url(), max_response_bytes=20_000, deadline_s=10)
    assert response.status == 200 and response.truncated
    assert response.body == b"x" * 20_000
    assert response.elapsed_s < 2
    assert rss.growth < 10 * 1024 * 1024, rss.growth


def test_small_body_is_complete_and_not_truncated(client: Client) -> None:
    server = HttpServer(routes={"/": lambda h: send(h, 200, b"y" * 20_000)})
    with running(server):
        response = client.request("GET", server.url(), max_response_bytes=20_000)
    assert response.body == b"y" * 20_000 and not response.truncated


def test_compressed_body_is_never_inflated(client: Client) -> None:
    bomb = gzip.compress(b"\0" * 20_000_000)
    server = HttpServer(routes={"/": lambda h: send(h, 200, bomb, {"Content-Encoding": "gzip"})})
    with running(server):
        plain = client.request("GET", server.url())
        asked = client.request("GET", server.url(), headers={"Accept-Encoding": "gzip"})
    assert plain.body == asked.body == bomb and len(bomb) < 100_000
    assert [r.headers["Accept-Encoding"] for r in server.requests] == ["identity", "gzip"]


def test_request_body_over_the_cap_is_refused_before_connecting(make: MakeClient) -> None:
    listener = CountingListener()
    with (
        running(listener),
        make(LOOPBACK, max_request_bytes=1000) as client,
        pytest.raises(RequestTooLarge),
    ):
        client.request("POST", f"http://127.0.0.1:{listener.port}/", body=b"x" * 1001)
    assert listener.accepted == 0


# --- concurrency -----------------------------------------------------------------------------------


def test_a_hanging_endpoint_does_not_hold_up_200_requests_to_another(make: MakeClient) -> None:
    release = threading.Event()

    def hang(conn: socket.socket) -> None:
        read_request_head(conn)
        release.wait(10)

    stuck_server, fast = RawServer(hang), HttpServer()
    with (
        running(stuck_server, fast),
        make(LOOPBACK, max_connections_per_endpoint=4) as client,
        ThreadPoolExecutor(64) as pool,
    ):
        try:
            stuck = [
                pool.submit(client.request, "POST", stuck_server.url(), body=b"{}", deadline_s=3)
                for _ in range(12)
            ]
            for _ in range(200):
                if stuck_server.accepted >= 4:
                    break
                time.sleep(0.01)
            start = time.monotonic()
            responses = list(
                pool.map(lambda i: client.request("GET", fast.url(f"/{i}"), deadline_s=5), range(200))
            )
            took = time.monotonic() - start
            still_hanging = sum(not f.done() for f in stuck)
            stuck_connections = stuck_server.accepted
            for future in stuck:
                with pytest.raises(DeadlineExceeded):
                    future.result()
        finally:
            release.set()
    assert [r.status for r in responses] == [200] * 200 and len(fast.requests) == 200
    assert took < 2.5, took
    assert still_hanging == 12
    assert stuck_connections == 4  # per-endpoint connection limit while 12 requests wait
    assert fast.accepted <= 4  # keep-alive connections reused across threads
