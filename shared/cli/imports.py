"""`plane-workers import FILE --project P`: the importer run directly against DATABASE_URL.

The same code as the `imports` consumer (services/imports/run.py), without a deadline: no broker
and no S3 needed, the file is read from local disk. FILE is a JSON or CSV file our export wrote
(format from its suffix, or --format); `--github owner/name` imports a repository's issues instead
(GITHUB_TOKEN, GITHUB_API_URL). P is the project's id or `WORKSPACE_SLUG/IDENTIFIER`. The actor
(--actor: a user id or e-mail; default the workspace's owner) creates what no author maps to.
Idempotent: running it again creates nothing new.

Exit codes (shared/cli/errors.py): 0 imported; 2 a bad argument or file (unreadable, not the
format, too large, unknown project or actor, a repository GitHub refuses); 3 PostgreSQL or GitHub
unreachable, or GitHub's rate limit spent (run it again after the reset it names); 1 otherwise.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Annotated

import typer

from shared.cli.errors import CliError, ConfigError, Unreachable, require_database


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def resolve(engine, project: str, actor: str | None) -> tuple[str, str, str]:  # type: ignore[no-untyped-def]
    """(workspace id, project id, actor id) of `--project` and `--actor`."""
    from sqlalchemy import text

    with engine.connect() as conn:
        if (pid := _uuid(project)) is not None:
            where, params = "p.id = :p", {"p": pid}
        elif project.count("/") == 1:
            slug, ident = project.split("/")
            where, params = "w.slug = :s AND p.identifier = :i", {"s": slug, "i": ident.strip().upper()}
        else:
            raise ConfigError(f"--project {project!r}: a project id or WORKSPACE_SLUG/IDENTIFIER")
        found = conn.execute(
            text(
                "SELECT p.id, p.workspace_id, w.owner_id"
                " FROM projects p JOIN workspaces w ON w.id = p.workspace_id"
                f" WHERE {where} AND p.deleted_at IS NULL AND w.deleted_at IS NULL"
            ),
            params,
        ).one_or_none()
        if found is None:
            raise ConfigError(f"--project {project!r}: no such project (or it is deleted)")
        actor_id = found.owner_id
        if actor:
            column = "id" if _uuid(actor) else "lower(email)"
            value = str(_uuid(actor) or actor.strip().lower())
            actor_id = conn.scalar(text(f"SELECT id FROM users WHERE {column}::text = :v"), {"v": value})
            if actor_id is None:
                raise ConfigError(f"--actor {actor!r}: no such user")
    return str(found.workspace_id), str(found.id), str(actor_id)


def import_issues(
    file: Annotated[Path | None, typer.Argument(help="JSON or CSV file of our export.")] = None,
    project: Annotated[str, typer.Option(help="Project id or WORKSPACE_SLUG/IDENTIFIER.")] = "",
    github: Annotated[
        str | None, typer.Option(help="Import owner/name's GitHub issues instead of FILE.")
    ] = None,
    format_: Annotated[
        str | None, typer.Option("--format", help="json or csv (default: FILE's suffix).")
    ] = None,
    actor: Annotated[
        str | None, typer.Option(help="User id or e-mail; default: the workspace's owner.")
    ] = None,
    external_source: Annotated[
        str | None, typer.Option(help="external_source of the issues (default plane-export / github).")
    ] = None,
) -> None:
    """Import issues into a project from our export's JSON/CSV or from GitHub, once per external id.
    Exit 0: imported; 2: bad argument or file; 3: database or GitHub unreachable or rate limited."""
    from services.imports import run as importer
    from services.imports.github import GitHubRefused, GitHubUnavailable, RateLimited, client_for
    from services.imports.mapping import BadSource
    from services.imports.writer import ProjectNotFound
    from shared.cli.main import _settings
    from shared.db.engine import get_engine

    settings = _settings()
    if not project:
        raise ConfigError("--project is required (a project id or WORKSPACE_SLUG/IDENTIFIER)")
    if (file is None) == (github is None):
        raise ConfigError("give FILE or --github owner/name (one of them)")
    body = None
    if file is not None:
        kind = {"json": "plane_json", "csv": "plane_csv"}.get((format_ or file.suffix.lstrip(".")).lower())
        if kind is None:
            raise ConfigError(f"{file}: --format json or csv (not {format_ or file.suffix!r})")
        try:
            size = file.stat().st_size
            if size > settings.import_max_file_bytes:
                raise ConfigError(
                    f"{file}: {size} bytes, over IMPORT_MAX_FILE_BYTES={settings.import_max_file_bytes}"
                )
            body = file.read_bytes()
        except OSError as exc:
            raise ConfigError(f"{file}: cannot read: {exc.strerror or exc}") from None
    else:
        kind = "github"
    require_database(settings)
    engine = get_engine(settings.database_url)
    workspace_id, project_id, actor_id = resolve(engine, project, actor)
    data = {"kind": kind, "workspace_id": workspace_id, "project_id": project_id, "actor_id": actor_id}
    if github:
        data["repository"] = github
    if external_source:
        data["external_source"] = external_source
    where = str(file) if file is not None else f"GITHUB_API_URL={settings.github_api_url} {github}"
    try:
        client = client_for(settings) if github else None
        outcome = importer.run(engine, settings, data, body=body, client=client)
    except (BadSource, ProjectNotFound) as exc:
        raise ConfigError(f"{where}: {exc}") from None
    except GitHubRefused as exc:
        raise ConfigError(f"{where} (GITHUB_TOKEN set: {bool(settings.github_token)}): {exc}") from None
    except RateLimited as exc:
        raise Unreachable(f"{where}: {exc}; what was imported stays, run again after the reset") from None
    except GitHubUnavailable as exc:
        raise Unreachable(f"{where}: {exc}") from None
    if outcome.status != "done":  # no deadline: only a GitHub rate limit after progress pauses
        raise CliError(f"{where}: paused at {outcome.cursor}: run again", 3)
    typer.echo(
        json.dumps({"imported": kind, "project": project_id, "counts": dict(sorted(outcome.counts.items()))})
    )
