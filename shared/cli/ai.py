"""`plane-workers ai ...`: Plane AI's backfill, search and status.

Imports nothing heavy at module level (the CLI imports this to register the commands); the model
is loaded only by the commands that embed (`vectorize`, `search`). Exit codes as everywhere
(shared/cli/errors.py): 0 done (also: another run holds the workspace's job), 1 failed (vectors
still missing), 2 usage or configuration, 3 the database (and so the index) is unreachable.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer

from shared.cli.errors import CliError, ConfigError, ErrorMappingGroup, Unreachable

if TYPE_CHECKING:
    from shared.embeddings.pipeline import Indexer
    from shared.settings import Settings

ai_app = typer.Typer(
    cls=ErrorMappingGroup,
    help="Plane AI: vectorise a workspace, search it, show the index's state.",
    no_args_is_help=True,
)


def _workspace(value: str, option: str = "WORKSPACE") -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise ConfigError(f"{option}={value!r}: not a workspace id (a UUID)") from None


def _indexer(settings: Settings) -> Indexer:
    """The model and its index, as the consumer builds them; failures as one line."""
    from shared.cli.errors import require_database
    from shared.db.engine import get_engine

    require_database(settings)
    try:
        from services.embeddings.handler import indexer
        from shared.kafka.handler import DependencyUnavailable
    except ImportError as exc:  # pragma: no cover - the extra is installed in the image and venv
        raise ConfigError(f"the `embeddings` extra is not installed: {exc}") from None
    try:
        with model_errors(settings):
            return indexer(settings, get_engine(settings.database_url))
    except DependencyUnavailable as exc:
        raise _unreachable(exc, settings) from None


@contextmanager
def model_errors(settings: Settings) -> Iterator[None]:
    """Loading the model and choosing its index fail as one configuration line each."""
    from shared.embeddings.backends import IndexConfigError

    try:
        yield
    except IndexConfigError as exc:
        raise ConfigError(str(exc)) from None
    except ModuleNotFoundError as exc:
        raise ConfigError(f"the `embeddings` extra is not installed ({exc.name} missing)") from None
    except (OSError, ValueError, RuntimeError) as exc:
        where = f"EMBEDDING_MODEL={settings.embedding_model or '(default)'}"
        raise ConfigError(f"{where}: the model cannot be loaded: {exc}") from None


def _unreachable(exc: Exception, settings: Settings) -> CliError:
    from shared.embeddings.backends import index_setting

    return Unreachable(f"{index_setting(settings)}: vector index unreachable: {exc}")


@ai_app.command("vectorize")
def vectorize(
    workspace: Annotated[str, typer.Argument(help="The workspace id.")],
    page_size: Annotated[int, typer.Option(help="Issues per page (one transaction, one encode).")] = 256,
    lease_seconds: Annotated[
        float, typer.Option(help="A killed run's job is taken over once this has passed without a page.")
    ] = 120.0,
) -> None:
    """Embed every issue of a workspace into the index (Plane AI's vectorize_workspace): job row
    queued -> running -> success/failed, keyset pages, progress on stderr, resumable after a
    kill from its checkpoint, done only when no issue is missing from the index."""
    from shared.cli.main import _settings
    from shared.db.engine import get_engine
    from shared.embeddings.backfill import Backfill, JobBusy
    from shared.embeddings.index import IndexUnavailable

    ws = _workspace(workspace)
    if page_size < 1 or lease_seconds <= 0:
        raise ConfigError("--page-size and --lease-seconds must be positive")
    settings = _settings()
    indexer = _indexer(settings)
    backfill = Backfill(
        get_engine(settings.database_url),
        indexer,
        ws,
        page_size=page_size,
        lease_s=lease_seconds,
        pause_s=settings.job_batch_pause_ms / 1000,
    )
    try:
        outcome = backfill.run()
    except JobBusy as exc:
        typer.echo(f"vectorize: {exc}; nothing to do here", err=True)
        raise typer.Exit(0) from None
    except IndexUnavailable as exc:
        raise _unreachable(exc, settings) from None
    counts = outcome.counts
    resumed = f", resumed after {outcome.resumed_from}" if outcome.resumed_from else ""
    typer.echo(
        f"job {outcome.job_id}: {outcome.status}: {counts.get('total', 0)} issues, "
        f"{counts.get('embedded', 0)} embedded, {counts.get('unchanged', 0)} unchanged, "
        f"{counts.get('missing', 0)} missing{resumed}"
    )
    if outcome.status != "success":
        raise typer.Exit(1)


@ai_app.command("search")
def search(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    workspace: Annotated[str, typer.Option("--workspace", "-w", help="The workspace id.")],
    entity_type: Annotated[
        list[str] | None, typer.Option("--type", "-t", help="issue, page, doc, ... (repeatable).")
    ] = None,
    k: Annotated[int, typer.Option("-k", help="How many hits.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per hit.")] = False,
) -> None:
    """Hybrid search (vectors + keywords, fused by rank) in one workspace and the global docs."""
    from shared.cli.main import _settings
    from shared.embeddings.index import IndexUnavailable

    ws = _workspace(workspace, "--workspace")
    if k < 1:
        raise ConfigError("-k must be at least 1")
    settings = _settings()
    indexer = _indexer(settings)
    vector = indexer.encoder.encode([query])[0]
    try:
        hits = indexer.index.search(ws, vector, query, k=k, entity_types=entity_type or None)
    except IndexUnavailable as exc:
        raise _unreachable(exc, settings) from None
    for rank, hit in enumerate(hits, start=1):
        if as_json:
            typer.echo(
                json.dumps(
                    {
                        "rank": rank,
                        "score": round(hit.score, 6),
                        "entity_type": hit.entity_type,
                        "entity_id": hit.entity_id,
                        "project_id": hit.project_id,
                        "chunk_index": hit.chunk_index,
                        "text": hit.text,
                    }
                )
            )
        else:
            snippet = " ".join(hit.text.split())[:100]
            typer.echo(f"{rank:>3}  {hit.score:.4f}  {hit.entity_type:<8} {hit.entity_id}  {snippet}")
    if not hits:
        typer.echo("no hits", err=True)


@ai_app.command("status")
def status(
    workspace: Annotated[
        str | None, typer.Argument(help="A workspace id; all workspaces if left out.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """The newest vectorisation jobs and what indexed_documents holds per model (no model is
    loaded)."""
    from sqlalchemy import func, select

    from shared.cli.errors import require_database
    from shared.cli.main import _settings
    from shared.db.ai_state import IndexedDocument
    from shared.db.engine import get_engine
    from shared.embeddings.backfill import job_rows

    ws = _workspace(workspace) if workspace else None
    settings = _settings()
    require_database(settings)
    engine = get_engine(settings.database_url)
    jobs = job_rows(engine, ws)
    t = IndexedDocument.__table__
    live = t.c.content_hash != ""
    query = select(t.c.model_name, t.c.entity_type, func.count(), func.sum(t.c.chunk_count)).where(live)
    if ws:
        query = query.where(t.c.workspace_id == ws)
    query = query.group_by(t.c.model_name, t.c.entity_type).order_by(t.c.model_name, t.c.entity_type)
    with engine.connect() as conn:
        indexed = [
            {"model": m, "entity_type": e, "documents": int(n), "chunks": int(c or 0)}
            for m, e, n, c in conn.execute(query)
        ]
    if as_json:
        typer.echo(json.dumps({"jobs": [_job_json(j) for j in jobs], "indexed": indexed}, default=str))
        return
    typer.echo("jobs:" if jobs else "jobs: none")
    for job in jobs:
        counts = job["counts"] or {}
        when = job["finished_at"] or job["updated_at"]
        typer.echo(
            f"  {job['id']}  {job['workspace_id']}  {job['status']:<8} {job['model_name']}  "
            f"{counts.get('read', 0)}/{counts.get('total', '?')} read, {counts.get('missing', '?')} missing, "
            f"attempts {job['attempts']}, {when:%Y-%m-%d %H:%M:%S}"
            + (f"  error: {job['error']}" if job["error"] else "")
        )
    typer.echo("indexed:" if indexed else "indexed: nothing")
    for row in indexed:
        typer.echo(
            f"  {row['model']}  {row['entity_type']:<8} {row['documents']} documents, {row['chunks']} chunks"
        )


def _job_json(job: dict[str, Any]) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, uuid.UUID) else v) for k, v in job.items()}


from shared.cli.ai_health import health as _health  # noqa: E402  (after ai_app)
from shared.cli.ai_schedule import register as _register_schedule  # noqa: E402  (after ai_app)

_register_schedule(ai_app)
ai_app.command("health")(_health)
