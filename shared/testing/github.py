"""A loopback stand-in for api.github.com and raw.githubusercontent.com (tests and samples).

It serves the endpoints ai-docs-sync uses, from commits kept in memory (each a full snapshot of
path -> text): `GET /repos/O/R/commits/REF` (Accept: application/vnd.github.sha: the SHA as text),
`/repos/O/R/git/trees/SHA?recursive=1`, `/repos/O/R/compare/BASE...HEAD` (files with status
added, modified, removed, renamed + previous_filename), and raw files at `/O/R/SHA/PATH`. It
records every request path, and answers every request with 403 and spent rate-limit headers
while `rate_limited_until` is set. Not a mock of our code: a real HTTP server on 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit


class FakeGitHub:
    def __init__(self, owner: str = "makeplane", repo: str = "docs", branch: str = "master") -> None:
        self.owner, self.repo, self.branch = owner, repo, branch
        self.commits: list[tuple[str, dict[str, str]]] = []
        self.requests: list[str] = []
        self.authorizations: list[str] = []
        self.rate_limited_until: int | None = None  # epoch seconds for X-RateLimit-Reset
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def env(self) -> dict[str, str]:
        """Settings that point ai-docs-sync here (the address allowlisted past the SSRF rules)."""
        return {
            "AI_DOCS_GITHUB_API_URL": self.url,
            "AI_DOCS_GITHUB_RAW_URL": self.url,
            "AI_DOCS_ALLOWED_IPS": "127.0.0.1/32",
        }

    def commit(self, files: Mapping[str, str]) -> str:
        """A new head commit holding exactly `files`; returns its SHA."""
        with self._lock:
            n = len(self.commits)
            sha = hashlib.sha1(f"{n}:{sorted(files.items())}".encode()).hexdigest()
            self.commits.append((sha, dict(files)))
            return sha

    @property
    def head(self) -> str:
        return self.commits[-1][0]

    def _snapshot(self, sha: str) -> dict[str, str] | None:
        return next((files for s, files in self.commits if s == sha), None)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _answer(self, path: str) -> tuple[int, dict[str, str], bytes]:
        repo = f"/repos/{self.owner}/{self.repo}"
        if path.startswith(f"{repo}/commits/"):
            ref = unquote(path.rsplit("/", 1)[1])
            if ref not in (self.branch, "HEAD") or not self.commits:
                return 404, {}, b'{"message": "No commit found"}'
            return 200, {"Content-Type": "text/plain"}, self.head.encode()
        if path.startswith(f"{repo}/git/trees/"):
            files = self._snapshot(path.rsplit("/", 1)[1])
            if files is None:
                return 404, {}, b"{}"
            tree = [{"path": p, "type": "blob"} for p in sorted(files)]
            return 200, {}, json.dumps({"tree": tree, "truncated": False}).encode()
        if path.startswith(f"{repo}/compare/"):
            base, _, head = path.rsplit("/", 1)[1].partition("...")
            old, new = self._snapshot(base), self._snapshot(head)
            if old is None or new is None:
                return 404, {}, b"{}"
            return 200, {}, json.dumps({"status": "ahead", "files": _diff(old, new)}).encode()
        parts = path.lstrip("/").split("/", 3)
        if len(parts) == 4 and parts[:2] == [self.owner, self.repo]:
            files = self._snapshot(parts[2])
            text = None if files is None else files.get(unquote(parts[3]))
            if text is not None:
                return 200, {"Content-Type": "text/plain; charset=utf-8"}, text.encode()
        return 404, {}, b"404: Not Found"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                path = urlsplit(self.path).path
                with fake._lock:
                    fake.requests.append(path)
                    fake.authorizations.append(self.headers.get("Authorization") or "")
                    limited = fake.rate_limited_until
                    status, headers, body = (
                        (403, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(limited)},
                         b'{"message": "API rate limit exceeded"}')
                        if limited is not None else fake._answer(path)
                    )  # fmt: skip
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: object) -> None:
                pass

        return Handler


def _diff(old: Mapping[str, str], new: Mapping[str, str]) -> list[dict[str, str]]:
    """GitHub's compare files: a removed path whose text reappears under a new one is a rename."""
    files = []
    removed = {p: t for p, t in old.items() if p not in new}
    added = {p: t for p, t in new.items() if p not in old}
    for path, body in sorted(added.items()):
        previous = next((p for p, t in removed.items() if t == body), None)
        if previous is not None:
            del removed[previous]
            files.append({"filename": path, "status": "renamed", "previous_filename": previous})
        else:
            files.append({"filename": path, "status": "added"})
    files += [{"filename": p, "status": "modified"} for p in sorted(old) if p in new and old[p] != new[p]]
    files += [{"filename": p, "status": "removed"} for p in sorted(removed)]
    return files
