"""Versioned JSON Schemas, one file per event type (`<type>.json`), plus the envelope's.

Two validators per schema: `fast_validator_for` (fastjsonschema, compiled to Python, about 10x
faster: every consumed event goes through it) says whether an instance is valid, and
`validator_for` (jsonschema) explains why one is not. Both check formats with jsonschema's own
FormatChecker, so they agree on what `uuid` or `date-time` means.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import fastjsonschema
from jsonschema import Draft202012Validator, FormatChecker

SCHEMA_DIR = Path(__file__).resolve().parent


def event_types() -> list[str]:
    return sorted(p.stem for p in SCHEMA_DIR.glob("plane.*.json"))


_FORMATS = FormatChecker()


@cache
def _schema(name: str) -> dict[str, Any]:
    path = SCHEMA_DIR / f"{name}.json"
    if not path.is_file():
        raise KeyError(name)
    schema = json.loads(path.read_text())
    Draft202012Validator.check_schema(schema)
    return schema


@cache
def validator_for(name: str) -> Draft202012Validator:
    return Draft202012Validator(_schema(name), format_checker=_FORMATS)


@cache
def fast_validator_for(name: str) -> Callable[[Any], Any]:
    """Raises fastjsonschema.JsonSchemaException on an invalid instance."""
    formats = {fmt: (lambda value, fmt=fmt: _FORMATS.conforms(value, fmt)) for fmt in _FORMATS.checkers}
    # use_default=False: validating must never fill in the schema's defaults (it mutates the data).
    return fastjsonschema.compile(_schema(name), formats=formats, use_default=False)
