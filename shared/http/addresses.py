"""Which IP addresses outbound requests may reach, and the explicit allowlist.

Policy: an address is allowed only if it lies in NO block of `SPECIAL_PURPOSE` (the IANA IPv4 and
IPv6 Special-Purpose Address Registries, RFC 6890 as updated, plus multicast and the IPv6 space
outside 2000::/3), checked on the IPv4 host inside IPv4-mapped (::ffff:0:0/96) and NAT64
(64:ff9b::/96) addresses, because those reach the embedded IPv4 host. Every special-purpose block
is refused, the globally reachable ones too: they are protocol anycast (PCP, TURN, AS112, AMT) or
identifiers (ORCHIDv2, DETs), never a receiver, and an operator who needs one lists it. 6to4
(2002::/16) and Teredo (2001::/32) are refused whole (their reachability is N/A): which host a
relay reaches is not ours to check. We do not trust `ipaddress.is_private`/`is_global`: their
answers changed between Python versions and missed CGNAT, multicast and 6to4 (Plane #9163).

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


@dataclass(frozen=True)
class SpecialBlock:
    network: IPNetwork
    name: str
    rfc: str
    # The registry's "Globally Reachable" column; None where it says N/A or the entry is
    # deprecated. Informative only: every block here is refused (see the module docstring).
    globally_reachable: bool | None
    embeds_ipv4: bool = False  # judged by the IPv4 address in its last 32 bits instead


def _block(net: str, name: str, rfc: str, reachable: bool | None, embeds: bool = False) -> SpecialBlock:
    return SpecialBlock(ipaddress.ip_network(net), name, rfc, reachable, embeds)


# fmt: off
SPECIAL_PURPOSE: tuple[SpecialBlock, ...] = (
    # IANA IPv4 Special-Purpose Address Registry (RFC 6890, RFC 8190).
    _block("0.0.0.0/8", '"This network"', "RFC 791 §3.2", False),
    _block("0.0.0.0/32", '"This host on this network"', "RFC 1122 §3.2.1.3", False),
    _block("10.0.0.0/8", "Private-Use", "RFC 1918", False),
    _block("100.64.0.0/10", "Shared Address Space (carrier-grade NAT)", "RFC 6598", False),
    _block("127.0.0.0/8", "Loopback", "RFC 1122 §3.2.1.3", False),
    _block("169.254.0.0/16", "Link Local (cloud metadata)", "RFC 3927", False),
    _block("172.16.0.0/12", "Private-Use", "RFC 1918", False),
    _block("192.0.0.0/24", "IETF Protocol Assignments", "RFC 6890 §2.1", False),
    _block("192.0.0.0/29", "IPv4 Service Continuity Prefix", "RFC 7335", False),
    _block("192.0.0.8/32", "IPv4 dummy address", "RFC 7600", False),
    _block("192.0.0.9/32", "Port Control Protocol Anycast", "RFC 7723", True),
    _block("192.0.0.10/32", "Traversal Using Relays around NAT Anycast", "RFC 8155", True),
    _block("192.0.0.170/32", "NAT64/DNS64 Discovery", "RFC 8880, RFC 7050 §2.2", False),
    _block("192.0.0.171/32", "NAT64/DNS64 Discovery", "RFC 8880, RFC 7050 §2.2", False),
    _block("192.0.2.0/24", "Documentation (TEST-NET-1)", "RFC 5737", False),
    _block("192.31.196.0/24", "AS112-v4", "RFC 7535", True),
    _block("192.52.193.0/24", "AMT", "RFC 7450", True),
    _block("192.88.99.0/24", "Deprecated (6to4 Relay Anycast)", "RFC 7526", None),
    _block("192.88.99.2/32", "6a44-relay anycast address", "RFC 6751", None),
    _block("192.168.0.0/16", "Private-Use", "RFC 1918", False),
    _block("192.175.48.0/24", "Direct Delegation AS112 Service", "RFC 7534", True),
    _block("198.18.0.0/15", "Benchmarking", "RFC 2544", False),
    _block("198.51.100.0/24", "Documentation (TEST-NET-2)", "RFC 5737", False),
    _block("203.0.113.0/24", "Documentation (TEST-NET-3)", "RFC 5737", False),
    _block("240.0.0.0/4", "Reserved", "RFC 1112 §4", False),
    _block("255.255.255.255/32", "Limited Broadcast", "RFC 8190, RFC 919 §7", False),
    # Not in that registry, but never a unicast destination: IANA IPv4 Multicast Address Space.
    _block("224.0.0.0/4", "Multicast", "RFC 5771", False),
    # IANA IPv6 Special-Purpose Address Registry (RFC 6890, RFC 8190).
    _block("::1/128", "Loopback Address", "RFC 4291", False),
    _block("::/128", "Unspecified Address", "RFC 4291", False),
    _block("::ffff:0:0/96", "IPv4-mapped Address", "RFC 4291", False, embeds=True),
    _block("64:ff9b::/96", "IPv4-IPv6 Translation (NAT64)", "RFC 6052", True, embeds=True),
    _block("64:ff9b:1::/48", "IPv4-IPv6 Translation (local use)", "RFC 8215", False),
    _block("100::/64", "Discard-Only Address Block", "RFC 6666", False),
    _block("100:0:0:1::/64", "Dummy IPv6 Prefix", "RFC 9780", False),
    _block("2001::/23", "IETF Protocol Assignments", "RFC 2928", False),
    _block("2001::/32", "TEREDO", "RFC 4380, RFC 8190", None),
    _block("2001:1::1/128", "Port Control Protocol Anycast", "RFC 7723", True),
    _block("2001:1::2/128", "Traversal Using Relays around NAT Anycast", "RFC 8155", True),
    _block("2001:1::3/128", "DNS-SD Service Registration Protocol Anycast", "RFC 9665", True),
    _block("2001:2::/48", "Benchmarking", "RFC 5180, RFC Errata 1752", False),
    _block("2001:3::/32", "AMT", "RFC 7450", True),
    _block("2001:4:112::/48", "AS112-v6", "RFC 7535", True),
    _block("2001:10::/28", "Deprecated (previously ORCHID)", "RFC 4843", None),
    _block("2001:20::/28", "ORCHIDv2", "RFC 7343", True),
    _block("2001:30::/28", "Drone Remote ID Protocol Entity Tags (DETs) Prefix", "RFC 9374", True),
    _block("2001:db8::/32", "Documentation", "RFC 3849", False),
    _block("2002::/16", "6to4", "RFC 3056", None),
    _block("2620:4f:8000::/48", "Direct Delegation AS112 Service", "RFC 7534", True),
    _block("3fff::/20", "Documentation", "RFC 9637", False),
    _block("5f00::/16", "Segment Routing (SRv6) SIDs", "RFC 9602", False),
    _block("fc00::/7", "Unique-Local (incl. AWS IMDS fd00:ec2::254)", "RFC 4193, RFC 8190", False),
    _block("fe80::/10", "Link-Local Unicast", "RFC 4291", False),
    # Not in that registry: multicast (RFC 4291 §2.7); the rest of ::/0 outside 2000::/3 is
    # refused by `block_reason` as not global unicast.
    _block("ff00::/8", "Multicast", "RFC 4291 §2.7", False),
)
# fmt: on

# Most specific first, so a reason names the narrowest block (192.0.0.9/32, not 192.0.0.0/24).
_BY_SPECIFICITY = sorted(SPECIAL_PURPOSE, key=lambda b: -b.network.prefixlen)
_V6_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")  # RFC 4291 §2.4: all else is not unicast


def parse_ip(value: str | IPAddress) -> IPAddress:
    """Strict parse of a canonical IP literal (no zone id); ValueError otherwise."""
    if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return value
    return ipaddress.ip_address(value)


def special_block(value: str | IPAddress) -> SpecialBlock | None:
    """The narrowest `SPECIAL_PURPOSE` block holding the address, or None."""
    ip = parse_ip(value)
    return next((b for b in _BY_SPECIFICITY if b.network.version == ip.version and ip in b.network), None)


def block_reason(value: str | IPAddress) -> str | None:
    """Why an address is blocked, or None when it is allowed (ignoring any allowlist)."""
    try:
        ip = parse_ip(value)
    except ValueError:
        return "not an IP address"
    if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id:
        return "IPv6 zone id"
    block = special_block(ip)
    if block is not None and block.embeds_ipv4:
        # Mapped and NAT64 addresses are only a wrapper: the embedded IPv4 host is the destination.
        inner = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        reason = block_reason(inner)
        return f"embeds {inner}: {reason}" if reason else None
    if block is not None:
        return f"{block.name} {block.network}, {block.rfc}"
    if isinstance(ip, ipaddress.IPv6Address) and ip not in _V6_GLOBAL_UNICAST:
        return "not IPv6 global unicast 2000::/3, RFC 4291"
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
