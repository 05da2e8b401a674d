"""Plane's SMTP configuration: its `instance_configurations` rows first, the EMAIL_* settings after.

Plane (`license/utils/instance_value.py: get_email_configuration`) reads the seven EMAIL_* keys
from that table when SKIP_ENV_VAR is "1" (its default): a live row's value wins, decrypted when
`is_encrypted`; a key without a row takes the environment's value or default. With SKIP_ENV_VAR
"0" only the environment counts. Its mail tasks then parse the strings: `int(EMAIL_PORT)`,
`EMAIL_USE_TLS == "1"`, `EMAIL_USE_SSL == "1"`.

Decryption matches `license/utils/encryption.py`: Fernet, keyed by the url-safe base64 of
PBKDF2-HMAC-SHA256(SECRET_KEY, b"salt", 100000 rounds). Like Plane, a value that cannot be
decrypted becomes ""; unlike Plane, which says nothing useful, one error line names the key and
why. Neither the value nor any key material is ever logged.

The admin changes these rows at run time, so `SmtpConfigSource` re-reads them at most once per
TTL instead of once per process.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import Connection, Engine, text
from sqlalchemy import exc as sa_exc

from shared.db import errors as db_errors
from shared.mail.smtp import SmtpConfig
from shared.settings import Settings

log = logging.getLogger(__name__)

EMAIL_KEYS = (
    "EMAIL_HOST",
    "EMAIL_HOST_USER",
    "EMAIL_HOST_PASSWORD",
    "EMAIL_PORT",
    "EMAIL_USE_TLS",
    "EMAIL_USE_SSL",
    "EMAIL_FROM",
)
# Plane's seeding writes EMAIL_FROM = "" when its environment had none, and Django's EmailMessage
# then sends `from_email or settings.DEFAULT_FROM_EMAIL`: Django's default, as Plane sets none.
DJANGO_DEFAULT_FROM_EMAIL = "webmaster@localhost"
PBKDF2_ROUNDS = 100_000
PBKDF2_SALT = b"salt"
# The read is one indexed lookup; a database this slow is better reported than waited for.
READ_TIMEOUT_MS = 5000

# `to_regclass` follows search_path as the unqualified SELECT below does, and tells a database that
# is not Plane's (the embedded demo) without an error that would abort the caller's transaction.
_HAS_TABLE = text("SELECT to_regclass('instance_configurations') IS NOT NULL")
# Plane's model manager hides soft-deleted rows; `key` is unique, so one row per key at most.
_ROWS = text(
    "SELECT key, value, is_encrypted FROM instance_configurations"
    " WHERE key = ANY(:keys) AND deleted_at IS NULL"
)


def derive_key(secret_key: str) -> bytes:
    """The Fernet key Plane derives from its SECRET_KEY."""
    digest = hashlib.pbkdf2_hmac("sha256", secret_key.encode(), PBKDF2_SALT, PBKDF2_ROUNDS)
    return base64.urlsafe_b64encode(digest)


def encrypt_value(secret_key: str, plaintext: str) -> str:
    """What Plane's `encrypt_data` stores for `plaintext` ("" stays ""), for rows made by hand."""
    if not plaintext:
        return ""
    if not secret_key:
        # Plane's SECRET_KEY is never empty (it makes a random one), so nothing could read this.
        raise ValueError("SECRET_KEY is empty: Plane could not decrypt the value")
    return Fernet(derive_key(secret_key)).encrypt(plaintext.encode()).decode()


def decrypt_value(secret_key: str, token: str | None, key: str) -> str:
    """Plane's `decrypt_data`: "" for an empty value or one that does not decrypt (logged once)."""
    if not token:
        return ""
    if not secret_key:
        reason = "SECRET_KEY is empty"
    else:
        try:
            return Fernet(derive_key(secret_key)).decrypt(token.encode()).decode()
        except InvalidToken:
            reason = "invalid token (encrypted with another key, or not Fernet)"
        except Exception as exc:  # Plane swallows every error here; so do we, with its class only
            reason = type(exc).__name__  # never str(exc): it may quote bytes of the value
    log.error(
        "%s in instance_configurations cannot be decrypted with this SECRET_KEY (is it Plane's?): "
        '%s; using "" as Plane does',
        key,
        reason,
    )
    return ""


def read_rows(settings: Settings, conn: Connection) -> dict[str, str | None] | None:
    """Plane's values of the EMAIL_* keys that have a live row (decrypted); None without the table."""
    if not conn.execute(_HAS_TABLE).scalar():
        log.debug("no instance_configurations table here (not Plane's database): EMAIL_* settings only")
        return None
    values: dict[str, str | None] = {}
    for key, value, is_encrypted in conn.execute(_ROWS, {"keys": list(EMAIL_KEYS)}):
        values[key] = decrypt_value(settings.secret_key, value, key) if is_encrypted else value
    return values


def smtp_config(settings: Settings, conn: Connection) -> SmtpConfig:
    """The SMTP configuration Plane's mail tasks would use now, read on `conn`."""
    return _config(settings, read_rows(settings, conn) if settings.skip_env_var else None)


def _config(settings: Settings, rows: dict[str, str | None] | None) -> SmtpConfig:
    config = SmtpConfig.from_settings(settings)
    if rows:
        config = _apply_rows(config, rows)
    if not config.from_address:
        config = replace(config, from_address=DJANGO_DEFAULT_FROM_EMAIL)
    return config


def _apply_rows(base: SmtpConfig, rows: dict[str, str | None]) -> SmtpConfig:
    changes: dict[str, object] = {}
    # A NULL value reaches Django as None, which means "" for these three.
    for key, field_name in (
        ("EMAIL_HOST", "host"),
        ("EMAIL_HOST_USER", "user"),
        ("EMAIL_HOST_PASSWORD", "password"),
        ("EMAIL_FROM", "from_address"),
    ):
        if key in rows:
            changes[field_name] = rows[key] or ""
    # Plane compares with "1" exactly: "true", "yes" or NULL is off.
    for key, field_name in (("EMAIL_USE_TLS", "use_tls"), ("EMAIL_USE_SSL", "use_ssl")):
        if key in rows:
            changes[field_name] = rows[key] == "1"
    if "EMAIL_PORT" in rows:
        port = _port(rows["EMAIL_PORT"])
        if port is not None:
            changes["port"] = port
    return replace(base, **changes)  # type: ignore[arg-type]


def _port(value: str | None) -> int | None:
    # int() as Plane does (" 587 " passes). Where it raises, Plane's task fails and sends nothing;
    # we keep the EMAIL_PORT setting instead, so the mail is at worst tried on the wrong port.
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        log.error("EMAIL_PORT in instance_configurations is not an integer; using the EMAIL_PORT setting")
        return None


class SmtpConfigSource:
    """`smtp_config` cached for `ttl_s`, so a change in Plane's admin applies without a restart.

    Each refresh is its own short read-only transaction. If it fails with a configuration cached,
    the cached one stays (a warning; the next try waits another TTL, so an outage costs no
    connection attempt per mail); with nothing cached the error propagates, for the caller to
    treat as a database outage.
    """

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        ttl_s: float = 60.0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.ttl_s = ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._config: SmtpConfig | None = None
        self._read_at = 0.0

    def get(self) -> SmtpConfig:
        with self._lock:
            now = self._clock()
            if self._config is not None and now - self._read_at < self.ttl_s:
                return self._config
            try:
                config = self._read()
            except sa_exc.SQLAlchemyError as exc:
                if self._config is None:
                    raise
                log.warning(
                    "cannot re-read instance_configurations (%s%s); keeping the SMTP configuration "
                    "read %.0f s ago",
                    type(exc).__name__,
                    ", database unavailable" if db_errors.unavailable(exc) else "",
                    now - self._read_at,
                )
                self._read_at = now
                return self._config
            self._config, self._read_at = config, now
            return config

    def _read(self) -> SmtpConfig:
        if not self.settings.skip_env_var:
            return _config(self.settings, None)
        with self.engine.connect() as conn, conn.begin():
            conn.execute(text("SET TRANSACTION READ ONLY"))
            conn.execute(text(f"SET LOCAL statement_timeout = {READ_TIMEOUT_MS}"))
            return smtp_config(self.settings, conn)


__all__ = [
    "DJANGO_DEFAULT_FROM_EMAIL",
    "EMAIL_KEYS",
    "SmtpConfigSource",
    "decrypt_value",
    "derive_key",
    "encrypt_value",
    "smtp_config",
]
