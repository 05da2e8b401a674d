"""The project's one safe outbound HTTP client (webhook delivery, link crawler, docs sync).

    client = SafeHttpClient(Allowlist.from_settings(settings))
    response = client.request("POST", url, body=payload, deadline_s=30, max_response_bytes=20_000)

Modules: `addresses` (IP policy, allowlist), `urls` (strict URL parse), `vetting` (resolve once,
reject-any), `deadline` (total deadline), `transport` (pinned urllib3 pools), `client`, `errors`.
`aio.AsyncSafeHttpClient` applies the same rules on an asyncio loop (`aiopool`: pinned
connections, `wire`: HTTP/1.1) for callers with many requests in flight (webhook-deliveries).
Anything reaching an internal address must be listed in WEBHOOK_ALLOWED_IPS/WEBHOOK_ALLOWED_HOSTS.
"""

from shared.http.addresses import Allowlist, block_reason, is_public_address
from shared.http.client import SafeHttpClient, SafeResponse
from shared.http.errors import (
    BlockedAddress,
    ConnectError,
    DeadlineExceeded,
    HttpError,
    ProtocolError,
    RequestTooLarge,
    ResolveError,
    TlsError,
    TooManyRedirects,
    UnsafeUrl,
)
from shared.http.urls import Target, parse_target
from shared.http.vetting import Resolver, check_url, system_resolver

__all__ = [
    "Allowlist",
    "BlockedAddress",
    "ConnectError",
    "DeadlineExceeded",
    "HttpError",
    "ProtocolError",
    "RequestTooLarge",
    "ResolveError",
    "Resolver",
    "SafeHttpClient",
    "SafeResponse",
    "Target",
    "TlsError",
    "TooManyRedirects",
    "UnsafeUrl",
    "block_reason",
    "check_url",
    "is_public_address",
    "parse_target",
    "system_resolver",
]
