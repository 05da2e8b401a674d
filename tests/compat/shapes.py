"""Normalised table shapes, built from a model's Table or from a reflected database, to compare.

Types are compared as the PostgreSQL DDL they compile to (`VARCHAR(255)`, `TIMESTAMP WITH TIME
ZONE`, `VARCHAR(200)[]`...), so `Uuid` and `postgresql.UUID`, or `Double` and `DOUBLE_PRECISION`,
count as the same. SQL snippets (check constraints, index predicates) are compared without
parentheses, case or extra spaces, because PostgreSQL re-renders them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import CheckConstraint, Inspector, Table, UniqueConstraint
from sqlalchemy.dialects import postgresql

DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]


@dataclass(frozen=True, order=True)
class ColumnShape:
    name: str
    type: str
    nullable: bool
    server_default: str | None


@dataclass(frozen=True, order=True)
class ForeignKeyShape:
    columns: tuple[str, ...]
    target_table: str
    target_columns: tuple[str, ...]
    deferrable: bool | None
    initially: str | None
    ondelete: str | None


@dataclass(frozen=True)
class TableShape:
    columns: tuple[ColumnShape, ...]
    primary_key: tuple[str | None, tuple[str, ...]]
    foreign_keys: frozenset[ForeignKeyShape]
    unique_constraints: frozenset[tuple[str | None, tuple[str, ...]]]
    partial_unique_indexes: frozenset[tuple[str | None, tuple[str, ...], str]]
    check_constraints: frozenset[tuple[str | None, str]]

    def only_fks_to(self, tables: set[str]) -> TableShape:
        """The same shape, keeping the foreign keys whose target is one of `tables`."""
        kept = frozenset(fk for fk in self.foreign_keys if fk.target_table in tables)
        return TableShape(
            self.columns,
            self.primary_key,
            kept,
            self.unique_constraints,
            self.partial_unique_indexes,
            self.check_constraints,
        )


def normalise_sql(sql: Any) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[()]", "", str(sql))).strip().lower()


def type_name(sql_type: Any) -> str:
    return str(sql_type.compile(dialect=DIALECT))


def model_shape(table: Table) -> TableShape:
    """The shape a model declares."""
    columns = tuple(
        ColumnShape(
            column.name,
            type_name(column.type),
            bool(column.nullable),
            None if column.server_default is None else str(column.server_default),
        )
        for column in table.columns
    )
    foreign_keys = frozenset(
        ForeignKeyShape(
            columns=tuple(fk.parent.name for fk in constraint.elements),
            target_table=constraint.referred_table.name,
            target_columns=tuple(fk.column.name for fk in constraint.elements),
            deferrable=constraint.deferrable,
            initially=constraint.initially,
            ondelete=constraint.ondelete,
        )
        for constraint in table.foreign_key_constraints
    )
    uniques = frozenset(
        (constraint.name if isinstance(constraint.name, str) else None, tuple(constraint.columns.keys()))
        for constraint in table.constraints
        if isinstance(constraint, UniqueConstraint)
    )
    partial_indexes = frozenset(
        (
            index.name if isinstance(index.name, str) else None,
            tuple(column.name for column in index.columns),
            normalise_sql(index.dialect_options["postgresql"]["where"]),
        )
        for index in table.indexes
        if index.unique and index.dialect_options["postgresql"]["where"] is not None
    )
    checks = frozenset(
        (constraint.name if isinstance(constraint.name, str) else None, normalise_sql(constraint.sqltext))
        for constraint in table.constraints
        if isinstance(constraint, CheckConstraint)
    )
    pk_name = table.primary_key.name
    return TableShape(
        columns=columns,
        primary_key=(
            pk_name if isinstance(pk_name, str) else None,
            tuple(column.name for column in table.primary_key.columns),
        ),
        foreign_keys=foreign_keys,
        unique_constraints=uniques,
        partial_unique_indexes=partial_indexes,
        check_constraints=checks,
    )


def reflected_shape(inspector: Inspector, table: str) -> TableShape:
    """The shape a database has, in the terms of `model_shape`."""
    columns = tuple(
        ColumnShape(
            column["name"],
            type_name(column["type"]),
            bool(column["nullable"]),
            column["default"],
        )
        for column in inspector.get_columns(table)
    )
    pk = inspector.get_pk_constraint(table)
    foreign_keys = frozenset(
        ForeignKeyShape(
            columns=tuple(fk["constrained_columns"]),
            target_table=fk["referred_table"],
            target_columns=tuple(fk["referred_columns"]),
            deferrable=fk["options"].get("deferrable"),
            initially=fk["options"].get("initially"),
            ondelete=fk["options"].get("ondelete"),
        )
        for fk in inspector.get_foreign_keys(table)
    )
    uniques = frozenset(
        (constraint["name"], tuple(constraint["column_names"]))
        for constraint in inspector.get_unique_constraints(table)
    )
    partial_indexes = frozenset(
        (
            index["name"],
            tuple(name for name in index["column_names"] if name is not None),
            normalise_sql(index.get("dialect_options", {})["postgresql_where"]),
        )
        for index in inspector.get_indexes(table)
        if index["unique"] and "postgresql_where" in index.get("dialect_options", {})
    )
    checks = frozenset(
        (constraint["name"], normalise_sql(constraint["sqltext"]))
        for constraint in inspector.get_check_constraints(table)
    )
    return TableShape(
        columns=columns,
        primary_key=(pk["name"], tuple(pk["constrained_columns"])),
        foreign_keys=foreign_keys,
        unique_constraints=uniques,
        partial_unique_indexes=partial_indexes,
        check_constraints=checks,
    )
