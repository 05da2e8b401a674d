"""`storable_response`: whatever a receiver answers, webhook_logs can store it.

PostgreSQL text rejects NUL, and a lone surrogate cannot be encoded as UTF-8; either one in a
response used to fail the writer's insert, and with it every delivery, for good.
"""

from __future__ import annotations

import gzip
import hashlib
import json

import pytest
from urllib3 import HTTPHeaderDict

from services.webhooks.attempt import storable_response

GZ = gzip.compress(b'{"ok": true}', mtime=0)


def _assert_storable(headers: dict[str, str], body: str) -> None:
    for text in (*headers, *headers.values(), body, json.dumps(headers, ensure_ascii=False)):
        assert "\x00" not in text
        text.encode("utf-8")  # strict: a lone surrogate raises


def _marker(body: bytes, *rest: str, first: bool = False) -> str:
    size = f"{'first ' if first else ''}{len(body)} bytes"
    return ", ".join(["[binary body", size, f"sha256 {hashlib.sha256(body).hexdigest()}", *rest]) + "]"


@pytest.mark.parametrize(
    ("headers", "body", "expected"),
    [
        pytest.param({}, b"", "", id="empty"),
        pytest.param({"Content-Encoding": "gzip"}, b"", "", id="empty-with-encoding"),
        pytest.param({"Content-Type": "text/plain"}, b"ok", "ok", id="ascii"),
        pytest.param({}, "héllo ✓ 😀".encode(), "héllo ✓ 😀", id="utf-8"),
        pytest.param({"Content-Encoding": "identity"}, b"ok", "ok", id="identity-encoding"),
        pytest.param({}, b"ok\x00", _marker(b"ok\x00"), id="valid-utf-8-with-nul"),
        pytest.param({}, b"\x00\xff\xfe", _marker(b"\x00\xff\xfe"), id="invalid-utf-8"),
        pytest.param(
            {"Content-Type": "application/json", "Content-Encoding": "gzip"},
            GZ,
            _marker(GZ, "content-type application/json", "content-encoding gzip"),
            id="gzip",
        ),
        # Compressed bytes may happen to be valid UTF-8; any Content-Encoding makes them binary.
        pytest.param({"content-encoding": "BR"}, b"abc", _marker(b"abc", "content-encoding BR"), id="br"),
        pytest.param(
            {"Content-Type": "image/png"}, b"\x89PNG", _marker(b"\x89PNG", "content-type image/png"), id="png"
        ),
        # UTF-8 encoded surrogates (ED A0 80) are not UTF-8: no lone surrogate gets through.
        pytest.param({}, b"a\xed\xa0\x80", _marker(b"a\xed\xa0\x80"), id="encoded-surrogate"),
    ],
)
def test_body(headers: dict[str, str], body: bytes, expected: str) -> None:
    stored_headers, stored_body = storable_response(headers, body)
    assert stored_body == expected
    _assert_storable(stored_headers, stored_body)


def test_a_capped_body_cut_inside_a_character_is_still_text() -> None:
    cut = "ok é".encode()[:-1]
    assert storable_response({}, cut, truncated=True)[1] == "ok "
    assert storable_response({}, cut)[1] == _marker(cut), "a complete body may not end mid-character"
    assert storable_response({}, b"\xff" * 4, truncated=True)[1] == _marker(b"\xff" * 4, first=True)


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        pytest.param("X-Plain", "value", "value", id="plain"),
        pytest.param("X-Nul", "a\x00b", "a\\u0000b", id="nul"),
        pytest.param("X-Bytes", "\xff\xfe", "\\xff\\xfe", id="invalid-utf-8-bytes"),
        # http.client decodes header bytes as latin-1; UTF-8 bytes are read back as what they are.
        pytest.param("X-Utf8", "Ã©", "é", id="utf-8-read-as-latin-1"),
        pytest.param("X-Surrogate", "a\ud800", "a\\ud800", id="lone-surrogate"),
        pytest.param("X-Wide", "✓\x00", "✓\\u0000", id="beyond-latin-1"),
    ],
)
def test_header_values(name: str, value: str, expected: str) -> None:
    stored_headers, stored_body = storable_response({name: value}, b"")
    assert stored_headers == {name: expected}
    _assert_storable(stored_headers, stored_body)


def test_header_names_and_repeated_headers() -> None:
    headers = HTTPHeaderDict()
    headers.add("Set-Cookie", "a=1")
    headers.add("set-cookie", "b=2")
    headers.add("X-\x00\xff", "v")
    stored_headers, stored_body = storable_response(headers, b"ok")
    assert stored_headers == {"Set-Cookie": "a=1, b=2", "X-\\u0000\\xff": "v"}
    _assert_storable(stored_headers, stored_body)
