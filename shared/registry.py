"""THE registry: every Kafka consumer and every scheduled job of plane-workers.

Plain data with dotted paths to the code, so listing it or exporting it to Helm imports nothing
heavy. The CLI (`list`, `consume`, `job`, `dev`), the topic set (`topics create`) and the chart's
`workloads.yaml` (`export-helm`) are all derived from these two tuples. Adding a workload is one
handler module plus one entry here, then `plane-workers export-helm`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

# Kubernetes object names get the release name and a suffix prepended/appended; keep room.
DEFAULT_PARTITIONS = 6
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9-]{1,40}[a-z0-9]$")


@dataclass(frozen=True)
class Resources:
    cpu_request: str = "100m"
    memory_request: str = "256Mi"
    memory_limit: str = "512Mi"
    gpu: int = 0

    def as_k8s(self) -> dict[str, dict[str, str | int]]:
        limits: dict[str, str | int] = {"memory": self.memory_limit}
        if self.gpu:
            limits["nvidia.com/gpu"] = self.gpu
        return {
            "requests": {"cpu": self.cpu_request, "memory": self.memory_request},
            "limits": limits,
        }


@dataclass(frozen=True)
class Batching:
    """`handler` takes many events at once (shared.kafka.handler.BatchHandler): up to `max_events`
    or `max_wait_ms` of them per call, all in one transaction that also claims their event ids;
    offsets are committed after it. A failing event is found and retried or dead-lettered alone
    (shared/kafka/batch.py). None takes the BATCH_MAX_EVENTS / BATCH_MAX_WAIT_MS settings."""

    max_events: int | None = None
    max_wait_ms: int | None = None
    # Events with the same message key are applied in offset order even when one of them fails:
    # the failed event's key is held (its later events wait behind it, other keys go on) and it
    # is retried in place on `retry_delays_s`, never through the retry topics, which reorder.
    keep_key_order: bool = False

    def __post_init__(self) -> None:
        if self.max_events is not None and self.max_events < 1:
            raise ValueError(f"batch max_events must be at least 1, not {self.max_events}")
        if self.max_wait_ms is not None and self.max_wait_ms < 0:
            raise ValueError(f"batch max_wait_ms must not be negative, not {self.max_wait_ms}")


@dataclass(frozen=True)
class ConsumerSpec:
    """A Kafka consumer: a handler the shared runtime calls once per valid event (with `batch`,
    once per batch of them), or (`strategy`) a processing strategy of its own for consumers that
    keep many events in flight."""

    name: str
    topic: str  # logical name; physical = KAFKA_TOPIC_PREFIX + topic
    event_types: tuple[str, ...]
    description: str
    handler: str | None = None  # "package.module:function", called once per event
    # "package.module:function" taking shared.kafka.runtime.ConsumerDeps and returning an arroyo
    # ProcessingStrategyFactory; used instead of `handler`. It must still commit an offset only
    # once that event is done (its effects durable, or retried or dead-lettered).
    strategy: str | None = None
    owner: str = "platform"
    partitions: int = DEFAULT_PARTITIONS
    # Delays of the retry tiers; tier i is topic `<topic>.retry.<i>`. Empty: no retry (DLQ only).
    retry_delays_s: tuple[float, ...] = (5.0, 60.0, 600.0)
    # "transaction": the runtime claims the event id and runs the handler in one DB transaction,
    # so a redelivered event changes nothing. "handler": the handler makes itself idempotent.
    idempotency: Literal["transaction", "handler"] = "transaction"
    resources: Resources = field(default_factory=Resources)
    # "package.module:function" returning shared.conformance.ConsumerSamples: what the
    # conformance suite (tests/conformance) seeds, produces and reads back for this consumer.
    samples: str | None = None
    # The Plane (Celery) task this replaces, as the README's "What runs" table shows it (Markdown).
    replaces: str = ""
    # Set: `handler` is a batch handler (see Batching); None: it is called once per event.
    batch: Batching | None = None
    # Logical topics it produces to that no consumer here reads yet (created by `topics create`).
    produces: tuple[str, ...] = ()
    # "package.module:function" taking Settings, run once before the consumer joins its group
    # (e.g. loading a model): it is not ready meanwhile, so the chart's startup probe waits.
    warm_up: str | None = None
    # "package.module:function" taking Settings and returning its own checks for /health on the
    # metrics port, next to the database's every consumer reports (shared/consumer_health.py).
    health: str | None = None
    # False: an optional add-on (Plane AI's embeddings) the chart renders only where the operator
    # sets consumers.<name>.enabled; a default install must not run what it cannot start.
    enabled_by_default: bool = True
    # "package.module:function" taking (Event, reason: str, Settings), called once the event is in
    # the DLQ (a permanent error, or its retries spent), so that what a user watches (an export's
    # status) says it failed instead of waiting for ever. Best effort: the dead letter comes first.
    on_give_up: str | None = None

    def __post_init__(self) -> None:
        if (self.handler is None) == (self.strategy is None):
            raise ValueError(f"consumer {self.name}: set exactly one of handler and strategy")
        if self.batch is not None and (self.handler is None or self.idempotency != "transaction"):
            raise ValueError(
                f"consumer {self.name}: batch takes a handler with idempotency='transaction' "
                "(the batch's transaction is what claims its events)"
            )

    @property
    def group(self) -> str:
        return self.name

    @property
    def dlq_topic(self) -> str:
        return f"{self.topic}.dlq"

    def retry_topic(self, tier: int) -> str:
        return f"{self.topic}.retry.{tier}"

    @property
    def retry_topics(self) -> tuple[str, ...]:
        return tuple(self.retry_topic(i) for i in range(len(self.retry_delays_s)))

    @property
    def topics(self) -> tuple[str, ...]:
        """Every logical topic the consumer reads or writes: main, retry tiers, DLQ."""
        return (self.topic, *self.retry_topics, self.dlq_topic)

    @property
    def args(self) -> list[str]:
        return ["consume", self.name]


# A CronJob needs a schedule; a manual job's CronJob is suspended, so this one never fires.
MANUAL_SCHEDULE = "0 0 1 1 *"


@dataclass(frozen=True)
class JobSpec:
    """A scheduled job: `run(ctx) -> JobResult`, idempotent and safe to start twice."""

    name: str
    entrypoint: str  # "package.module:function"
    schedule: str  # cron, UTC
    description: str
    owner: str = "platform"
    active_deadline_seconds: int = 3600
    starting_deadline_seconds: int = 600
    backoff_limit: int = 1
    resources: Resources = field(default_factory=Resources)
    # Logical topics the job produces to: created by `topics create` like the consumers' own.
    produces: tuple[str, ...] = ()
    # "package.module:function" returning shared.conformance.JobSamples (see tests/conformance).
    samples: str | None = None
    # The Plane (Celery beat) task this replaces, as the README's "What runs" table shows it.
    replaces: str = ""
    # False: an optional add-on (Plane AI's schedule) the chart renders only where the operator
    # sets cronjobs.<name>.enabled; a default install must not run what it does not use.
    enabled_by_default: bool = True
    # True: run by hand only (a one-off back-fill). The chart renders it as a CronJob that is
    # always suspended, a template for `kubectl create job --from=cronjob/NAME`; `dev` runs it
    # only when named. Its `schedule` is then MANUAL_SCHEDULE, which never fires.
    manual: bool = False

    def __post_init__(self) -> None:
        if self.manual and self.schedule != MANUAL_SCHEDULE:
            raise ValueError(f"job {self.name}: a manual job's schedule is MANUAL_SCHEDULE")

    @property
    def args(self) -> list[str]:
        return ["job", self.name]


@dataclass(frozen=True)
class DeploymentSpec:
    """A long-running Deployment that is not a Kafka consumer: it reads another system (the Celery
    bridge reads Plane's AMQP queue) and produces to topics. No consumer group, no retry tiers; the
    topics it produces to are created with the rest. The chart renders it only where
    `deployments.<name>.enabled` (default `enabled`) is set."""

    name: str
    args: tuple[str, ...]  # the `plane-workers` command line that runs it
    description: str
    owner: str = "platform"
    resources: Resources = field(default_factory=Resources)
    # Logical topics it produces to that no consumer here reads (its own DLQ): `topics create` makes them.
    produces: tuple[str, ...] = ()
    # Off unless the operator enables it (a migration step, not a default).
    enabled: bool = False
    replaces: str = ""


# The `emails` consumer's mails (services/emails/catalogue.py builds each): plane.email.<name>.v1.
EMAIL_TYPES = (
    "forgot_password",
    "magic_link",
    "email_update_code",
    "email_updated",
    "user_activation",
    "user_deactivation",
    "workspace_invitation",
    "project_invitation",
    "project_addition",
    "webhook_deactivation",
    "analytics_export",
)

CONSUMERS: tuple[ConsumerSpec, ...] = (
    ConsumerSpec(
        name="issue-description-versions",
        topic="issue-description-versions",
        handler="services.issue_description_versions.handler:handle",
        event_types=("plane.issue_description_version.v1",),
        description="Snapshots issue descriptions (Plane's issue_description_version_task).",
        samples="services.issue_description_versions.samples:cases",
        replaces="`issue_description_version_task`",
    ),
    ConsumerSpec(
        name="issue-activity",
        topic="issue-activity",
        handler="services.issue_activity.handler:handle",
        event_types=("plane.issue_activity.v1",),
        description="Writes issue activities as Plane does, then hands them to notifications and embeddings.",
        batch=Batching(keep_key_order=True),
        produces=("notifications", "embeddings"),
        samples="services.issue_activity.samples:cases",
        replaces="`issue_activity`",
    ),
    ConsumerSpec(
        name="model-activity",
        topic="model-activity",
        handler="services.model_activity.handler:handle",
        event_types=("plane.model_activity.v1",),
        description="Turns a model's create or changed fields into webhook activities (model_activity).",
        samples="services.model_activity.samples:cases",
        replaces="`model_activity`",
    ),
    ConsumerSpec(
        name="webhook-events",
        topic="webhook-events",
        handler="services.webhooks.fanout:handle",
        event_types=("plane.webhook_activity.v1",),
        description="Fans a change out to each subscribed webhook as one delivery (webhook_activity).",
        samples="services.webhooks.samples:fanout",
        replaces="`webhook_activity`",
    ),
    ConsumerSpec(
        name="webhook-deliveries",
        topic="webhook-deliveries",
        strategy="services.webhooks.pipeline:strategy_factory",
        event_types=("plane.webhook_delivery.v1",),
        description="POSTs signed deliveries, many in flight, retried Svix-style (webhook_send_task).",
        # Svix's schedule (services/webhooks/schedule.py): tier i holds the attempt i + 2.
        retry_delays_s=(5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0),
        idempotency="handler",
        resources=Resources(cpu_request="500m", memory_request="384Mi", memory_limit="768Mi"),
        samples="services.webhooks.samples:deliveries",
        replaces="`webhook_send_task`",
    ),
    ConsumerSpec(
        name="emails",
        topic="emails",
        handler="services.emails.handler:handle_batch",
        event_types=tuple(f"plane.email.{name}.v1" for name in EMAIL_TYPES),
        # One transaction and claim statement per batch; a failed mail fails alone (EventFailures).
        # 50 at most: what a kill before the commit may send twice. 20 ms: a sign-in code waits little.
        batch=Batching(max_events=50, max_wait_ms=20),
        description="Plane's transactional mails (sign-in codes, invitations, ...), sent at least once.",
        # 4xx replies: greylisting asks for minutes, a full mailbox for hours. A server that is
        # down holds the partition instead (no retry spent, nothing lost).
        retry_delays_s=(60.0, 300.0, 1800.0, 7200.0),
        samples="services.emails.samples:cases",
        replaces="the transactional mail tasks (`magic_link`, `forgot_password`, invitations, ...)",
    ),
    ConsumerSpec(
        name="notifications",
        topic="notifications",
        handler="services.notifications.handler:handle",
        event_types=("plane.notifications.v1",),
        description="In-app notifications, e-mail logs, subscribers and mentions for new activities.",
        # One query per kind of read for a whole batch. An issue's mentions added and removed must
        # not be reordered by a retry: a failing event holds its issue's later ones.
        batch=Batching(keep_key_order=True),
        samples="services.notifications.samples:cases",
        replaces="`notifications`",
    ),
    ConsumerSpec(
        name="embeddings",
        topic="embeddings",
        handler="services.embeddings.handler:handle",
        event_types=("plane.embed.v1",),
        description="Plane AI live sync: issues, pages and inline documents into the vector index.",
        # A batch is one length-sorted pass through the model: more texts per call, less padding
        # and per-call overhead. Entities are versioned (R25), so retries need no key order.
        batch=Batching(max_events=256, max_wait_ms=100),
        warm_up="services.embeddings.handler:warm_up",
        health="services.embeddings.health:checks",
        # Needs torch, which only the GPU image variant has. The chart's `cpu` profile drops the
        # nvidia.com/gpu limit (torch then runs on CPU) but keeps that image.
        resources=Resources(cpu_request="1", memory_request="1Gi", memory_limit="3Gi", gpu=1),
        # Plane AI is an add-on (the community edition has none): off unless enabled.
        enabled_by_default=False,
        samples="services.embeddings.samples:cases",
        replaces="Plane AI's live sync and `vectorize_workspace` (not public; specified in DESIGN.md)",
    ),
    ConsumerSpec(
        name="ai-plans",
        topic="workspace-plans",
        handler="services.ai_plans.handler:handle",
        event_types=("plane.workspace_plan.v1",),
        description="Plane AI plans from billing: a downgrade purges vectors, an upgrade queues a job.",
        # Purge requests go to the embeddings consumer, which owns the index.
        produces=("embeddings",),
        samples="services.ai_plans.samples:cases",
        # Plane AI is an add-on: off unless enabled, like the embeddings consumer it feeds.
        enabled_by_default=False,
        replaces="(new: the billing input of Plane AI's plan sync)",
    ),
    ConsumerSpec(
        name="exports",
        topic="exports",
        strategy="services.exports.strategy:strategy_factory",
        event_types=("plane.issue_export.v1", "plane.analytics_export.v1"),
        description="Issue exports streamed to one private S3 zip per token; analytics CSVs mailed.",
        # One export at a time per process, on a worker thread while the poll loop keeps polling
        # (R15); idempotent by token (issue exports) and by derived mail id (analytics).
        idempotency="handler",
        # Memory is one page of rows and one 8 MiB upload part; xlsx rows go to a temporary file.
        resources=Resources(cpu_request="250m", memory_request="256Mi", memory_limit="512Mi"),
        samples="services.exports.samples:cases",
        replaces="`issue_export_task`, `analytic_export_task`",
        on_give_up="services.exports.handler:give_up",
    ),
    ConsumerSpec(
        name="assets",
        topic="assets",
        handler="services.assets.handler:handle",
        event_types=("plane.asset_metadata.v1", "plane.asset_copy.v1"),
        description="S3 metadata of uploaded assets; assets and descriptions of duplicated pages copied.",
        # No transaction is held over S3 or the live server: the handler claims the event with its
        # writes, and its copies land on keys derived from the event's entity (a replay adds none).
        idempotency="handler",
        samples="services.assets.samples:cases",
        replaces="`get_asset_object_metadata`, `copy_s3_objects_of_description_and_assets`",
    ),
    ConsumerSpec(
        name="link-crawler",
        topic="links",
        handler="services.link_crawler.handler:handle_batch",
        event_types=("plane.link_crawl.v1",),
        description="Title and favicon of issue links, fetched SSRF-safe within a deadline and size caps.",
        # A batch's links crawled at once (LINK_CRAWLER_CONCURRENCY), each within
        # LINK_CRAWLER_DEADLINE_S, inside the batch's transaction (one deadline with the defaults).
        batch=Batching(max_events=50, max_wait_ms=50),
        samples="services.link_crawler.samples:cases",
        replaces="`crawl_work_item_link_title`",
    ),
    ConsumerSpec(
        name="soft-deletes",
        topic="soft-deletes",
        handler="services.soft_deletes.handler:handle",
        event_types=("plane.soft_delete.v1",),
        description="Soft-delete cascades in short, resumable batches, audit columns kept; embeddings told.",
        # The cascade commits batch by batch, its collected subtree kept between calls in
        # plane_workers.soft_delete_subtrees, and claims the event when done; one call works 15 s
        # at most, then continues the cascade as a new event on its own topic.
        idempotency="handler",
        produces=("embeddings",),
        samples="services.soft_deletes.samples:cases",
        replaces="`soft_delete_related_objects`",
    ),
    ConsumerSpec(
        name="pages",
        topic="pages",
        handler="services.pages.handler:handle_batch",
        event_types=("plane.page_transaction.v1", "plane.page_version.v1"),
        description="Page mentions and images into page_logs; page versions (10-minute window, 20 kept).",
        # A page's events in order even when one fails (log diffs and the version window depend
        # on it); the batch's transaction claims them, so a replay writes nothing twice.
        batch=Batching(keep_key_order=True),
        # Embed upserts for Plane AI's index, read by the optional embeddings consumer.
        produces=("embeddings",),
        samples="services.pages.samples:cases",
        replaces="`page_transaction`, `track_page_version`",
    ),
    ConsumerSpec(
        name="api-logs",
        topic="api-logs",
        handler="services.api_logs.handler:handle_batch",
        event_types=("plane.api_log.v1",),
        description="Public-API request logs into api_activity_logs; the API key kept only as a hash.",
        # One multi-row INSERT per batch; bodies are capped (API_LOG_BODY_MAX_BYTES), so 200 rows
        # stay a few MiB at most.
        batch=Batching(max_events=200, max_wait_ms=200),
        samples="services.api_logs.samples:cases",
        replaces="`process_logs`",
    ),
    ConsumerSpec(
        name="analytics-events",
        topic="analytics-events",
        handler="services.analytics_events.handler:handle_batch",
        event_types=("plane.recent_visit.v1", "plane.track_event.v1"),
        description="Recent visits (20 per user) and PostHog captures, one acked request per batch.",
        # A batch's captures are one PostHog request; a failed one fails its track events alone.
        batch=Batching(max_events=100, max_wait_ms=200),
        # PostHog outages last minutes to hours: the tiers span about 2.5 h before the DLQ.
        retry_delays_s=(30.0, 300.0, 1800.0, 7200.0),
        samples="services.analytics_events.samples:cases",
        replaces="`recent_visited_task`, `track_event`",
    ),
    ConsumerSpec(
        name="workspace-seed",
        topic="workspace",
        handler="services.workspace_seed.handler:handle",
        event_types=("plane.workspace_seed.v1",),
        description="Seeds a new workspace's demo project once (bot user, states, work items, pages).",
        samples="services.workspace_seed.samples:cases",
        replaces="`workspace_seed`",
    ),
    ConsumerSpec(
        name="imports",
        topic="imports",
        handler="services.imports.handler:handle",
        event_types=("plane.issue_import.v1",),
        description="Issues into a project from our JSON/CSV export or GitHub, once per external id.",
        # Batches commit as they go (each skips existing external ids); the event is claimed when
        # done; one call works 15 s at most, then continues as a new event on its own topic.
        idempotency="handler",
        # A spent GitHub rate limit resets within the hour: the tiers span about 1.5 h.
        retry_delays_s=(30.0, 300.0, 1800.0, 3600.0),
        samples="services.imports.samples:cases",
        replaces="(new: Plane CE has no importer; `importer_task` in the catalogue)",
    ),
)

JOBS: tuple[JobSpec, ...] = (
    JobSpec(
        name="archive-close-issues",
        entrypoint="cronjobs.archive_close_issues:run",
        schedule="0 1 * * *",
        description="Auto-archives and auto-closes stale issues per project settings (issue_automation).",
        active_deadline_seconds=2 * 3600,
        produces=("issue-activity",),
        samples="cronjobs.samples:archive_close_issues",
        replaces="`archive_and_close_old_issues`",
    ),
    JobSpec(
        name="delete-expired-exports",
        entrypoint="cronjobs.delete_expired_exports:run",
        schedule="30 1 * * *",
        description="Deletes export files older than EXPORT_RETENTION_DAYS from S3 (delete_old_s3_link).",
        active_deadline_seconds=3600,
        samples="cronjobs.samples:delete_expired_exports",
        replaces="`delete_old_s3_link` (scheduled once, not twice)",
    ),
    JobSpec(
        name="delete-unuploaded-assets",
        entrypoint="cronjobs.delete_unuploaded_assets:run",
        schedule="0 2 * * *",
        description="Soft-deletes assets whose upload never finished (delete_unuploaded_file_asset).",
        active_deadline_seconds=3600,
        samples="cronjobs.samples:delete_unuploaded_assets",
        replaces="`delete_unuploaded_file_asset`",
    ),
    JobSpec(
        name="cleanup-api-logs",
        entrypoint="cronjobs.cleanup_logs:api_logs",
        schedule="30 2 * * *",
        description="Deletes API activity logs older than HARD_DELETE_AFTER_DAYS (delete_api_logs).",
        active_deadline_seconds=3600,
        samples="cronjobs.samples:cleanup_api_logs",
        replaces="`delete_api_logs`",
    ),
    JobSpec(
        name="hard-delete",
        entrypoint="cronjobs.hard_delete:run",
        schedule="0 0 * * *",
        description="Purges rows soft-deleted past retention, with Django's cascades (hard_delete).",
        active_deadline_seconds=4 * 3600,
        samples="cronjobs.samples:hard_delete",
        replaces="`hard_delete`",
    ),
    JobSpec(
        name="cleanup-email-logs",
        entrypoint="cronjobs.cleanup_logs:email_logs",
        schedule="45 2 * * *",
        description="Archives, then deletes, sent e-mail notification logs past retention.",
        active_deadline_seconds=3600,
        samples="cronjobs.samples:cleanup_email_logs",
        replaces="`delete_email_notification_logs`",
    ),
    JobSpec(
        name="cleanup-page-versions",
        entrypoint="cronjobs.cleanup_logs:page_versions",
        schedule="0 3 * * *",
        description="Archives, then deletes, page versions beyond the newest VERSION_HISTORY_KEEP per page.",
        active_deadline_seconds=3600,
        samples="cronjobs.samples:cleanup_page_versions",
        replaces="`delete_page_versions`",
    ),
    JobSpec(
        name="cleanup-description-versions",
        entrypoint="cronjobs.cleanup_logs:description_versions",
        schedule="15 3 * * *",
        description="Archives, then deletes, issue description versions beyond the newest N per issue.",
        active_deadline_seconds=3600,
        samples="cronjobs.samples:cleanup_description_versions",
        replaces="`delete_issue_description_versions`",
    ),
    JobSpec(
        name="cleanup-webhook-logs",
        entrypoint="cronjobs.cleanup_logs:webhook_logs",
        schedule="30 3 * * *",
        description="Archives, then deletes, webhook delivery logs past retention.",
        active_deadline_seconds=3600,
        samples="cronjobs.samples:cleanup_webhook_logs",
        replaces="`delete_webhook_logs`",
    ),
    JobSpec(
        name="instance-traces",
        entrypoint="cronjobs.instance_traces:run",
        schedule="20 */6 * * *",
        description="Plane's instance telemetry over OTLP; off unless enabled and an endpoint is set.",
        active_deadline_seconds=900,
        starting_deadline_seconds=300,
        samples="cronjobs.samples:instance_traces",
        replaces="`instance_traces` (opt-in)",
    ),
    JobSpec(
        name="email-digest",
        entrypoint="cronjobs.email_digest:run",
        schedule="*/5 * * * *",
        description="One issue-updates mail per receiver and issue from unsent e-mail logs, sent once.",
        # Under the interval, so runs never pile up: a run cut short has marked what it sent, and
        # the next takes the rest; one that starts late is skipped and the next takes its logs.
        active_deadline_seconds=270,
        starting_deadline_seconds=240,
        # EMAIL_DIGEST_PROCESSES (2) processes, each CPU-bound while a backlog lasts.
        resources=Resources(cpu_request="1000m", memory_request="384Mi", memory_limit="768Mi"),
        samples="cronjobs.samples:email_digest",
        replaces="`stack_email_notification` + `send_email_notification`",
    ),
    JobSpec(
        name="prune-worker-state",
        entrypoint="cronjobs.prune_worker_state:run",
        schedule="15 4 * * *",
        description="Drops event-id dedupe keys and job-run records past their retention.",
        active_deadline_seconds=1800,
        samples="cronjobs.samples:prune_worker_state",
        replaces="(new: our own dedupe keys and run records)",
    ),
    JobSpec(
        name="ai-reconcile",
        entrypoint="cronjobs.ai_reconcile:run",
        schedule="* * * * *",
        description="Plane AI: embed events for what live sync missed (up to 50), else a re-feed job.",
        # Well under the minute: a run that cannot finish leaves the rest to the next one.
        active_deadline_seconds=45,
        starting_deadline_seconds=30,
        produces=("embeddings",),
        samples="cronjobs.samples:ai_reconcile",
        # Plane AI is an add-on (the community edition has none): off unless enabled.
        enabled_by_default=False,
        replaces="Plane AI's 30 s vector sync poll (event-driven here; this reconciles)",
    ),
    JobSpec(
        name="ai-feed-jobs",
        entrypoint="cronjobs.ai_feed_jobs:run",
        schedule="*/5 * * * *",
        description="Plane AI: starts queued vectorisation jobs (an embed event per issue), completes them.",
        active_deadline_seconds=270,
        starting_deadline_seconds=240,
        produces=("embeddings",),
        samples="cronjobs.samples:ai_feed_jobs",
        enabled_by_default=False,  # Plane AI, like ai-reconcile
        replaces="Plane AI's `vectorize_workspace` dispatch",
    ),
    JobSpec(
        name="ai-workspace-plan-sync",
        entrypoint="cronjobs.ai_plan_sync:run",
        schedule="40 4 * * *",
        description="Plane AI plans: defaults, downgrades purge vectors, new or stale workspaces queued.",
        active_deadline_seconds=3600,
        produces=("embeddings",),
        samples="cronjobs.samples:ai_workspace_plan_sync",
        enabled_by_default=False,  # Plane AI, like ai-reconcile
        replaces="Plane AI's workspace plan sync",
    ),
    JobSpec(
        name="ai-reap-stuck-jobs",
        entrypoint="cronjobs.ai_reap_stuck_jobs:run",
        schedule="50 4 * * *",
        description="Plane AI: vectorisation jobs queued or running for more than AI_STUCK_JOB_DAYS fail.",
        active_deadline_seconds=900,
        samples="cronjobs.samples:ai_reap_stuck_jobs",
        enabled_by_default=False,  # Plane AI, like ai-reconcile
        replaces="Plane AI's stuck vectorisation job cleanup",
    ),
    JobSpec(
        name="ai-docs-sync",
        entrypoint="cronjobs.ai_docs_sync:run",
        schedule="10 5 * * *",
        description="Plane AI: documentation repositories (AI_DOCS_REPOSITORIES) into the index, by changes.",
        active_deadline_seconds=3600,
        produces=("embeddings",),
        samples="cronjobs.samples:ai_docs_sync",
        enabled_by_default=False,  # Plane AI, like ai-reconcile
        replaces="Plane AI's documentation sync",
    ),
    # One-off back-fills, run by hand (`plane-workers job <name>`, or `kubectl create job
    # --from=cronjob/...` of their suspended CronJobs); idempotent, so a second run adds nothing.
    JobSpec(
        name="backfill-issue-versions",
        entrypoint="cronjobs.backfill_versions:run_issue_versions",
        schedule=MANUAL_SCHEDULE,
        manual=True,
        description="One-off: a first issue_versions row for every live issue without one (resumable).",
        active_deadline_seconds=6 * 3600,
        samples="cronjobs.samples.backfill:backfill_issue_versions",
        replaces="`schedule_issue_version` + `sync_issue_version` (manage.py sync_issue_version)",
    ),
    JobSpec(
        name="backfill-description-versions",
        entrypoint="cronjobs.backfill_versions:run_description_versions",
        schedule=MANUAL_SCHEDULE,
        manual=True,
        description="One-off: a first issue_description_versions row for every live issue without one.",
        active_deadline_seconds=6 * 3600,
        samples="cronjobs.samples.backfill:backfill_description_versions",
        replaces="`schedule_issue_description_version` + `sync_issue_description_version`",
    ),
    JobSpec(
        name="migrate-workspace",
        entrypoint="cronjobs.migrate_workspace:run",
        schedule=MANUAL_SCHEDULE,
        manual=True,
        description="One-off: copy a workspace's whole subtree (and S3 objects) into another Plane "
        "database; resumable, idempotent, verified per table.",
        active_deadline_seconds=12 * 3600,
        samples="cronjobs.samples.migrate_workspace:migrate_workspace",
        replaces="`silo_data_migration_task` (multi-tenant migration; not in Plane CE)",
    ),
)


DEPLOYMENTS: tuple[DeploymentSpec, ...] = (
    DeploymentSpec(
        name="celery-bridge",
        args=("celery", "bridge"),
        description="Plane's Celery queue (AMQP) to the consumers' topics; unmapped tasks to a legacy queue.",
        produces=("celery-bridge.dlq",),
        replaces='Plane API\'s `.delay()` messages (incremental migration: README "Celery bridge")',
    ),
)


class UnknownWorkload(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


def consumer(name: str) -> ConsumerSpec:
    for spec in CONSUMERS:
        if spec.name == name:
            return spec
    known = ", ".join(s.name for s in CONSUMERS)
    raise UnknownWorkload(f"no consumer named {name!r} (known: {known})")


def job(name: str) -> JobSpec:
    for spec in JOBS:
        if spec.name == name:
            return spec
    known = ", ".join(s.name for s in JOBS)
    raise UnknownWorkload(f"no job named {name!r} (known: {known})")


def all_topics() -> list[tuple[str, int]]:
    """Every logical topic the consumers need, with its partition count (DLQ and retry included)."""
    topics: dict[str, int] = {}
    for spec in CONSUMERS:
        for topic in spec.topics:
            topics[topic] = max(topics.get(topic, 0), spec.partitions)
    for spec in CONSUMERS:
        for topic in spec.produces:
            topics.setdefault(topic, DEFAULT_PARTITIONS)
    for job_spec in JOBS:
        for topic in job_spec.produces:
            topics.setdefault(topic, DEFAULT_PARTITIONS)
    for deployment in DEPLOYMENTS:
        for topic in deployment.produces:
            topics.setdefault(topic, DEFAULT_PARTITIONS)
    return sorted(topics.items())


def load(dotted: str) -> object:
    """Import `package.module:attribute`."""
    import importlib

    module_name, _, attribute = dotted.partition(":")
    return getattr(importlib.import_module(module_name), attribute)
