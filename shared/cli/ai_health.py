"""`plane-workers ai health`: the embedding consumer's health as JSON (the seed's health_check).

From here (the default): the model is loaded as the consumer loads it, then the checks its /health
runs (shared/consumer_health.py, services/embeddings/health.py): the database and the process's
circuit breaker, the vector index, the model, the device. `--endpoint URL` reads a running
consumer's /health instead (its metrics port), which loads nothing. Exit codes: 0 healthy, 1 a
check failed (the JSON says which), 2 configuration (the model cannot be loaded), 3 the database
or the index (or, with --endpoint, the consumer) unreachable.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Annotated, Any

import typer

from shared.cli.errors import EXIT_FAILED, EXIT_UNREACHABLE, ConfigError, Unreachable

ENDPOINT_TIMEOUT_S = 10.0


def health(
    endpoint: Annotated[
        str,
        typer.Option(help="A running consumer's /health (http://POD:9100/health) instead of checking here."),
    ] = "",
) -> None:
    """Plane AI's health as JSON: database and circuit breaker, vector index, model, device."""
    document = _from_endpoint(endpoint) if endpoint else _from_here()
    typer.echo(json.dumps(document, default=str))
    if document.get("healthy"):
        return
    unreachable = [name for name in ("database", "index") if not (document.get(name) or {}).get("ok", False)]
    raise typer.Exit(EXIT_UNREACHABLE if unreachable else EXIT_FAILED)


def _from_here() -> dict[str, Any]:
    from shared.cli.main import _settings
    from shared.consumer_health import report

    settings = _settings()
    try:
        from services.embeddings.handler import warm_up
        from services.embeddings.health import checks
    except ImportError as exc:  # pragma: no cover - the extra is installed in the image and venv
        raise ConfigError(f"the `embeddings` extra is not installed: {exc}") from None
    from shared.cli.ai import model_errors

    with model_errors(settings):
        warm_up(settings)
    return report(settings, "embeddings", checks)[1]


def _from_endpoint(url: str) -> dict[str, Any]:
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"--endpoint={url!r}: not an http(s) URL")
    try:
        with urllib.request.urlopen(url, timeout=ENDPOINT_TIMEOUT_S) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:  # 503: unhealthy, the body still says why
        body = exc.read()
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise Unreachable(f"--endpoint={url}: no answer: {reason}") from None
    try:
        document = json.loads(body)
    except ValueError:
        raise Unreachable(f"--endpoint={url}: not a /health answer (no JSON)") from None
    if not isinstance(document, dict):
        raise Unreachable(f"--endpoint={url}: not a /health answer")
    return document
