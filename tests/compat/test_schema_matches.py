"""Every Plane model matches Plane's real schema, and create_all reproduces it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, Inspector, Table, inspect

from shared.db.plane import PLANE_MODELS, PlaneModel

from .shapes import TableShape, model_shape, reflected_shape

MODELLED_TABLES = {model.__tablename__ for model in PLANE_MODELS}
EXPECTED_TABLES = {
    "workspaces", "users", "projects", "states", "issues", "issue_description_versions",
    "api_activity_logs", "webhooks", "webhook_logs", "workspace_members", "project_members",
    "issue_activities", "issue_comments", "labels", "issue_labels", "issue_assignees", "cycles",
    "cycle_issues", "modules", "module_issues", "exporters", "file_assets",
    "email_notification_logs", "page_versions", "page_logs", "pages", "instances", "notifications",
    "issue_subscribers", "issue_mentions", "user_notification_preferences",
}  # fmt: skip

by_table = pytest.mark.parametrize("model", PLANE_MODELS, ids=lambda model: model.__tablename__)


@pytest.fixture(scope="session")
def plane_inspector(plane_engine: Engine) -> Inspector:
    return inspect(plane_engine)


@pytest.fixture(scope="session")
def create_all_inspector(create_all_engine: Engine) -> Iterator[Inspector]:
    yield inspect(create_all_engine)


def table_of(model: type[PlaneModel]) -> Table:
    return PlaneModel.metadata.tables[model.__tablename__]


def assert_same_shape(actual: TableShape, expected: TableShape) -> None:
    """Compare part by part, so a failure names the part (and pytest diffs just that)."""
    assert [c.name for c in actual.columns] == [c.name for c in expected.columns], "column names"
    assert actual.columns == expected.columns, "column types / nullability / server defaults"
    assert actual.primary_key == expected.primary_key, "primary key"
    assert actual.foreign_keys == expected.foreign_keys, "foreign keys"
    assert actual.unique_constraints == expected.unique_constraints, "unique constraints"
    assert actual.partial_unique_indexes == expected.partial_unique_indexes, "partial unique indexes"
    assert actual.check_constraints == expected.check_constraints, "check constraints"


def test_models_are_the_agreed_tables() -> None:
    assert len(PLANE_MODELS) == len(MODELLED_TABLES), "one model per table"
    assert MODELLED_TABLES == EXPECTED_TABLES


@by_table
def test_model_declares_no_defaults(model: type[PlaneModel]) -> None:
    """Plane has no DB defaults, and the models add no Python ones (`PlaneModel.new` does)."""
    for column in table_of(model).columns:
        assert column.default is None, column.name
        assert column.server_default is None, column.name
        assert column.onupdate is None, column.name


@by_table
def test_model_matches_plane_schema(model: type[PlaneModel], plane_inspector: Inspector) -> None:
    table = model.__tablename__
    reflected = reflected_shape(plane_inspector, table)
    # FKs to tables that are not modelled are plain uuid columns in the model, by design.
    assert_same_shape(model_shape(table_of(model)), reflected.only_fks_to(MODELLED_TABLES))

    named = {fk.name for fk in table_of(model).foreign_key_constraints if fk.name}
    assert named <= {fk["name"] for fk in plane_inspector.get_foreign_keys(table)}


@by_table
def test_create_all_reproduces_plane_schema(
    model: type[PlaneModel], plane_inspector: Inspector, create_all_inspector: Inspector
) -> None:
    table = model.__tablename__
    from_dump = reflected_shape(plane_inspector, table).only_fks_to(MODELLED_TABLES)
    assert_same_shape(reflected_shape(create_all_inspector, table), from_dump)
