"""email-digest's extra processes: EMAIL_DIGEST_PROCESSES - 1 of them, each sending a share of the
run's pairs exactly as the run's own process sends its share (cronjobs.email_digest.send_share).

Why processes: composing and sending a digest is Python work under one GIL, and so is reading and
building the next chunk; a second process doubles what a run does per second where the CronJob
has the CPU for it (its request, shared/registry.py).

Nothing about exactly-once changes: every pair is still locked by the session that sends it, and
read again under that lock, so a share is as safe as a second concurrent run. A worker is
spawned (a fresh interpreter: the parent's threads and pooled connections stay its own), gets
the run's settings, time and SMTP configuration, and answers its counts and what stopped it. It
stops at its next chunk when the run is asked to (SIGTERM, as the runtime's own process). One
killed with the run (the pod's end) dies like a run does: what its server took and it had not
marked is presumed sent by the next run.
"""

from __future__ import annotations

import multiprocessing
import signal
from datetime import datetime
from multiprocessing.connection import Connection as Pipe
from typing import TYPE_CHECKING

from shared.cron.runtime import JobContext
from shared.mail.smtp import SmtpConfig
from shared.settings import Settings

if TYPE_CHECKING:
    from cronjobs.email_digest import Pair

_SPAWN = multiprocessing.get_context("spawn")


class WorkerFailed(RuntimeError):
    """A worker's failure that could not cross the pipe as itself."""


class Worker:
    def __init__(self, process: multiprocessing.process.BaseProcess, pipe: Pipe) -> None:
        self.process, self.pipe = process, pipe

    def stop(self) -> None:
        if self.process.is_alive() and self.process.pid is not None:
            self.process.terminate()  # SIGTERM: the worker's stop flag

    def join(self, ctx: JobContext) -> BaseException | None:
        """Wait for the worker; add its counts to `ctx`; what stopped it, if anything did."""
        try:
            counts, failure = self.pipe.recv()
        except EOFError:  # it died without answering
            counts, failure = {}, WorkerFailed(f"email-digest worker exited {self.process.exitcode}")
        finally:
            self.process.join()
            self.pipe.close()
        for action, n in counts.items():
            ctx.count(action, n)
        return failure


def start(ctx: JobContext, config: SmtpConfig, rate_per_s: float, pairs: list[Pair]) -> Worker:
    parent, child = _SPAWN.Pipe(duplex=False)
    args = (child, ctx.settings, ctx.name, ctx.now, config, rate_per_s, pairs)
    process = _SPAWN.Process(target=_main, args=args, name="email-digest-worker", daemon=True)
    process.start()
    child.close()
    return Worker(process, parent)


def _main(
    pipe: Pipe,
    settings: Settings,
    name: str,
    now: datetime,
    config: SmtpConfig,
    rate_per_s: float,
    pairs: list[Pair],
) -> None:
    from cronjobs.email_digest import send_share
    from shared import logs
    from shared.db.engine import get_engine
    from shared.settings import secret_values

    logs.configure(settings.log_level, settings.log_format, secret_values(settings))
    engine = get_engine(settings.database_url)
    ctx = JobContext(name=name, settings=settings, engine=engine, dry_run=False, now=now)
    signal.signal(signal.SIGTERM, lambda *_: ctx.stop.set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C reaches the run, which stops us
    failure: BaseException | None = None
    try:
        send_share(ctx, config, rate_per_s, pairs)
    except BaseException as exc:
        failure = exc
    finally:
        engine.dispose()
    counts = dict(ctx.counts)
    try:
        pipe.send((counts, failure))
    except Exception:  # an exception that does not pickle
        pipe.send((counts, WorkerFailed(f"{type(failure).__name__}: {failure}")))
    pipe.close()
