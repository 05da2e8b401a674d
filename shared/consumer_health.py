"""`/health` of a consumer, on its metrics port (shared/metrics.py), and `plane-workers ai health`.

Every consumer reports its database: whether a `SELECT 1` answers within CHECK_TIMEOUT_S and the
process's circuit breaker (shared/db/breaker.py). A consumer whose registry entry names `health`
adds its own checks (the embeddings consumer: index reachable, model loaded, device). JSON; HTTP
200 when every check is ok, else 503. The chart's probes stay on the health files
(shared/health.py): this is for people and dashboards, and it may take a second.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable
from typing import Any

from shared.settings import Settings

CHECK_TIMEOUT_S = 2.0

Checks = Callable[[Settings], dict[str, Any]]

# Checks that hang (a database that accepts but never answers) must not hang /health: they run
# here and are given up on after CHECK_TIMEOUT_S; one stuck thread at most per check in flight.
_pool = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="health")


def database(settings: Settings) -> dict[str, Any]:
    from sqlalchemy import text

    from shared.db import breaker
    from shared.db.engine import get_engine

    engine = get_engine(settings.database_url)

    def ping() -> None:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    report: dict[str, Any] = {"ok": True}
    error = bounded(ping)
    if error is not None:
        report = {"ok": False, "error": error}
    report["circuit_breaker"] = breaker.state(engine)  # after the ping, which may have moved it
    return report


def bounded(check: Callable[[], object]) -> str | None:
    """None when `check` returned within CHECK_TIMEOUT_S, else what went wrong (one line, no secret)."""
    from shared.cli.errors import redacted

    future = _pool.submit(check)
    try:
        future.result(timeout=CHECK_TIMEOUT_S)
    except concurrent.futures.TimeoutError:
        return f"no answer within {CHECK_TIMEOUT_S:.0f} s"
    except Exception as exc:
        orig = getattr(exc, "orig", None)
        return redacted(f"{type(exc).__name__}: {' '.join(str(orig if orig is not None else exc).split())}")
    return None


def report(settings: Settings, name: str, extra: Checks | None = None) -> tuple[bool, dict[str, Any]]:
    """(healthy, the JSON document) of consumer `name`."""
    checks = {"database": database(settings)}
    if extra is not None:
        checks |= extra(settings)
    healthy = all(check.get("ok", False) for check in checks.values() if isinstance(check, dict))
    return healthy, {"healthy": healthy, "consumer": name, **checks}


def for_consumer(name: str, settings: Settings) -> Callable[[], tuple[bool, dict[str, Any]]]:
    """What `consume` serves as /health for consumer `name`."""
    from shared import registry

    spec = registry.consumer(name)
    extra: Checks | None = None
    if spec.health:
        extra = registry.load(spec.health)  # type: ignore[assignment]
    return lambda: report(settings, name, extra)
