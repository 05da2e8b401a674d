"""R3, pure parts: the Svix-like retry schedule, its jitter, overload floor and Retry-After handling."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from services.webhooks.schedule import (
    DEFAULT_SCHEDULE_S,
    JITTER,
    OVERLOAD_PENALTY_S,
    next_delay,
    parse_retry_after,
)

SVIX_SCHEDULE = (5, 300, 1800, 7200, 18000, 36000, 36000)
NOW = 1_700_000_000.0


def test_schedule_is_svix_default_and_gives_eight_attempts() -> None:
    assert DEFAULT_SCHEDULE_S == SVIX_SCHEDULE
    rng = random.Random(1)
    delays = [next_delay(i, rng=rng) for i in range(len(SVIX_SCHEDULE))]
    assert all(d is not None for d in delays)
    # First attempt + 7 retries = 8; the 8th failure exhausts the schedule.
    assert 1 + len(delays) == 8
    assert next_delay(len(SVIX_SCHEDULE), rng=rng) is None
    assert next_delay(100, rng=rng) is None


@pytest.mark.parametrize("seed", range(50))
def test_each_delay_within_jitter_of_schedule(seed: int) -> None:
    rng = random.Random(seed)
    for i, base in enumerate(SVIX_SCHEDULE):
        delay = next_delay(i, rng=rng)
        assert delay is not None
        assert base * (1 - JITTER) <= delay <= base * (1 + JITTER)
    assert JITTER == 0.2


def test_jitter_exists() -> None:
    rng = random.Random(42)
    delays = [next_delay(1, rng=rng) for _ in range(20)]
    assert any(d != 300 for d in delays)
    assert len(set(delays)) > 1


def test_overloaded_floor_on_first_step() -> None:
    assert OVERLOAD_PENALTY_S == 60
    rng = random.Random(7)
    for _ in range(100):
        delay = next_delay(0, overloaded=True, rng=rng)
        assert delay is not None and delay >= 60
    # Steps already longer than the floor keep their jittered delay.
    delay = next_delay(1, overloaded=True, rng=random.Random(7))
    assert delay is not None and 240 <= delay <= 360


def test_retry_after_is_clamped_to_base_and_double_base() -> None:
    assert next_delay(0, retry_after_s=120) == 10
    d = next_delay(0, retry_after_s=120)
    assert d is not None and 5 <= d <= 10
    d = next_delay(1, retry_after_s=120)
    assert d is not None and 300 <= d <= 600
    assert next_delay(1, retry_after_s=450) == 450  # inside the window: used as is, no jitter
    assert next_delay(1, retry_after_s=0) == 300
    assert next_delay(len(SVIX_SCHEDULE), retry_after_s=120) is None


def test_parse_retry_after_seconds_and_garbage() -> None:
    assert parse_retry_after("120", NOW) == 120.0
    assert parse_retry_after(" 0 ", NOW) == 0.0
    assert parse_retry_after("9" * 5000, NOW) is not None  # huge but valid: capped, no overflow
    for garbage in (None, "", "  ", "-5", "1.5", "soon", "Mon", "١٢٠", "120s"):
        assert parse_retry_after(garbage, NOW) is None, garbage


def test_parse_retry_after_http_date() -> None:
    when = datetime.fromtimestamp(NOW + 90, tz=UTC)
    assert parse_retry_after(format_datetime(when, usegmt=True), NOW) == pytest.approx(90)
    assert parse_retry_after("Tue, 14 Nov 2023 22:46:40 GMT", NOW) == pytest.approx(2000)
    # A date already past means "now".
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", NOW) == 0.0
    # Feeds next_delay: 90 s on the 300 s step is raised to the base.
    assert next_delay(1, retry_after_s=parse_retry_after(format_datetime(when, usegmt=True), NOW)) == 300


def test_time_scale_scales_everything() -> None:
    scale = 1 / 10_000
    for i, base in enumerate(SVIX_SCHEDULE):
        delay = next_delay(i, rng=random.Random(i), time_scale=scale)
        assert delay is not None
        assert base * (1 - JITTER) * scale <= delay <= base * (1 + JITTER) * scale
    assert next_delay(0, overloaded=True, rng=random.Random(0), time_scale=scale) == pytest.approx(60 * scale)
    assert next_delay(1, retry_after_s=120, time_scale=scale) == pytest.approx(300 * scale)
    assert next_delay(len(SVIX_SCHEDULE), time_scale=scale) is None


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError):
        next_delay(-1)
    with pytest.raises(ValueError):
        next_delay(0, time_scale=0)
