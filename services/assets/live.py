"""Plane's live server's convert-document: a description's HTML to its JSON and Yjs binary.

Plane posts with no timeout and stores whatever a 200 carries. Here the request goes through the
safe client with LIVE_TIMEOUT_S as its total deadline; only the configured live host may be
internal (it is the operator's, not a user's URL). Anything but a 200 with both fields, the
binary valid base64, is a failure: the caller then leaves the description's JSON and binary as
they were.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

from shared.http import Allowlist, HttpError, SafeHttpClient
from shared.settings import Settings

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024 * 1024  # a long page's HTML, JSON and binary


@dataclass(frozen=True)
class Converted:
    description_json: Any
    description_binary: bytes


def convert_url(settings: Settings) -> str | None:
    """Plane's `normalize_url_path(f"{LIVE_URL}/convert-document/")`; None without LIVE_BASE_URL."""
    if not settings.live_base_url:
        return None
    live_url = urljoin(settings.live_base_url, settings.live_base_path)
    parts = urlsplit(f"{live_url}/convert-document/")
    return urlunsplit(parts._replace(path=re.sub("/{2,}", "/", parts.path)))


@cache
def _client(settings: Settings, host: str) -> SafeHttpClient:
    return SafeHttpClient(
        Allowlist.parse(hosts=host),
        default_deadline_s=settings.live_timeout_s,
        connect_timeout_s=settings.live_timeout_s,
        max_request_bytes=MAX_BODY_BYTES,
        default_max_response_bytes=MAX_BODY_BYTES,
    )


def convert(settings: Settings, entity_name: str, description_html: str) -> Converted | None:
    url = convert_url(settings)
    if url is None:
        return None
    body = json.dumps(
        {"description_html": description_html, "variant": "rich" if entity_name == "PAGE" else "document"}
    ).encode()
    try:
        client = _client(settings, urlsplit(url).hostname or "")
        response = client.request(
            "POST",
            url,
            headers={"Content-Type": "application/json"},
            body=body,
            deadline_s=settings.live_timeout_s,
        )
    except (HttpError, ValueError) as exc:
        log.warning("convert-document failed: %s: %s", type(exc).__name__, exc)
        return None
    if response.status != 200 or response.truncated:
        log.warning(
            "convert-document answered %s%s", response.status, " (too long)" if response.truncated else ""
        )
        return None
    try:
        data = json.loads(response.body)
        return Converted(
            data["description_json"], base64.b64decode(data["description_binary"], validate=True)
        )
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        log.warning("convert-document answered 200 without a usable description: %s", exc)
        return None
