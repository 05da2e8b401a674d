"""Documentation repositories on GitHub, read through the safe HTTP client (ai-docs-sync); those
on local disk are read by shared/embeddings/docs_local.py, the same way.

Per repository and run: one call for the branch's head commit; when it moved, one more: the
compare between the last processed commit and the head (which files were added, modified,
removed, renamed), or on a first run the head's recursive tree. Then one raw fetch per changed
file that passes the filter (path prefix, AI_DOCS_EXTENSIONS) from raw.githubusercontent.com at
the head commit. GITHUB_TOKEN, when set, goes as a bearer token to both hosts and nowhere else
(the client never follows redirects here); it is never logged.

A 403 or 429 that says the rate limit is spent (X-RateLimit-Remaining: 0, or Retry-After) is
RateLimited with the reset time from X-RateLimit-Reset / Retry-After: the job records it and
leaves the repository until then. Any other failure is GitHubError, one line, no body dump.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from shared.http.client import SafeHttpClient, SafeResponse
from shared.http.errors import HttpError
from shared.settings import Settings

# GitHub lists at most 300 files in a compare; at that size the list may be cut: feed in full.
COMPARE_FILES_LIMIT = 300
MAX_TREE_BYTES = 32 * 1024 * 1024
_SOURCE = re.compile(
    r"^(?P<owner>[A-Za-z0-9][A-Za-z0-9-]{0,38})/(?P<repo>[A-Za-z0-9._-]{1,100})"
    r"(?:@(?P<branch>[^:@\s]{1,255}))?(?::(?P<prefix>[^\s]{0,500}))?$"
)
# A repository on local disk (shared/embeddings/docs_local.py): file:///abs/path or /abs/path.
_LOCAL = re.compile(
    r"^(?:file://)?(?P<path>/[^@:\s]{1,4000})"
    r"(?:@(?P<branch>[^:@\s]{1,255}))?(?::(?P<prefix>[^\s]{0,500}))?$"
)


class GitHubError(Exception):
    """The API answered something unusable, or could not be reached (one line, no secret)."""


class RateLimited(GitHubError):
    def __init__(self, message: str, reset_at: datetime) -> None:
        super().__init__(message)
        self.reset_at = reset_at


@dataclass(frozen=True)
class DocsSource:
    owner: str
    repo: str
    branch: str | None  # None: the repository's default branch
    prefix: str  # only paths under it ("" : all)
    path: str | None = None  # set: a git repository on local disk (owner and repo are empty)

    @property
    def where(self) -> str:
        return f"file://{self.path}" if self.path is not None else f"{self.owner}/{self.repo}"

    @property
    def key(self) -> str:
        return f"{self.where}@{self.branch or 'HEAD'}:{self.prefix}"

    def entity_id(self, path: str) -> str:
        """The document's id in the index: the repository and the path (global docs)."""
        return f"{self.where}:{path}"

    def wants(self, path: str, extensions: Iterable[str]) -> bool:
        return path.startswith(self.prefix) and path.lower().endswith(tuple(e.lower() for e in extensions))


def parse_sources(values: Iterable[str]) -> list[DocsSource]:
    sources = []
    for value in values:
        text = value.strip()
        if text.startswith(("/", "file://")):
            local = _LOCAL.match(text)
            if local is None:
                raise ValueError(
                    f"AI_DOCS_REPOSITORIES entry {value!r}: file:///path/to/repo[@branch][:path/prefix] "
                    "(an absolute path without '@' or ':')"
                )
            prefix = (local["prefix"] or "").lstrip("/")
            path = local["path"].rstrip("/") or "/"
            sources.append(DocsSource("", "", local["branch"], prefix, path=path))
            continue
        match = _SOURCE.match(text)
        if match is None:
            raise ValueError(f"AI_DOCS_REPOSITORIES entry {value!r}: owner/repo[@branch][:path/prefix]")
        prefix = (match["prefix"] or "").lstrip("/")
        sources.append(DocsSource(match["owner"], match["repo"], match["branch"], prefix))
    return sources


@dataclass(frozen=True)
class FileChange:
    path: str
    removed: bool


class GitHub:
    def __init__(self, settings: Settings, client: SafeHttpClient, *, max_file_bytes: int) -> None:
        self.api = settings.ai_docs_github_api_url.rstrip("/")
        self.raw_base = settings.ai_docs_github_raw_url.rstrip("/")
        self.client, self.max_file_bytes = client, max_file_bytes
        self._token = settings.github_token.strip()

    def _get(self, url: str, accept: str, max_bytes: int = 4 * 1024 * 1024) -> SafeResponse:
        headers = {"Accept": accept, "X-GitHub-Api-Version": "2022-11-28"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        where = url.split("?", 1)[0]
        try:
            response = self.client.request("GET", url, headers=headers, max_response_bytes=max_bytes)
        except HttpError as exc:
            raise GitHubError(f"GET {where}: {type(exc).__name__}: {exc}") from None
        if response.status in (403, 429):
            reset = _reset_at(response)
            if reset is not None:
                raise RateLimited(
                    f"GET {where}: rate limited ({response.status}) until {reset:%Y-%m-%dT%H:%M:%SZ}", reset
                )
        if not response.ok:
            raise GitHubError(f"GET {where}: HTTP {response.status}")
        if response.truncated:
            raise GitHubError(f"GET {where}: larger than {max_bytes} bytes")
        return response

    def _json(self, url: str, max_bytes: int = 4 * 1024 * 1024) -> Any:
        body = self._get(url, "application/vnd.github+json", max_bytes).body
        try:
            return json.loads(body)
        except ValueError:
            raise GitHubError(f"GET {url.split('?', 1)[0]}: not JSON") from None

    def _repo(self, source: DocsSource) -> str:
        return f"{self.api}/repos/{quote(source.owner)}/{quote(source.repo)}"

    def head(self, source: DocsSource) -> str:
        """The branch's latest commit SHA (API call 1)."""
        ref = quote(source.branch or "HEAD", safe="")
        sha = self._get(f"{self._repo(source)}/commits/{ref}", "application/vnd.github.sha", 256).body
        text = sha.decode("ascii", "replace").strip()
        if not re.fullmatch(r"[0-9a-f]{40}([0-9a-f]{24})?", text):
            raise GitHubError(f"{source.key}: the head commit is not a SHA")
        return text

    def tree(self, source: DocsSource, sha: str) -> list[str]:
        """Every file path at `sha` (API call 2 of a full feed)."""
        data = self._json(f"{self._repo(source)}/git/trees/{sha}?recursive=1", MAX_TREE_BYTES)
        if data.get("truncated"):
            raise GitHubError(f"{source.key}: the tree at {sha[:12]} is too large for one listing")
        return sorted(e["path"] for e in data.get("tree", []) if e.get("type") == "blob")

    def compare(self, source: DocsSource, base: str, head: str) -> list[FileChange] | None:
        """What changed from `base` to `head` (API call 2), or None when GitHub cannot say it
        completely (too many files, or `base` is no longer an ancestor): feed in full then."""
        data = self._json(f"{self._repo(source)}/compare/{base}...{head}")
        files = data.get("files") or []
        if data.get("status") in ("diverged", "behind") or len(files) >= COMPARE_FILES_LIMIT:
            return None
        changes = []
        for entry in files:
            status, path = entry.get("status"), entry["filename"]
            if status == "removed":
                changes.append(FileChange(path, removed=True))
                continue
            if status == "renamed" and entry.get("previous_filename"):
                changes.append(FileChange(entry["previous_filename"], removed=True))
            changes.append(FileChange(path, removed=False))
        return changes

    def raw(self, source: DocsSource, sha: str, path: str) -> str | None:
        """The file's text at `sha`; None when it is larger than an event may carry."""
        url = f"{self.raw_base}/{quote(source.owner)}/{quote(source.repo)}/{sha}/{quote(path)}"
        try:
            body = self._get(url, "text/plain", self.max_file_bytes).body
        except GitHubError as exc:
            if str(exc).endswith(f"larger than {self.max_file_bytes} bytes"):
                return None
            raise
        return body.decode("utf-8", "replace")


def _reset_at(response: SafeResponse) -> datetime | None:
    """When a spent rate limit resets; None when the answer is not a rate limit."""
    now = datetime.now(UTC)
    retry_after = (response.headers.get("retry-after") or "").strip()
    if retry_after.isdigit():
        return now + timedelta(seconds=int(retry_after))
    if (response.headers.get("x-ratelimit-remaining") or "").strip() == "0":
        reset = (response.headers.get("x-ratelimit-reset") or "").strip()
        return datetime.fromtimestamp(int(reset), UTC) if reset.isdigit() else now + timedelta(hours=1)
    return None
