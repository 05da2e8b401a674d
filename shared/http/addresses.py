"""Which IP addresses outbound requests may reach, and the explicit allowlist.

Policy: an address is allowed only if it is global unicast AND outside the blocklist below, checked
on the IPv4 address embedded in IPv4-mapped (::ffff:0:0/96), NAT64 (64:ff9b::/96), 6to4
(2002::/16) and Teredo (2001::/32) addresses, because those reach the embedded IPv4 host. We do
not trust `ipaddress.is_private`/`is_global` alone: their answers changed between Python versions
and miss CGNAT, multicast and 6to4 (Plane #9163). IPv6 must lie in 2000::/3, the only global
unicast block (RFC 4291), so reserved space such as ::/8 (IPv4-compatible) is refused outright.

The allowlist (settings WEBHOOK_ALLOWED_IPS and WEBHOOK_ALLOWED_HOSTS) is the ONLY way to reach an
internal address: a CIDR entry opens exactly those addresses; a host entry is an exact,
case-insensitive name (no wildcards, no subdomains) whose resolved addresses are not filtered.
Both are empty by default.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_V4_BLOCKED: tuple[tuple[ipaddress.IPv4Network, str], ...] = tuple(
    (ipaddress.IPv4Network(net), why)
    for net, why in (
        ("0.0.0.0/8", "this network"),
        ("10.0.0.0/8", "private"),
        ("100.64.0.0/10", "carrier-grade NAT"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local / cloud metadata"),
        ("172.16.0.0/12", "private"),
        ("192.0.0.0/24", "IETF protocol assignments"),
        ("192.0.2.0/24", "documentation"),
        ("192.88.99.0/24", "6to4 relay anycast"),
        ("192.168.0.0/16", "private"),
        ("198.18.0.0/15", "benchmarking"),
        ("198.51.100.0/24", "documentation"),
        ("203.0.113.0/24", "documentation"),
        ("224.0.0.0/4", "multicast"),
        ("240.0.0.0/4", "reserved"),
        ("255.255.255.255/32", "broadcast"),
    )
)

_V6_BLOCKED: tuple[tuple[ipaddress.IPv6Network, str], ...] = tuple(
    (ipaddress.IPv6Network(net), why)
    for net, why in (
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        ("fc00::/7", "unique local (incl. AWS IMDS fd00:ec2::254)"),
        ("fe80::/10", "link-local"),
        ("ff00::/8", "multicast"),
        ("2001:db8::/32", "documentation"),
    )
)

_V6_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def parse_ip(value: str | IPAddress) -> IPAddress:
    """Strict parse of a canonical IP literal (no zone id); ValueError otherwise."""
    if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return value
    return ipaddress.ip_address(value)


def embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """IPv4 hosts a v6 address actually reaches: mapped, NAT64, 6to4, Teredo server and client."""
    found: list[ipaddress.IPv4Address] = []
    if ip.ipv4_mapped is not None:
        found.append(ip.ipv4_mapped)
    if ip in _NAT64:
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    if ip.sixtofour is not None:
        found.append(ip.sixtofour)
    if ip.teredo is not None:
        found.extend(ip.teredo)
    return found


def _v4_block_reason(ip: ipaddress.IPv4Address) -> str | None:
    for net, why in _V4_BLOCKED:
        if ip in net:
            return f"{why} {net}"
    return None


def block_reason(value: str | IPAddress) -> str | None:
    """Why an address is blocked, or None when it is allowed (ignoring any allowlist)."""
    try:
        ip = parse_ip(value)
    except ValueError:
        return "not an IP address"
    if isinstance(ip, ipaddress.IPv4Address):
        return _v4_block_reason(ip)
    if ip.scope_id:
        return "IPv6 zone id"
    # Mapped and NAT64 addresses are only a wrapper: the embedded IPv4 host is the destination.
    if ip.ipv4_mapped is not None or ip in _NAT64:
        inner = embedded_ipv4(ip)[0]
        reason = _v4_block_reason(inner)
        return f"embeds {inner}: {reason}" if reason else None
    for net, why in _V6_BLOCKED:
        if ip in net:
            return f"{why} {net}"
    if ip not in _V6_GLOBAL_UNICAST:
        return "not IPv6 global unicast 2000::/3"
    for inner in embedded_ipv4(ip):
        reason = _v4_block_reason(inner)
        if reason:
            return f"embeds {inner}: {reason}"
    return None


def is_public_address(value: str | IPAddress) -> bool:
    """True when the policy alone (without allowlist) lets the address through."""
    return block_reason(value) is None


def ip_literal(host: str) -> IPAddress | None:
    """The address a URL host denotes by itself, without DNS, or None for a name.

    Covers what the C resolver would accept numerically (inet_aton forms such as 127.1,
    2130706433, 0177.0.0.1, 0x7f.1), so a numeric trick never reaches DNS as a "name" and its
    real value is what gets checked. Callers must have rejected whitespace first: inet_aton
    ignores anything after a space.
    """
    host = host.strip("[]") if host.startswith("[") else host
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if not host or not all(c.isalnum() or c == "." for c in host) or not host.isascii():
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def _split(values: str | Iterable[str]) -> list[str]:
    parts = values.split(",") if isinstance(values, str) else list(values)
    return [p.strip() for p in parts if p and p.strip()]


@dataclass(frozen=True)
class Allowlist:
    """Explicit exceptions to the address policy; empty (nothing internal reachable) by default."""

    networks: tuple[IPNetwork, ...] = ()
    hosts: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def parse(cls, ips: str | Iterable[str] = "", hosts: str | Iterable[str] = "") -> Allowlist:
        """From comma-separated strings (or sequences): IPs/CIDRs and exact host names.

        Invalid entries raise ValueError so a typo fails the deployment instead of silently
        opening or closing something.
        """
        networks: list[IPNetwork] = []
        for entry in _split(ips):
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError as exc:
                raise ValueError(f"invalid allowlist IP/CIDR {entry!r}") from exc
        names: set[str] = set()
        for entry in _split(hosts):
            if any(c in entry for c in "*/@ \t"):
                raise ValueError(f"invalid allowlist host {entry!r}: exact names only, no wildcard")
            names.add(entry.lower())
        return cls(tuple(networks), frozenset(names))

    @classmethod
    def from_settings(cls, settings: object) -> Allowlist:
        """From `Settings.webhook_allowed_ips` / `.webhook_allowed_hosts` (tuples of strings)."""
        return cls.parse(
            getattr(settings, "webhook_allowed_ips", ()), getattr(settings, "webhook_allowed_hosts", ())
        )

    def allows_host(self, host: str) -> bool:
        """Exact, case-insensitive name match; `a.example.com` is not opened by `example.com`."""
        return host.lower() in self.hosts

    def allows_ip(self, value: str | IPAddress) -> bool:
        """True when an allowlisted network contains the address (or the IPv4 it maps)."""
        ip = parse_ip(value)
        candidates: list[IPAddress] = [ip]
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            candidates.append(ip.ipv4_mapped)
        return any(c.version == net.version and c in net for c in candidates for net in self.networks)
