"""Versioned JSON Schemas, one file per event type (`<type>.json`), plus the envelope's."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from jsonschema import Draft202012Validator, FormatChecker

SCHEMA_DIR = Path(__file__).resolve().parent


def event_types() -> list[str]:
    return sorted(p.stem for p in SCHEMA_DIR.glob("plane.*.json"))


@cache
def validator_for(name: str) -> Draft202012Validator:
    path = SCHEMA_DIR / f"{name}.json"
    if not path.is_file():
        raise KeyError(name)
    schema = json.loads(path.read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=FormatChecker())
