"""EMBEDDING_* live in shared/settings.py with every other variable; EmbeddingSettings is a view."""

from __future__ import annotations

from dataclasses import fields

import pytest

from shared import settings
from shared.embeddings.config import VARIABLES, EmbeddingSettings


def test_every_view_field_is_a_central_variable():
    central = {v.env for v in settings.VARIABLES}
    names = {f.name.upper() for f in fields(EmbeddingSettings)}
    assert names <= central
    assert {v.env for v in VARIABLES} == names
    table = settings.markdown_table()
    assert all(f"`{name}`" in table for name in names)


def test_view_of_process_settings_and_of_env_agree():
    env = {"EMBEDDING_DEVICE": "cpu", "EMBEDDING_MAX_BATCH": "32", "EMBEDDING_MODEL": " /m "}
    central = settings.Settings.from_env(env)
    view = EmbeddingSettings.of(central)
    assert (view.embedding_device, view.embedding_max_batch, view.embedding_model) == ("cpu", 32, "/m")
    assert EmbeddingSettings.from_env(env) == view


def test_the_view_ignores_other_bad_variables_but_validates_its_own():
    # A consumer-only variable with a bad value does not stop `ai search` from loading the model.
    assert EmbeddingSettings.from_env({"WEBHOOK_CONCURRENCY": "many"}).embedding_max_batch == 256
    with pytest.raises(ValueError, match="EMBEDDING_MAX_BATCH"):
        EmbeddingSettings.of(settings.Settings.from_env({"EMBEDDING_MAX_BATCH": "0"}))
