"""The `<image-component src="ASSET-ID">` tags of a description: read them, point them elsewhere.

Plane parses with BeautifulSoup and writes `str(soup)` back, which re-serialises the whole
description. Here only the `src` values change: the start tags are located with the standard
library's tokenizer and the rest of the text is kept byte for byte.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from html.parser import HTMLParser

TAG = "image-component"
_SRC = re.compile(r"""(\ssrc\s*=\s*)("[^"]*"|'[^']*'|[^\s"'=<>`]+)""", re.IGNORECASE)


class _Tags(HTMLParser):
    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self._line_starts = [0] + [m.end() for m in re.finditer("\n", text)]
        self.found: list[tuple[int, str, str]] = []  # (offset, start tag as written, src)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        src = dict(attrs).get("src")
        written = self.get_starttag_text()
        if tag == TAG and src and written is not None:
            line, column = self.getpos()
            self.found.append((self._line_starts[line - 1] + column, written, src))


def _tags(html: str) -> list[tuple[int, str, str]]:
    parser = _Tags(html)
    parser.feed(html)
    parser.close()
    return parser.found


def image_sources(html: str | None) -> list[str]:
    """The `src` of every image-component, in document order (Plane's extract_asset_ids)."""
    return [src for _offset, _tag, src in _tags(html or "")]


def replace_sources(html: str, new_src: Mapping[str, str]) -> str:
    """`html` with each image-component's src that `new_src` maps replaced by its value."""
    out: list[str] = []
    done = 0
    for offset, written, src in _tags(html):
        if src not in new_src:
            continue
        value = new_src[src]
        rewritten = _SRC.sub(lambda m, value=value: f'{m.group(1)}"{value}"', written, count=1)
        out += [html[done:offset], rewritten]
        done = offset + len(written)
    return "".join(out) + html[done:]
