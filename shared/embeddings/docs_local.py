"""Documentation repositories on local disk (air-gapped installs), read with the `git` command.

The same four questions as shared/embeddings/docs_github.py, asked of a repository (a clone or a
bare mirror kept up to date by whatever brings the documentation in): the branch's head commit
(`git rev-parse`), what changed since the last processed one (`git diff --name-status`, renames as
a removal plus an addition, as GitHub's compare is read), every file at a commit (`git ls-tree`) and
one file's text (`git cat-file`). ai-docs-sync takes the same path for both (cronjobs/ai_docs_sync.py).

Failures are GitHubError (the job's per-repository failure, one line naming the repository and
the git command's own message). No network, so no rate limit. The repository must be one git
trusts (owned by the job's user, or listed in git's safe.directory): its config is not overridden.
"""

from __future__ import annotations

import os
import subprocess

from shared.embeddings.docs_github import DocsSource, FileChange, GitHubError

GIT_TIMEOUT_S = 120.0


class LocalGit:
    def __init__(self, *, max_file_bytes: int) -> None:
        self.max_file_bytes = max_file_bytes

    def _git(self, source: DocsSource, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        assert source.path is not None
        # No prompt, no pager, no user or system configuration that could point elsewhere.
        env = os.environ | {"GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1", "GIT_PAGER": "cat"}
        try:
            result = subprocess.run(
                ["git", "-C", source.path, *args], capture_output=True, env=env, timeout=GIT_TIMEOUT_S
            )
        except FileNotFoundError:
            raise GitHubError(f"{source.key}: the git command is not installed") from None
        except subprocess.TimeoutExpired:
            raise GitHubError(f"{source.key}: git {args[0]} took more than {GIT_TIMEOUT_S:.0f} s") from None
        if check and result.returncode != 0:
            message = " ".join(result.stderr.decode("utf-8", "replace").split())[:500]
            raise GitHubError(f"{source.key}: git {args[0]} failed: {message or result.returncode}")
        return result

    def head(self, source: DocsSource) -> str:
        ref = source.branch or "HEAD"
        out = self._git(source, "rev-parse", "--verify", "--end-of-options", f"{ref}^{{commit}}").stdout
        return out.decode("ascii", "replace").strip()

    def tree(self, source: DocsSource, sha: str) -> list[str]:
        out = self._git(source, "ls-tree", "-r", "-z", "--name-only", sha).stdout
        return sorted(p.decode("utf-8", "surrogateescape") for p in out.split(b"\0") if p)

    def compare(self, source: DocsSource, base: str, head: str) -> list[FileChange] | None:
        """What changed from `base` to `head`; None when `base` is gone or no longer an ancestor
        (history rewritten): feed in full then, as for GitHub."""
        known = self._git(source, "cat-file", "-e", f"{base}^{{commit}}", check=False)
        if known.returncode != 0:
            return None
        if self._git(source, "merge-base", "--is-ancestor", base, head, check=False).returncode != 0:
            return None
        out = self._git(source, "diff", "--name-status", "--no-renames", "-z", base, head).stdout
        fields = [f.decode("utf-8", "surrogateescape") for f in out.split(b"\0") if f]
        # -z --name-status: STATUS NUL PATH NUL ...; with --no-renames every status has one path.
        pairs = zip(fields[::2], fields[1::2], strict=True)
        return [FileChange(path, removed=status == "D") for status, path in pairs]

    def raw(self, source: DocsSource, sha: str, path: str) -> str | None:
        """The file's text at `sha`; None when it is larger than an event may carry."""
        size = self._git(source, "cat-file", "-s", f"{sha}:{path}").stdout
        if int(size.strip() or 0) > self.max_file_bytes:
            return None
        body = self._git(source, "cat-file", "blob", f"{sha}:{path}").stdout
        return body.decode("utf-8", "replace")
