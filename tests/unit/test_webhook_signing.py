"""Webhook signing: our Standard Webhooks headers checked by the real `standardwebhooks` verifier.

The main property signs arbitrary Plane-style payloads (unicode, huge integers, sometimes one 200 kB
string) with both secret styles, verifies them with `standardwebhooks.Webhook`, and checks that any
one-character change to the body, id or timestamp is rejected. Key rotation is exercised with an
injected clock; Plane's legacy X-Plane-Signature is pinned against known HMAC values.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import string
import time
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from standardwebhooks import Webhook, WebhookVerificationError

from services.webhooks.signing import (
    RetiredKey,
    new_secret,
    plane_body,
    plane_signature,
    signature_headers,
    signing_keys,
    standard_secret,
    standard_signature,
    whsec,
)

BIG_STRING_SIZE = 200_000
ID_ALPHABET = string.ascii_letters + string.digits + "_-"

_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**200), max_value=2**200)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
_json_values = st.recursive(
    _scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=10,
)


@st.composite
def payloads(draw: st.DrawFn) -> dict[str, Any]:
    payload = draw(st.dictionaries(st.text(max_size=20), _json_values, max_size=6))
    if draw(st.sampled_from([True] + [False] * 19)):  # ~5 % of examples
        # Building 200 kB by repetition keeps generation fast; drawing it char by char would not.
        chunk = draw(st.text(min_size=1, max_size=8))
        payload["description_html"] = (chunk * (BIG_STRING_SIZE // len(chunk) + 1))[:BIG_STRING_SIZE]
    return payload


plane_secrets = st.uuids().map(lambda u: "plane_wh_" + u.hex)
whsec_secrets = st.binary(min_size=24, max_size=64).map(lambda b: "whsec_" + base64.b64encode(b).decode())
msg_ids = st.text(alphabet=ID_ALPHABET, min_size=1, max_size=40)


def _replace_char(value: str, index: int, alphabet: str) -> str:
    other = next(c for c in alphabet if c != value[index])
    return value[:index] + other + value[index + 1 :]


def _plane_secret() -> str:
    return "plane_wh_" + uuid.uuid4().hex


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    payload=payloads(),
    secret=plane_secrets | whsec_secrets,
    msg_id=msg_ids,
    data=st.data(),
)
def test_signature_verifies_with_standardwebhooks_and_rejects_any_change(
    payload: dict[str, Any], secret: str, msg_id: str, data: st.DataObject
) -> None:
    body = plane_body(payload)
    assert body.isascii()  # so flipping the low bit below still yields a decodable body
    timestamp = int(time.time())
    headers = signature_headers([standard_secret(secret)], msg_id, timestamp, body)
    receiver = Webhook(whsec(secret))

    assert receiver.verify(body, headers) == json.loads(body)

    if body:
        i = data.draw(st.integers(min_value=0, max_value=len(body) - 1), label="body byte")
        flipped = body[:i] + bytes([body[i] ^ 0x01]) + body[i + 1 :]
        with pytest.raises(WebhookVerificationError):
            receiver.verify(flipped, headers)

    i = data.draw(st.integers(min_value=0, max_value=len(msg_id) - 1), label="id char")
    with pytest.raises(WebhookVerificationError):
        receiver.verify(body, {**headers, "webhook-id": _replace_char(msg_id, i, ID_ALPHABET)})

    ts = str(timestamp)
    i = data.draw(st.integers(min_value=0, max_value=len(ts) - 1), label="timestamp digit")
    with pytest.raises(WebhookVerificationError):
        receiver.verify(body, {**headers, "webhook-timestamp": _replace_char(ts, i, string.digits)})


@settings(max_examples=100, deadline=None)
@given(payload=payloads(), secret=plane_secrets | whsec_secrets)
def test_plane_signature_is_hmac_of_exactly_plane_body(payload: dict[str, Any], secret: str) -> None:
    expected = hmac.new(secret.encode("utf-8"), json.dumps(payload).encode("utf-8"), hashlib.sha256)
    assert plane_signature(secret, plane_body(payload)) == expected.hexdigest()


def test_plane_signature_known_values() -> None:
    # RFC 4231 test case 2.
    assert (
        plane_signature("Jefe", b"what do ya want for nothing?")
        == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    )
    # Computed with `openssl dgst -sha256 -hmac` over the literal body below.
    payload = {"event": "issue", "action": "created", "data": {"name": "Café ☕"}}
    body = plane_body(payload)
    assert body == b'{"event": "issue", "action": "created", "data": {"name": "Caf\\u00e9 \\u2615"}}'
    assert (
        plane_signature("plane_wh_0123456789abcdef0123456789abcdef", body)
        == "c2239f9d24cb1903d2e5439b19e948ac44f6e1625f31485306fbcb6a40521a47"
    )


def test_plane_body_uses_json_dumps_defaults() -> None:
    assert (
        plane_body({"z": 1, "a": [1, 2], "s": "é😀"})
        == b'{"z": 1, "a": [1, 2], "s": "\\u00e9\\ud83d\\ude00"}'
    )
    assert plane_body({"n": 10**30, "f": 0.1, "x": None, "t": True}) == (
        b'{"n": 1000000000000000000000000000000, "f": 0.1, "x": null, "t": true}'
    )


def test_standard_signature_known_vector() -> None:
    # The example from the Standard Webhooks / Svix verification docs.
    key = standard_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    signature = standard_signature([key], "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}')
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_plane_secret_key_is_its_utf8_bytes_and_whsec_round_trips() -> None:
    plane = _plane_secret()
    assert standard_secret(plane) == plane.encode()
    assert whsec(plane) == "whsec_" + base64.b64encode(plane.encode()).decode()
    fresh = new_secret()
    assert whsec(fresh) == fresh
    assert standard_secret(whsec(plane)) == standard_secret(plane)


@pytest.mark.parametrize("bad", ["whsec_", "whsec_!!!not base64!!!", ""])
def test_bad_secrets_are_rejected(bad: str) -> None:
    with pytest.raises(ValueError):
        standard_secret(bad)


@pytest.mark.parametrize("msg_id", ["msg.1", ".", ""])
def test_ids_with_dots_are_rejected(msg_id: str) -> None:
    with pytest.raises(ValueError):
        standard_signature([b"key"], msg_id, 1_700_000_000, b"{}")


def test_no_keys_is_rejected() -> None:
    with pytest.raises(ValueError):
        standard_signature([], "msg_1", 1_700_000_000, b"{}")


@pytest.mark.parametrize("secret", [_plane_secret(), new_secret()], ids=["plane", "whsec"])
def test_stale_or_future_timestamps_fail(secret: str) -> None:
    body = plane_body({"event": "issue"})
    receiver = Webhook(whsec(secret))
    keys = [standard_secret(secret)]
    for timestamp in (int(time.time()) - 5 * 60 - 30, int(time.time()) + 5 * 60 + 30):
        headers = signature_headers(keys, "msg_1", timestamp, body)
        with pytest.raises(WebhookVerificationError):
            receiver.verify(body, headers)
    # Control: the same message with a current timestamp passes.
    receiver.verify(body, signature_headers(keys, "msg_1", int(time.time()), body))


def test_rotation_signs_with_both_keys_until_grace_ends() -> None:
    old, new = _plane_secret(), new_secret()
    retired = [RetiredKey(secret=old, retired_at=1000.0)]
    body = plane_body({"event": "project", "data": {"id": str(uuid.uuid4())}})
    timestamp = int(time.time())

    keys = signing_keys(new, retired, now=1001.0, grace_s=2)
    assert keys == [standard_secret(new), standard_secret(old)]
    headers = signature_headers(keys, "msg_rot", timestamp, body)
    assert [part.split(",")[0] for part in headers["webhook-signature"].split(" ")] == ["v1", "v1"]
    Webhook(whsec(old)).verify(body, headers)
    Webhook(whsec(new)).verify(body, headers)

    # Grace ends at retired_at + grace_s (exclusive): from then on only the new key signs.
    assert len(signing_keys(new, retired, now=1001.999, grace_s=2)) == 2
    keys = signing_keys(new, retired, now=1002.0, grace_s=2)
    assert keys == [standard_secret(new)]
    headers = signature_headers(keys, "msg_rot", timestamp, body)
    assert headers["webhook-signature"].count("v1,") == 1
    Webhook(whsec(new)).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(whsec(old)).verify(body, headers)


def test_at_most_ten_old_keys_newest_first() -> None:
    retired = [RetiredKey(secret=_plane_secret(), retired_at=1000.0 + i) for i in range(15)]
    current = new_secret()
    keys = signing_keys(current, retired, now=1010.0, grace_s=3600)
    newest_first = sorted(retired, key=lambda k: k.retired_at, reverse=True)[:10]
    assert keys == [standard_secret(current)] + [standard_secret(k.secret) for k in newest_first]
    assert len(signing_keys(current, retired, now=1010.0, grace_s=3600, max_old=3)) == 4
    assert signing_keys(current, retired, now=1010.0, grace_s=3600, max_old=0) == [standard_secret(current)]


@given(
    retired_at=st.lists(st.floats(min_value=0, max_value=2000, allow_nan=False), max_size=20),
    now=st.floats(min_value=0, max_value=3000, allow_nan=False),
    grace=st.floats(min_value=0, max_value=1000, allow_nan=False),
    max_old=st.integers(min_value=0, max_value=12),
)
def test_signing_keys_model(retired_at: list[float], now: float, grace: float, max_old: int) -> None:
    retired = [RetiredKey(secret=f"plane_wh_{i:032x}", retired_at=t) for i, t in enumerate(retired_at)]
    keys = signing_keys("plane_wh_current", retired, now=now, grace_s=grace, max_old=max_old)
    live = sorted(
        (k for k in retired if k.retired_at + grace > now), key=lambda k: k.retired_at, reverse=True
    )
    assert keys == [b"plane_wh_current"] + [k.secret.encode() for k in live[:max_old]]


def test_new_secret_is_whsec_with_enough_entropy() -> None:
    a, b = new_secret(), new_secret()
    assert a != b
    for secret in (a, b):
        assert secret.startswith("whsec_")
        assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) >= 24
        Webhook(secret)  # the reference library accepts it as is
