"""services/api_logs/scrub.py: what of a request may be stored, and in a form PostgreSQL takes."""

from __future__ import annotations

import hashlib

import pytest

from services.api_logs import scrub
from services.api_logs.scrub import REDACTED


def test_token_identifier_is_the_sha256_and_never_the_key() -> None:
    key = "plane_api_" + "f" * 32
    assert scrub.token_identifier(key) == "sha256:" + hashlib.sha256(key.encode()).hexdigest()
    assert key not in scrub.token_identifier(key) and len(scrub.token_identifier(key)) <= 255


@pytest.mark.parametrize(
    "name",
    [
        "X-Api-Key",
        "Authorization",
        "proxy-authorization",
        "Cookie",
        "Set-Cookie",
        "X-CSRFToken",
        "X_Auth_Token",
    ],
)
def test_credential_headers_are_sensitive(name: str) -> None:
    assert scrub.is_sensitive(name)


@pytest.mark.parametrize("name", ["Content-Type", "Accept", "User-Agent", "X-Forwarded-For", "monkey"])
def test_ordinary_headers_are_not(name: str) -> None:
    assert not scrub.is_sensitive(name)


def test_plane_header_repr_redacted_in_the_same_form() -> None:
    raw = str({"Content-Type": "application/json", "X-Api-Key": "k", "Cookie": "c=1"})
    assert scrub.redact_headers(raw) == str(
        {"Content-Type": "application/json", "X-Api-Key": REDACTED, "Cookie": REDACTED}
    )


def test_json_headers_and_header_lines_are_read_and_anything_else_dropped() -> None:
    assert scrub.redact_headers('{"Authorization": "Bearer x"}') == str({"Authorization": REDACTED})
    assert (
        scrub.redact_headers("Accept: */*\nAuthorization: Bearer x")
        == f"Accept: */*\nAuthorization: {REDACTED}"
    )
    for junk in ("{'X-Api-Key': 'unterminated", "not headers at all", "{" * 100_000, "[1, 2]"):
        assert scrub.redact_headers(junk) == scrub.UNPARSEABLE_HEADERS


def test_query_redaction_keeps_other_parameters_verbatim() -> None:
    query = "a=%20x&api_key=K&access_token=T&key=K2&page=2&flag"
    assert (
        scrub.redact_query(query)
        == f"a=%20x&api_key={REDACTED}&access_token={REDACTED}&key={REDACTED}&page=2&flag"
    )
    assert scrub.redact_query("") == "" and scrub.redact_query(None) is None


def test_secret_removed_in_plain_and_url_encoded_forms() -> None:
    secret = "p+l/a=n"
    text = f"{secret} p%2Bl%2Fa%3Dn p%2Bl%2Fa%3Dn"
    assert scrub.without(text, [secret]) == f"{REDACTED} {REDACTED} {REDACTED}"
    assert scrub.without(None, [secret]) is None


def test_pg_text_drops_nul_and_replaces_lone_surrogates() -> None:
    assert scrub.pg_text("a\x00b\ud800c\udfffd") == "ab\ufffdc\ufffdd"
    assert scrub.pg_text("plain é 😀") == "plain é 😀"


def test_cap_cuts_on_a_character_boundary_and_says_so() -> None:
    value, cut = scrub.cap_bytes("😀" * 10, 10)  # 4 bytes each
    assert (
        cut and value.startswith("😀😀\n") and value.endswith("[truncated by plane-workers: 40 bytes in all]")
    )
    assert scrub.cap_bytes("short", 10) == ("short", False)


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("10.1.2.3", "10.1.2.3"),
        (" ::1 ", "::1"),
        ("fe80::1%eth0", "fe80::1"),
        ("unknown", None),
        ("", None),
        (None, None),
    ],
)
def test_inet_takes_what_postgres_takes(raw: str | None, stored: str | None) -> None:
    assert scrub.inet(raw) == stored


def test_for_transport_leaves_no_key_and_the_consumer_keeps_its_hash() -> None:
    """The Celery bridge scrubs process_logs' data before Kafka; the consumer's own scrubbing then
    finds nothing more to change and stores the same identifier."""
    key = "plane_api_" + "ab" * 16
    log_data = {
        "token_identifier": key,
        "path": f"/api/v1/workspaces/acme/issues/?k={key}",
        "query_params": f"api_key={key}&page=2",
        "headers": str({"X-Api-Key": key, "Accept": "*/*"}),
        "body": f'{{"note": "{key}"}}',
        "response_code": 200,
    }
    moved = scrub.for_transport(log_data)
    assert key not in repr(moved)
    assert moved["token_identifier"] == scrub.token_identifier(key)
    assert scrub.token_identifier(str(moved["token_identifier"])) == moved["token_identifier"]
    assert scrub.for_transport(moved) == moved
    assert moved["query_params"] == f"api_key={REDACTED}&page=2" and moved["response_code"] == 200
