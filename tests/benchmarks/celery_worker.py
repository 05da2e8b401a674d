"""What every Plane-style Celery baseline of the benchmarks shares: the app as Plane configures it,
one database connection per worker process, a prefork worker started on a queue of its own, and
the mail baselines' Plane mail path (Django's settings, the SMTP configuration read, Plane's
plain-text rendering, Django's SMTP backend).

A baseline module builds its `app` with `plane_app`, registers its tasks on it, and wraps
`start_worker`/`stop_worker` with its own module path (`celery -A` imports that module in the
worker). Environment read by the worker: `BENCH_DATABASE_URL`, `BENCH_BROKER_URL`,
`BENCH_CELERY_QUEUE`.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import psutil
import psycopg2
from celery import Celery

REPO = Path(__file__).resolve().parents[2]
BROKER_URL = os.environ.get("BENCH_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
logger = logging.getLogger("plane.worker")

# The queue every task of this process goes to: set from the environment in the worker, and by
# `start_worker` in the process that enqueues. A router function reads it at each send.
_queue = [os.environ.get("BENCH_CELERY_QUEUE", "celery")]


def _route(name: str, args: Any, kwargs: Any, options: Any, task: Any = None, **kw: Any) -> dict[str, str]:
    return {"queue": _queue[0]}


def plane_app(name: str) -> Celery:
    """Plane's Celery settings: RabbitMQ, JSON, no result backend, Celery's defaults otherwise
    (prefork, early acks, prefetch multiplier 4)."""
    app = Celery(name, broker=BROKER_URL)
    app.conf.update(
        task_ignore_result=True,
        task_serializer="json",
        result_serializer="json",
        accept_content=["application/json"],
        timezone="UTC",
        task_routes=(_route,),
        broker_connection_retry_on_startup=True,
    )
    return app


_db: Any = None
_db_pid = 0


def connection(application_name: str) -> Any:
    """This process's autocommit psycopg2 connection (a forked pool process opens its own)."""
    global _db, _db_pid
    if _db is None or _db.closed or _db_pid != os.getpid():
        url = os.environ["BENCH_DATABASE_URL"].replace("postgresql+psycopg2://", "postgresql://")
        _db = psycopg2.connect(url, application_name=application_name)
        _db.autocommit = True
        _db_pid = os.getpid()
    return _db


def declare_queue(app: Celery, name: str, purge: bool = False, delete: bool = False) -> None:
    queue = app.amqp.queues[name]  # Celery's own declaration of a missing queue, as the worker's
    with app.connection_for_write() as conn:
        bound = queue(conn.default_channel)
        if delete:
            bound.delete()
            bound.exchange.delete()
            return
        bound.declare()
        if purge:
            bound.purge()


def start_worker(
    app: Celery,
    module: str,
    queue: str,
    database_url: str,
    concurrency: int,
    *,
    env: Mapping[str, str] | None = None,
    ready_timeout: float = 60.0,
) -> subprocess.Popen:
    """Start a prefork worker of `module` on `queue` (purged) and route this process's sends to it.

    Returns once the worker answers a ping. `proc.queue` and `proc.nodename` name it."""
    nodename = f"{queue}@bench"
    _queue[0] = queue
    declare_queue(app, queue, purge=True)
    worker_env = {
        **os.environ,
        "BENCH_DATABASE_URL": database_url,
        "BENCH_BROKER_URL": BROKER_URL,
        "BENCH_CELERY_QUEUE": queue,
        **(env or {}),
    }
    cmd = [sys.executable, "-m", "celery", "-A", module, "--quiet", "worker"]
    cmd += [
        "--pool=prefork",
        f"--concurrency={concurrency}",
        "--loglevel=WARNING",
        "-Q",
        queue,
        "-n",
        nodename,
    ]
    # stdout to stderr: on shutdown the worker writes "worker: Warm shutdown" to its raw fd 1, which
    # would land in front of the benchmark's JSON.
    proc = subprocess.Popen(cmd, cwd=REPO, env=worker_env, stdout=2)
    proc.queue = queue  # type: ignore[attr-defined]
    proc.nodename = nodename  # type: ignore[attr-defined]
    deadline = time.monotonic() + ready_timeout
    while not app.control.ping(destination=[nodename], timeout=0.5):
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_worker(app, proc)
            raise RuntimeError(f"celery worker did not start (exit code {proc.returncode})")
    return proc


def stop_worker(app: Celery, proc: subprocess.Popen, timeout: float = 30.0, *, cold: bool = False) -> None:
    """Warm shutdown (SIGTERM), or cold (SIGQUIT: the pool's processes are terminated, tasks in
    progress are not waited for), kill after `timeout`, then delete the run's queue."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGQUIT if cold else signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    queue = getattr(proc, "queue", None)
    if queue:
        try:
            declare_queue(app, queue, delete=True)
        except Exception as e:
            logger.warning("could not delete queue %s: %s", queue, e)


def worker_pids(proc: subprocess.Popen[bytes]) -> dict[str, int]:
    """Celery's main process and its pool's processes."""
    children = psutil.Process(proc.pid).children()
    return {"main": proc.pid} | {f"pool-{k}": c.pid for k, c in enumerate(children)}


# --- Plane's mail path, as the mail baselines (celery_email, celery_mail_tasks) run it ---


def configure_django(builtin_templates: dict[str, str]) -> None:
    """Django's mail and template settings as Plane's (SMTP backend, DEBUG off: Django's cached
    loader), once per process: Plane's templates from PLANE_TEMPLATES_DIR when it is set, else
    `builtin_templates` (name: Django template source)."""
    import django
    from django.conf import settings

    if settings.configured:
        return
    plane_dir = os.environ.get("PLANE_TEMPLATES_DIR", "")
    if plane_dir:
        options: dict[str, Any] = {}
    else:
        inner = [("django.template.loaders.locmem.Loader", builtin_templates)]
        options = {"loaders": [("django.template.loaders.cached.Loader", inner)]}
    settings.configure(
        EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
        TEMPLATES=[
            {
                "BACKEND": "django.template.backends.django.DjangoTemplates",
                "DIRS": [plane_dir] if plane_dir else [],
                "OPTIONS": options,
            }
        ],
        USE_TZ=True,
        TIME_ZONE="UTC",
        USE_I18N=False,
        INSTALLED_APPS=[],
    )
    django.setup()


CONFIGURATION = "SELECT key, value, is_encrypted FROM instance_configurations WHERE deleted_at IS NULL"
EMAIL_KEYS = [
    ("EMAIL_HOST", None),
    ("EMAIL_HOST_USER", None),
    ("EMAIL_HOST_PASSWORD", None),
    ("EMAIL_PORT", "587"),
    ("EMAIL_USE_TLS", "1"),
    ("EMAIL_USE_SSL", "0"),
    ("EMAIL_FROM", "Team Plane <team@mailer.plane.so>"),
]


def email_configuration(cursor: Any) -> tuple[Any, ...]:
    """Plane's get_email_configuration (get_configuration_value with SKIP_ENV_VAR): every row read
    over `cursor` (a dict cursor, closed after), each key looked up in them, else the environment's
    value. (The benchmarks' rows are not encrypted.)"""
    with cursor as cur:
        cur.execute(CONFIGURATION)
        items = cur.fetchall()
    values = []
    for key, default in EMAIL_KEYS:
        item = next((i for i in items if i["key"] == key), None)
        values.append(item["value"] if item else os.environ.get(key, default))
    return tuple(values)


def generate_plain_text_from_html(html_content: str) -> str:
    from django.utils.html import strip_tags

    html_content = re.sub(r"<style[^>]*>.*?</style>", "", html_content, flags=re.DOTALL | re.IGNORECASE)
    text_content = re.sub(r"\n\s*\n\s*\n+", "\n\n", strip_tags(html_content))
    return "\n\n" + text_content.strip() + "\n\n"


def send_mail(config: tuple[Any, ...], subject: str, text_content: str, html_content: str, to: str) -> None:
    """Django's SMTP backend as Plane's tasks use it: `get_connection` with `config` (as
    `email_configuration` returns it) and `EmailMultiAlternatives.send()`, so a new SMTP
    connection for this one message, closed after."""
    from django.core.mail import EmailMultiAlternatives, get_connection

    host, user, password, port, use_tls, use_ssl, sender = config
    conn = get_connection(
        host=host,
        port=int(port),
        username=user,
        password=password,
        use_tls=use_tls == "1",
        use_ssl=use_ssl == "1",
    )
    msg = EmailMultiAlternatives(
        subject=subject, body=text_content, from_email=sender, to=[to], connection=conn
    )
    msg.attach_alternative(html_content, "text/html")
    msg.send()
