"""R7: the SSRF address table, URL syntax rules and the allowlist of the safe HTTP client.

Blocked targets are requested for real through `SafeHttpClient` while loopback listeners count
accepted connections: every row must fail with BlockedAddress and the listeners must stay at zero.
A positive control (the same listener allowlisted) proves the counting works.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator

import pytest

from shared.http import (
    Allowlist,
    BlockedAddress,
    ConnectError,
    DeadlineExceeded,
    HttpError,
    ResolveError,
    SafeHttpClient,
    TooManyRedirects,
    UnsafeUrl,
    block_reason,
    check_url,
    is_public_address,
    parse_target,
)
from shared.http.addresses import SPECIAL_PURPOSE, SpecialBlock, ip_literal, special_block
from tests.integration.http_servers import CountingListener

NUMERIC_LOOPBACK = ["127.1", "2130706433", "0177.0.0.1", "0x7f.1"]
# Hosts that IDNA (NFKC, ideographic full stops) turns into loopback literals: fullwidth digits,
# U+3002 / U+FF0E / U+FF61 dots, circled digits, a fullwidth numeric trick.
UNICODE_LOOPBACK = [
    "\uff11\uff12\uff17.\uff10.\uff10.\uff11",
    "127\u30020\u30020\u30021",
    "127\uff0e0\uff0e0\uff0e1",
    "127\uff610\uff610\uff611",
    "\u2460\u2461\u2466.0.0.1",
    "\uff10\uff58\uff17\uff46.\uff11",
]

# (URL host, what it must be rejected as) - R7's table; "internal.test" resolves to 10.0.0.5.
R7_TARGETS = [
    "127.0.0.1",
    *NUMERIC_LOOPBACK,
    *UNICODE_LOOPBACK,
    "0.0.0.0",
    "10.0.0.1",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",
    "100.64.0.1",
    "198.18.0.1",
    "192.0.0.1",
    "224.0.0.1",
    "240.0.0.1",
    "[::1]",
    "[fe80::1]",
    "[fd00:ec2::254]",
    "[::ffff:169.254.169.254]",
    "[::ffff:127.0.0.1]",
    "[64:ff9b::a9fe:a9fe]",
    "[2002:a9fe:a9fe::1]",
    "localhost",
    "localhost.",
    "LocalHost",
    "internal.test",
]

FAKE_DNS = {
    "internal.test": ["10.0.0.5"],
    "localhost": ["127.0.0.1"],
    "localhost.": ["127.0.0.1"],
    "mixed.test": ["93.184.216.34", "10.0.0.5"],
    "public.test": ["93.184.216.34"],
    "hooks.internal": ["10.0.0.5"],
    "x.hooks.internal": ["10.0.0.5"],
}


def fake_resolver(host: str, port: int) -> list[str]:
    try:
        return FAKE_DNS[host.lower()]
    except KeyError:
        raise socket.gaierror(socket.EAI_NONAME, "not in the test's DNS") from None


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.fixture
def listeners() -> Iterator[list[CountingListener]]:
    """A listener on 127.0.0.1:P, plus [::1]:P when the host has IPv6 loopback."""
    v4 = CountingListener("127.0.0.1")
    found = [v4]
    if _ipv6_loopback():
        with contextlib.suppress(OSError):
            found.append(CountingListener("::1", v4.port))
    yield found
    for listener in found:
        listener.close()


def test_numeric_host_tricks_really_are_loopback_for_the_c_resolver() -> None:
    # The premise of the table: glibc's getaddrinfo turns each spelling into 127.0.0.1, and so
    # does our parser, so they are judged by the address they reach.
    for host in NUMERIC_LOOPBACK:
        resolved = {info[4][0] for info in socket.getaddrinfo(host, 80, type=socket.SOCK_STREAM)}
        assert resolved == {"127.0.0.1"}, host
        assert str(ip_literal(host)) == "127.0.0.1"
        assert parse_target(f"http://{host}/").host == "127.0.0.1"


@pytest.mark.parametrize("host", R7_TARGETS)
def test_r7_target_is_rejected_without_a_connection(host: str, listeners: list[CountingListener]) -> None:
    port = listeners[0].port
    with SafeHttpClient(resolver=fake_resolver) as client:
        with pytest.raises(BlockedAddress) as info:
            client.request("GET", f"http://{host}:{port}/", deadline_s=2)
        with pytest.raises(BlockedAddress):
            check_url(f"http://{host}:{port}/", Allowlist(), resolver=fake_resolver)
    assert info.value.retryable is False
    assert isinstance(info.value, UnsafeUrl)
    assert [listener.accepted for listener in listeners] == [0] * len(listeners)


def test_positive_control_the_listener_counts_when_allowlisted(listeners: list[CountingListener]) -> None:
    allow = Allowlist.parse("127.0.0.0/8")
    with SafeHttpClient(allow) as client, pytest.raises(HttpError):
        client.request("GET", f"http://127.1:{listeners[0].port}/", deadline_s=2)  # listener hangs up
    assert listeners[0].accepted == 1


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "0.0.0.0",
        "10.0.0.1",
        "172.16.0.1",
        "172.31.255.255",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "100.127.255.254",
        "198.18.0.1",
        "198.19.255.255",
        "192.0.0.1",
        "192.0.2.1",
        "192.88.99.1",
        "198.51.100.1",
        "203.0.113.1",
        "224.0.0.1",
        "239.255.255.250",
        "240.0.0.1",
        "255.255.255.255",
        "::",
        "::1",
        "fe80::1",
        "fd00:ec2::254",
        "fc00::1",
        "ff02::1",
        "2001:db8::1",
        "::ffff:169.254.169.254",
        "::ffff:10.0.0.1",
        "64:ff9b::a9fe:a9fe",
        "64:ff9b::7f00:1",
        "2002:a9fe:a9fe::1",
        "2002:0a00:0001::1",
        "2002:0808:0808::1",  # 6to4 is refused whole, whatever host it embeds
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo, client 192.0.2.45
        "::a9fe:a9fe",  # IPv4-compatible (deprecated): outside 2000::/3
        "100::1",  # discard-only
        "fe80::1%eth0",
    ],
)
def test_blocked_addresses(address: str) -> None:
    assert block_reason(address) is not None
    assert not is_public_address(address)


def _inside(block: SpecialBlock) -> str:
    """An address in `block` whose narrowest block is this one; for the IPv4 wrappers, one
    embedding loopback (the wrapper itself is judged by what it embeds)."""
    net = block.network
    if block.embeds_ipv4:
        return str(net[0] + 0x7F000001)
    return str(net[net.num_addresses // 2])


@pytest.mark.parametrize("block", SPECIAL_PURPOSE, ids=lambda b: str(b.network))
def test_every_special_purpose_block_is_rejected_unless_allowlisted(block: SpecialBlock) -> None:
    """Every entry of the IANA IPv4 and IPv6 special-purpose registries (and multicast): its
    first, middle and last address are refused, as a literal URL too; listing the block in
    WEBHOOK_ALLOWED_IPS opens it."""
    assert block.rfc.startswith("RFC ") and block.globally_reachable in (True, False, None)
    address = _inside(block)
    assert block_reason(address) is not None, address
    if not block.embeds_ipv4:
        assert special_block(address) is block
        for edge in (block.network[0], block.network[-1]):
            assert block_reason(edge) is not None, edge
    host = f"[{address}]" if ":" in address else address
    with pytest.raises(BlockedAddress):
        check_url(f"http://{host}/", Allowlist())
    assert check_url(f"http://{host}/", Allowlist.parse(str(block.network)))[1] == (ip_literal(address),)


@pytest.mark.parametrize(
    "address",
    [
        "8.8.8.8",
        "93.184.216.34",
        "1.1.1.1",
        "9.9.9.9",
        "64:ff9b::808:808",  # NAT64 of a public IPv4: what DNS64 answers in an IPv6-only cluster
        "::ffff:8.8.8.8",
        "2606:4700:4700::1111",
        "2001:4860:4860::8888",  # in 2001::/16 but outside the IETF's 2001::/23
        "2620:fe::fe",  # in 2620::/16 next to the AS112 /48
        "2a00:1450:4001:81b::200e",
    ],
)
def test_public_addresses_are_allowed(address: str) -> None:
    assert block_reason(address) is None
    assert is_public_address(address)


def test_public_names_and_literals_pass_validation() -> None:
    for url in ("http://public.test/x", "https://8.8.8.8/", "http://[2606:4700:4700::1111]:8080/"):
        target, addresses = check_url(url, Allowlist(), resolver=fake_resolver)
        assert all(is_public_address(a) for a in addresses), url
    assert target.host == "2606:4700:4700::1111" and target.port == 8080


@pytest.mark.parametrize("host", UNICODE_LOOPBACK)
def test_unicode_hosts_are_normalised_before_the_literal_check(host: str) -> None:
    """Judged as the literal they spell, without asking DNS (they used to be resolved as names)."""
    target = parse_target(f"http://{host}:81/")
    assert (target.host, str(target.ip)) == ("127.0.0.1", "127.0.0.1")
    asked: list[str] = []
    with pytest.raises(BlockedAddress):
        check_url(f"http://{host}/", Allowlist(), resolver=lambda h, p: asked.append(h) or ["127.0.0.1"])
    assert asked == []
    assert parse_target("http://B\u00fccher.example/").host == "xn--bcher-kva.example"


def test_any_blocked_record_rejects_the_whole_name() -> None:
    with pytest.raises(BlockedAddress) as info:
        check_url("http://mixed.test/", Allowlist(), resolver=fake_resolver)
    assert info.value.address == "10.0.0.5"


def test_allowlist_cidr_opens_only_the_listed_addresses() -> None:
    allow = Allowlist.parse("10.0.0.0/30, 192.168.1.7")
    assert check_url("http://10.0.0.1/", allow)[1] == (ip_literal("10.0.0.1"),)
    check_url("http://192.168.1.7/", allow)
    for url in ("http://10.0.0.5/", "http://192.168.1.8/", "http://internal.test/", "http://127.0.0.1/"):
        with pytest.raises(BlockedAddress):
            check_url(url, allow, resolver=fake_resolver)


def test_allowlist_host_is_exact_and_case_insensitive() -> None:
    allow = Allowlist.parse("", "Hooks.Internal")
    target, addresses = check_url("http://HOOKS.internal/x", allow, resolver=fake_resolver)
    assert target.host == "hooks.internal" and [str(a) for a in addresses] == ["10.0.0.5"]
    for url in ("http://x.hooks.internal/", "http://internal.test/", "http://hooks.internal.evil/"):
        with pytest.raises((BlockedAddress, ResolveError)):
            check_url(url, allow, resolver=fake_resolver)


def test_allowlist_from_settings_tuples_and_bad_entries() -> None:
    class FakeSettings:
        webhook_allowed_ips = ("10.1.0.0/16",)
        webhook_allowed_hosts = ("svc.local",)

    allow = Allowlist.from_settings(FakeSettings())
    assert allow.allows_ip("10.1.2.3") and not allow.allows_ip("10.2.0.1")
    assert allow.allows_host("SVC.local") and not allow.allows_host("a.svc.local")
    for ips, hosts in (("10.0.0.0/33", ""), ("not-an-ip", ""), ("", "*.example.com")):
        with pytest.raises(ValueError):
            Allowlist.parse(ips, hosts)
    assert Allowlist.parse() == Allowlist()


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "gopher://example.com:70/_x",
        "ftp://example.com/",
        "javascript:alert(1)",
        "example.com/no-scheme",
        "http:///path-only",
        "http://",
        "http://[fe80::1%25eth0]/",
        "http://exa%6dple.com/",
        "http://evil.com\\@127.0.0.1/",
        "http://a b.com/",
        "http://example.com/\r\nX-Injected: 1",
        "http://example.com:99999/",
        "http://example.com:0/",
        "http://[not-ipv6]/",
        "http://a..b/",
        "http://-/x",
    ],
)
def test_malformed_or_forbidden_urls(url: str) -> None:
    with pytest.raises(UnsafeUrl):
        parse_target(url)


def test_ports_and_https_only() -> None:
    assert parse_target("https://example.com/", allowed_ports={443}).port == 443
    with pytest.raises(UnsafeUrl):
        parse_target("http://example.com:6379/", allowed_ports={80, 443})
    with pytest.raises(UnsafeUrl):
        parse_target("http://example.com/", require_https=True)


def test_userinfo_becomes_basic_auth_and_is_never_in_the_url() -> None:
    target = parse_target("https://us%65r:p%40ss:w@Example.COM:8443/a/b?q=ü#frag")
    assert (target.username, target.password) == ("user", "p@ss:w")
    assert target.basic_auth() == "Basic dXNlcjpwQHNzOnc="
    assert target.url == "https://example.com:8443/a/b?q=%C3%BC"
    assert target.request_target == "/a/b?q=%C3%BC"


def test_error_taxonomy_tells_retryable_from_permanent() -> None:
    assert not UnsafeUrl("x").retryable and not TooManyRedirects("x").retryable
    assert ConnectError("x").retryable and DeadlineExceeded("x").retryable and ResolveError("x").retryable
    assert issubclass(BlockedAddress, UnsafeUrl) and issubclass(UnsafeUrl, HttpError)
