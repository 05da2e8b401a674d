"""Resolve a host once and decide which addresses may be dialled.

Choice: REJECT-ANY. If any resolved address is blocked, the whole host is refused (Plane #9163's
rule) rather than silently keeping the allowed ones (Svix's rule). A name that mixes public and
internal records is either an attack or a misconfiguration; both deserve a clear permanent error,
and save-time validation and send-time delivery then give the same answer for the same DNS.
The addresses returned here are the only ones the transport ever connects to (pinning), so a
second, different DNS answer (rebinding) can never be used.
"""

from __future__ import annotations

import functools
import socket
from collections.abc import Callable, Collection, Sequence

from shared.http.addresses import Allowlist, IPAddress, block_reason, parse_ip
from shared.http.errors import BlockedAddress, ResolveError
from shared.http.urls import Target, parse_target

Resolver = Callable[[str, int], Sequence[str | IPAddress]]
"""`(host, port) -> addresses`; inject one in tests to simulate DNS (e.g. rebinding)."""


def system_resolver(host: str, port: int) -> list[str]:
    """getaddrinfo, TCP only, addresses de-duplicated in the resolver's preference order."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    seen: dict[str, None] = {}
    for _family, _type, _proto, _canon, sockaddr in infos:
        seen.setdefault(str(sockaddr[0]), None)
    return list(seen)


def is_localhost_name(host: str) -> bool:
    """`localhost`, `localhost.` and `*.localhost` are loopback by definition (RFC 6761)."""
    name = host.rstrip(".").lower()
    return name == "localhost" or name.endswith(".localhost")


Verdict = Callable[[IPAddress], str | None]
"""An address -> None when it may be dialled, else why not."""


def address_verdict(allowlist: Allowlist) -> Verdict:
    """The policy and the allowlist's verdict on an address, memoised: both are fixed, so a
    client that sends to the same receivers all day judges each address once."""

    @functools.lru_cache(maxsize=4096)
    def verdict(address: IPAddress) -> str | None:
        return None if allowlist.allows_ip(address) else block_reason(address)

    return verdict


def vet_addresses(
    target: Target, allowlist: Allowlist, resolver: Resolver, verdict: Verdict | None = None
) -> tuple[IPAddress, ...]:
    """The addresses `target` may be dialled at, or raise BlockedAddress / ResolveError."""
    raw = None
    if needs_dns(target, allowlist):
        try:
            raw = resolver(target.host, target.port)
        except OSError as exc:
            raise resolve_error(target, exc) from exc
    return vet_resolved(target, allowlist, raw, verdict)


def needs_dns(target: Target, allowlist: Allowlist) -> bool:
    """False for an IP literal; BlockedAddress for a localhost name nobody allowed, which is
    refused before any lookup."""
    if target.ip is not None:
        return False
    if is_localhost_name(target.host) and not allowlist.allows_host(target.host):
        raise BlockedAddress(target.host, target.host, "localhost name")
    return True


def resolve_error(target: Target, exc: OSError) -> ResolveError:
    return ResolveError(f"cannot resolve {target.host!r}: {exc}")


def vet_resolved(
    target: Target,
    allowlist: Allowlist,
    raw: Sequence[str | IPAddress] | None,
    verdict: Verdict | None = None,
) -> tuple[IPAddress, ...]:
    """Judge what the resolver answered (`raw`; None for an IP literal): the second half of
    `vet_addresses`, for a caller that resolves on its own (the asyncio client)."""
    host_allowed = allowlist.allows_host(target.host)
    if target.ip is not None:
        addresses: list[IPAddress] = [target.ip]
    else:
        try:
            addresses = [parse_ip(str(a)) for a in raw or ()]
        except ValueError as exc:
            raise ResolveError(f"resolver returned a non-address for {target.host!r}: {exc}") from exc
        if not addresses:
            raise ResolveError(f"{target.host!r} has no address")
    if host_allowed:
        return tuple(addresses)
    for address in addresses:
        reason = verdict(address) if verdict is not None else _verdict(allowlist, address)
        if reason is not None:
            raise BlockedAddress(target.host, str(address), reason)
    return tuple(addresses)


def _verdict(allowlist: Allowlist, address: IPAddress) -> str | None:
    return None if allowlist.allows_ip(address) else block_reason(address)


def check_url(
    url: str,
    allowlist: Allowlist,
    *,
    resolver: Resolver = system_resolver,
    allowed_ports: Collection[int] | None = None,
    require_https: bool = False,
) -> tuple[Target, tuple[IPAddress, ...]]:
    """Save-time validation (webhook create AND update): the same rules the client applies.

    Passing here does not make a later send safe by itself; the client re-vets at send time
    against the address it actually connects to.
    """
    target = parse_target(url, allowed_ports=allowed_ports, require_https=require_https)
    return target, vet_addresses(target, allowlist, resolver)
