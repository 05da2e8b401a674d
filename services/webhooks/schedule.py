"""Retry policy for webhook deliveries, modelled on Svix (pure: no clock, no I/O).

Plane retries a failed delivery a few times with Celery's backoff; we follow Svix's open-source
server instead: `retry_schedule = [5, 300, 1800, 7200, 18000, 36000, 36000]` from
svix-server/config.default.toml (8 attempts over about 27 hours), ±20 % jitter (`JITTER_DELTA`) and
a 60 s floor after a timeout or 429 (`OVERLOAD_PENALTY_SECS`), both from `calculate_retry_delay` in
svix-server/src/worker.rs. A receiver's Retry-After is honoured only within [base, 2 * base] of
the current step, so it can slow us down a little but neither stall nor speed up the schedule.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from datetime import UTC
from email.utils import parsedate_to_datetime

# Delays before attempts 2..8: the first attempt is immediate, so 8 attempts in total.
DEFAULT_SCHEDULE_S: tuple[float, ...] = (5, 300, 1800, 7200, 18000, 36000, 36000)
JITTER = 0.2
OVERLOAD_PENALTY_S = 60

# Cap parsed Retry-After values: huge numbers would overflow float/int conversion for nothing,
# since `next_delay` clamps to 2 * base anyway.
_MAX_RETRY_AFTER_S = 365 * 24 * 3600
_DELAY_SECONDS = re.compile(r"[0-9]+")  # RFC 9110 delay-seconds = 1*DIGIT (ASCII only)


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After header: delay-seconds or an HTTP-date, else None.

    A date in the past means "retry now" (0.0); negative numbers and garbage give None.
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if _DELAY_SECONDS.fullmatch(value):
        if len(value) > len(str(_MAX_RETRY_AFTER_S)):
            return float(_MAX_RETRY_AFTER_S)
        return float(min(int(value), _MAX_RETRY_AFTER_S))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000" zone: RFC 5322 says UTC with unknown local offset
        when = when.replace(tzinfo=UTC)
    return min(max(0.0, when.timestamp() - now), float(_MAX_RETRY_AFTER_S))


def next_delay(
    retry_index: int,
    *,
    schedule: Sequence[float] = DEFAULT_SCHEDULE_S,
    overloaded: bool = False,
    retry_after_s: float | None = None,
    rng: random.Random | None = None,
    time_scale: float = 1.0,
) -> float | None:
    """Seconds before retry number `retry_index` (0 = the second attempt); None once exhausted.

    - Retry-After given: clamped to [base, 2 * base] and used as is (the receiver chose it, so no
      jitter).
    - Otherwise base * uniform(0.8, 1.2), so endpoints that failed together do not retry together.
    - `overloaded` (timeout or 429): at least OVERLOAD_PENALTY_S. Unlike Svix, which jitters after
      applying the floor, the floor comes last so an overloaded receiver always gets its 60 s.
    - `time_scale` shrinks the whole schedule for tests and demos.
    """
    if retry_index < 0:
        raise ValueError(f"retry_index must be >= 0, got {retry_index}")
    if time_scale <= 0:
        raise ValueError(f"time_scale must be > 0, got {time_scale}")
    if retry_index >= len(schedule):
        return None
    base = float(schedule[retry_index])
    if retry_after_s is not None:
        delay = min(max(retry_after_s, base), 2 * base)
    else:
        uniform = rng.uniform if rng is not None else random.uniform
        delay = base * uniform(1 - JITTER, 1 + JITTER)
    if overloaded:
        delay = max(delay, float(OVERLOAD_PENALTY_S))
    return delay * time_scale
