"""Fetch a link's title and favicon the way Plane's crawl_work_item_link_title does, but bounded.

Plane's shape: `{"title", "favicon", "url", "favicon_url"}`, the favicon a data URL, Lucide's link
icon when none could be had. Plane reads every body whole, with a 1 s timeout per socket read
(a drip never ends) and no size cap. Here every request goes through the safe client (each
redirect hop vetted, at most 5 of them), page and favicon share one total deadline, the page is
read up to LINK_CRAWLER_MAX_HTML_BYTES (the title is near the top: a longer page is parsed from
its prefix), a favicon over LINK_CRAWLER_MAX_FAVICON_BYTES is refused, nothing is decompressed,
and content types are checked: a page that is not HTML has no title, a favicon that is not an
image is the default one. Unlike Plane, an error status (a 404 favicon) is not stored as an icon.
"""

from __future__ import annotations

import base64
import logging
import re
import time
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

from selectolax.lexbor import LexborHTMLParser

from shared.http import HttpError, SafeHttpClient, SafeResponse
from shared.settings import Settings

log = logging.getLogger(__name__)

MAX_REDIRECTS = 5  # Plane's MAX_REDIRECTS
# Plane's DEFAULT_FAVICON: Lucide's "link" icon.
DEFAULT_FAVICON = (
    "data:image/svg+xml;base64,PHN2ZyB4bWxucz0iaHR0cDovL3d3dy53My5vcmcvMjAwMC9zdmciIHdpZHRoPSIyNCIg"
    "aGVpZ2h0PSIyNCIgdmlld0JveD0iMCAwIDI0IDI0IiBmaWxsPSJub25lIiBzdHJva2U9ImN1cnJlbnRDb2xvciIgc3Ryb2tl"
    "LXdpZHRoPSIyIiBzdHJva2UtbGluZWNhcD0icm91bmQiIHN0cm9rZS1saW5lam9pbj0icm91bmQiIGNsYXNzPSJsdWNpZGUg"
    "bHVjaWRlLWxpbmstaWNvbiBsdWNpZGUtbGluayI+PHBhdGggZD0iTTEwIDEzYTUgNSAwIDAgMCA3LjU0LjU0bDMtM2E1IDUg"
    "MCAwIDAtNy4wNy03LjA3bC0xLjcyIDEuNzEiLz48cGF0aCBkPSJNMTQgMTFhNSA1IDAgMCAwLTcuNTQtLjU0bC0zIDNhNSA1"
    "IDAgMCAwIDcuMDcgNy4wN2wxLjcxLTEuNzEiLz48L3N2Zz4="
)
# Plane sends a desktop Chrome's User-Agent; some sites answer bots differently.
USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/91.0.4472.124 Safari/537.36"
)
# Plane's favicon selectors, in its order of preference.
ICON_RELS = ("icon", "shortcut icon", "apple-touch-icon", "apple-touch-icon-precomposed")
ACCEPT = "text/html,application/xhtml+xml,image/*;q=0.9,*/*;q=0.8"
HTML_TYPES = ("text/html", "application/xhtml+xml")
MAX_TITLE_CHARS = 1000  # a title is a line; a hostile one must not fill the row
_MEDIA_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*")
_MIN_REQUEST_S = 0.05  # less left than this: not worth a connection


@dataclass(frozen=True)
class Limits:
    deadline_s: float = 5.0
    max_html_bytes: int = 1024 * 1024
    max_favicon_bytes: int = 100 * 1024

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            settings.link_crawler_deadline_s,
            settings.link_crawler_max_html_bytes,
            settings.link_crawler_max_favicon_bytes,
        )


def crawl(client: SafeHttpClient, url: str, limits: Limits) -> dict[str, str | None]:
    """Plane's metadata for `url`; never raises an HTTP failure (they give Plane's fallbacks)."""
    ends_at = time.monotonic() + limits.deadline_s
    title: str | None = None
    href: str | None = None
    final_url = url
    try:
        response = _get(client, url, ends_at, limits.max_html_bytes)
        final_url = response.url
        # Only the two strings outlive this block: the body and its parse tree (several times the
        # page's size) are freed before the favicon request, so each crawl thread holds one page.
        page = _html(response)
        del response
        if page is not None:
            title, href = _title(page), _icon_href(page)
        del page
    except HttpError as exc:
        log.warning("link page not fetched: %s: %s", type(exc).__name__, exc)
    favicon_url, favicon = _favicon(client, href, final_url, ends_at, limits.max_favicon_bytes)
    return {"title": title, "favicon": favicon, "url": url, "favicon_url": favicon_url}


def _get(client: SafeHttpClient, url: str, ends_at: float, cap: int) -> SafeResponse:
    left = ends_at - time.monotonic()
    if left < _MIN_REQUEST_S:
        raise _OutOfTime(f"crawl deadline spent before {url}")
    return client.request(
        "GET",
        url,
        headers={
            "User-Agent": USER_AGENT,
            "Accept": "text/html,application/xhtml+xml,image/*;q=0.9,*/*;q=0.8",
        },
        deadline_s=left,
        max_response_bytes=cap,
        follow_redirects=MAX_REDIRECTS,
    )


class _OutOfTime(HttpError):
    """What is left of the crawl's deadline cannot hold another request."""


def _encoded(response: SafeResponse) -> bool:
    """A body in a content coding we asked not to get (gzip...): never decompressed, so unusable."""
    coding = response.headers.get("content-encoding", "").strip().lower()
    return coding not in ("", "identity")


def _media_type(response: SafeResponse) -> str:
    return response.headers.get("content-type", "").split(";")[0].strip().lower()


def _html(response: SafeResponse) -> LexborHTMLParser | None:
    """The parsed page, or None for what is not an HTML text (binary, NUL bytes, compressed)."""
    body = response.body
    kind = _media_type(response)
    if _encoded(response) or b"\x00" in body:
        return None
    if kind not in HTML_TYPES and not (kind == "" and body.lstrip()[:1] == b"<"):
        return None
    return LexborHTMLParser(body.decode(_charset(response), errors="replace"))


def _charset(response: SafeResponse) -> str:
    for param in response.headers.get("content-type", "").split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip("\"'")
            try:
                "".encode(charset)
            except LookupError:
                break
            return charset
    return "utf-8"


def _title(page: LexborHTMLParser) -> str | None:
    node = page.css_first("title")
    if node is None:
        return None
    return (node.text() or "").strip()[:MAX_TITLE_CHARS]


def _icon_href(page: LexborHTMLParser) -> str | None:
    found: dict[str, str] = {}
    for node in page.css("link[rel][href]"):
        rel = " ".join((node.attributes.get("rel") or "").lower().split())
        href = (node.attributes.get("href") or "").strip()
        if rel in ICON_RELS and href and rel not in found:
            found[rel] = href
    return next((found[rel] for rel in ICON_RELS if rel in found), None)


def _favicon(
    client: SafeHttpClient, href: str | None, base_url: str, ends_at: float, cap: int
) -> tuple[str | None, str]:
    """(favicon_url, data URL): the page's icon link, else /favicon.ico; Plane's default on failure."""
    if href is not None:
        icon_url = urljoin(base_url, href)
    else:
        parts = urlsplit(base_url)
        icon_url = f"{parts.scheme}://{parts.netloc}/favicon.ico"
    try:
        response = _get(client, icon_url, ends_at, cap)
    except HttpError as exc:
        log.warning("favicon not fetched: %s: %s", type(exc).__name__, exc)
        return None, DEFAULT_FAVICON
    kind = _media_type(response) or "image/x-icon"  # Plane's assumption without a header
    usable = response.ok and not response.truncated and response.body and not _encoded(response)
    if not usable or not kind.startswith("image/") or not _MEDIA_TYPE.fullmatch(kind):
        log.warning(
            "favicon refused: status %s, %s, %d bytes%s",
            response.status,
            kind,
            len(response.body),
            " (over the cap)" if response.truncated else "",
        )
        return None, DEFAULT_FAVICON
    return icon_url, f"data:{kind};base64,{base64.b64encode(response.body).decode('ascii')}"
