"""GitHub's issues of one repository, a page at a time, through the safe HTTP client.

`GET {GITHUB_API_URL}/repos/O/R/issues?state=all&sort=created&direction=asc&per_page=100`, then
the `rel="next"` URL of each answer's Link header (GitHub decides the paging: page numbers or
cursors). A next URL is only followed while it stays under the repository's issues path on the
configured host, so neither an answer nor an event can point the importer elsewhere (the token
goes with every request). GITHUB_TOKEN, when set, is sent as a bearer token and never logged.

A spent rate limit (403 or 429 with X-RateLimit-Remaining: 0, or with Retry-After) is waited out
when it resets within `max_wait_s` (IMPORT_GITHUB_MAX_WAIT_S), else RateLimited is raised: the
handler leaves the event to its retry tiers, and what was imported stays (a retry skips it).
Unreachable, 5xx: GitHubUnavailable (retried). 401, 404 and other 4xx: GitHubRefused (permanent:
a wrong token or repository is not cured by waiting).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from shared.http.addresses import Allowlist
from shared.http.client import SafeHttpClient, SafeResponse
from shared.http.errors import HttpError
from shared.settings import Settings

REPOSITORY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9._-]{1,100}$")
PAGE_BYTES = 16 * 1024 * 1024
_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')


class GitHubUnavailable(Exception):
    """GitHub could not be reached or answered 5xx: retry later."""


class RateLimited(GitHubUnavailable):
    def __init__(self, message: str, wait_s: float) -> None:
        super().__init__(message)
        self.wait_s = wait_s


class GitHubRefused(Exception):
    """GitHub refused the request for good (bad token, no such repository)."""


@dataclass(frozen=True)
class Page:
    issues: Any  # the decoded JSON list
    next_url: str | None


def client_for(settings: Settings) -> SafeHttpClient:
    """A client that may reach the addresses in IMPORT_ALLOWED_IPS (a GitHub Enterprise inside)."""
    return SafeHttpClient(
        Allowlist.parse(settings.import_allowed_ips),
        default_deadline_s=30.0,
        default_max_response_bytes=PAGE_BYTES,
        max_connections_per_endpoint=2,
    )


def check_repository(repository: str) -> str:
    if not REPOSITORY.match(repository or ""):
        raise GitHubRefused(f"repository {repository!r} is not owner/name")
    return repository


class GitHubIssues:
    def __init__(
        self,
        settings: Settings,
        client: SafeHttpClient,
        repository: str,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.api = settings.github_api_url.rstrip("/")
        owner, name = check_repository(repository).split("/")
        self.path = f"/repos/{quote(owner)}/{quote(name)}/issues"
        self.client, self.sleep = client, sleep
        self.max_wait_s = settings.import_github_max_wait_s
        self._token = settings.github_token.strip()

    def first_url(self) -> str:
        return f"{self.api}{self.path}?state=all&sort=created&direction=asc&per_page=100"

    def allowed(self, url: str) -> bool:
        """The URL names this repository's issues on the configured API host."""
        base, target = urlsplit(self.api), urlsplit(url)
        return (target.scheme, target.netloc) == (base.scheme, base.netloc) and target.path == (
            base.path.rstrip("/") + self.path
        )

    def page(self, url: str, deadline_s: float = 30.0, max_wait_s: float | None = None) -> Page:
        """One page; a rate limit resetting within `max_wait_s` (default IMPORT_GITHUB_MAX_WAIT_S)
        is slept through, a later one raises RateLimited."""
        longest = self.max_wait_s if max_wait_s is None else min(max_wait_s, self.max_wait_s)
        if not self.allowed(url):
            raise GitHubRefused(f"refusing to follow {url.split('?', 1)[0]}: not {self.path} on {self.api}")
        while True:
            response = self._get(url, deadline_s)
            wait = rate_limit_wait(response)
            if wait is None:
                break
            if wait > longest:
                raise RateLimited(
                    f"GitHub rate limit spent ({response.status}): resets in {wait:.0f} s", wait
                )
            self.sleep(wait)
        where = url.split("?", 1)[0]
        if response.status >= 500 or response.status in (403, 429):
            raise GitHubUnavailable(f"GET {where}: HTTP {response.status}")
        if not response.ok:
            raise GitHubRefused(f"GET {where}: HTTP {response.status}")
        if response.truncated:
            raise GitHubRefused(f"GET {where}: a page larger than {PAGE_BYTES} bytes")
        try:
            issues = json.loads(response.body)
        except ValueError:
            raise GitHubUnavailable(f"GET {where}: not JSON") from None
        return Page(issues, next_url(response.headers.get("link")))

    def _get(self, url: str, deadline_s: float) -> SafeResponse:
        headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        try:
            return self.client.request("GET", url, headers=headers, deadline_s=deadline_s)
        except HttpError as exc:
            where = url.split("?", 1)[0]
            if exc.retryable:
                raise GitHubUnavailable(f"GET {where}: {type(exc).__name__}: {exc}") from None
            raise GitHubRefused(f"GET {where}: {type(exc).__name__}: {exc}") from None


def next_url(link: str | None) -> str | None:
    """The `rel="next"` target of a Link header."""
    for part in (link or "").split(","):
        match = _NEXT.search(part)
        if match:
            return match.group(1).strip()
    return None


def rate_limit_wait(response: SafeResponse, now: float | None = None) -> float | None:
    """Seconds until a spent rate limit resets; None when the answer is no rate limit."""
    if response.status not in (403, 429):
        return None
    retry_after = (response.headers.get("retry-after") or "").strip()
    if retry_after.isdigit():
        return float(retry_after)
    if (response.headers.get("x-ratelimit-remaining") or "").strip() == "0":
        reset = (response.headers.get("x-ratelimit-reset") or "").strip()
        now = time.time() if now is None else now
        return max(0.0, int(reset) - now) + 1.0 if reset.isdigit() else 3600.0
    return None
