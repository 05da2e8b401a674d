"""Fixtures of the integration tests that more than one module uses."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from shared.embedded.smtp import EmbeddedSMTP
from shared.settings import Settings
from tests.integration.webhook_world import World, new_world, settings_for_hooks


@pytest.fixture
def world(engine: Engine) -> World:
    return new_world(engine)


@pytest.fixture
def hook_settings(settings: Settings, smtp: EmbeddedSMTP) -> Settings:
    return settings_for_hooks(settings, smtp)
