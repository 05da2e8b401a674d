"""The README's generated tables, kept between marker comments (`plane-workers export-readme`).

Each table sits between `<!-- NAME:start -->` and `<!-- NAME:end -->` in README.md; everything
else in the file is written by hand.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def _section(name: str) -> re.Pattern[str]:
    return re.compile(rf"(<!-- {name}:start -->\n)(.*?)(<!-- {name}:end -->)", re.DOTALL)


def current(text: str, name: str) -> str | None:
    """The table now between NAME's markers in `text` (None: no markers)."""
    match = _section(name).search(text)
    return match[2].rstrip("\n") if match else None


def stale_sections(tables: Mapping[str, str], path: Path = README) -> list[str]:
    text = path.read_text()
    return [name for name, table in tables.items() if current(text, name) != table]


def write(tables: Mapping[str, str], path: Path = README) -> None:
    text = path.read_text()
    for name, table in tables.items():
        pattern = _section(name)
        if not pattern.search(text):
            raise ValueError(f"{path}: no <!-- {name}:start --> / <!-- {name}:end --> markers")
        text = pattern.sub(lambda m, t=table: m[1] + t + "\n" + m[3], text, count=1)
    path.write_text(text)
