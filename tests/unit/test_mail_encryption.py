"""shared.mail.config's Fernet: the key derived as Plane's spec says, checked by hand (hashlib) and
by a second PBKDF2 implementation (cryptography's own), and the failures Plane turns into "" with
one error line that never carries the value or any key material."""

from __future__ import annotations

import base64
import hashlib
import logging

import pytest
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

from shared.mail import config

SECRET_KEY = "plane-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"
PASSWORD = "s3cr3t-smtp-pässword"
LOGGER = "shared.mail.config"


def spec_key(secret_key: str) -> bytes:
    """The spec, written out: urlsafe_b64encode(pbkdf2_hmac("sha256", SECRET_KEY, b"salt", 100000))."""
    return base64.urlsafe_b64encode(hashlib.pbkdf2_hmac("sha256", secret_key.encode(), b"salt", 100000))


def other_kdf_key(secret_key: str) -> bytes:
    kdf = PBKDF2HMAC(algorithm=hashes.SHA256(), length=32, salt=b"salt", iterations=100000)
    return base64.urlsafe_b64encode(kdf.derive(secret_key.encode()))


def plane_encrypt(secret_key: str, plaintext: str) -> str:
    """What Plane's encrypt_data stores: Fernet(key).encrypt(data.encode()).decode()."""
    return Fernet(spec_key(secret_key)).encrypt(plaintext.encode()).decode()


def secrets_in(records: list[logging.LogRecord], *secrets: str) -> list[str]:
    texts = [r.getMessage() + repr(r.args) + str(r.exc_info) for r in records]
    return [s for s in secrets if any(s in t for t in texts)]


def test_derived_key_matches_the_spec_and_a_second_pbkdf2() -> None:
    derived = config.derive_key(SECRET_KEY)
    assert derived == spec_key(SECRET_KEY) == other_kdf_key(SECRET_KEY)
    assert len(base64.urlsafe_b64decode(derived)) == 32  # Fernet: 16 bytes signing + 16 encryption
    assert config.derive_key("another") != derived


def test_decrypts_a_value_encrypted_the_way_plane_does(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    token = plane_encrypt(SECRET_KEY, PASSWORD)
    assert config.decrypt_value(SECRET_KEY, token, "EMAIL_HOST_PASSWORD") == PASSWORD
    assert caplog.records == []


def test_encrypt_value_is_read_by_the_spec_key() -> None:
    token = config.encrypt_value(SECRET_KEY, PASSWORD)
    assert token != PASSWORD and PASSWORD not in token
    assert Fernet(spec_key(SECRET_KEY)).decrypt(token.encode()).decode() == PASSWORD
    assert config.decrypt_value(SECRET_KEY, token, "EMAIL_HOST_PASSWORD") == PASSWORD
    assert config.encrypt_value(SECRET_KEY, PASSWORD) != token  # Fernet: fresh IV per call


def test_empty_values_stay_empty_without_a_word(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    assert config.encrypt_value(SECRET_KEY, "") == ""
    assert config.decrypt_value(SECRET_KEY, "", "EMAIL_HOST_PASSWORD") == ""
    assert config.decrypt_value(SECRET_KEY, None, "EMAIL_HOST_PASSWORD") == ""
    assert caplog.records == []


def test_encrypting_with_an_empty_secret_key_is_refused() -> None:
    with pytest.raises(ValueError, match="SECRET_KEY is empty"):
        config.encrypt_value("", PASSWORD)


def only_error(caplog: pytest.LogCaptureFixture) -> logging.LogRecord:
    records = [r for r in caplog.records if r.name == LOGGER]
    assert len(records) == 1, [r.getMessage() for r in records]
    assert records[0].levelno == logging.ERROR
    assert records[0].exc_info is None  # one line, no traceback
    assert "\n" not in records[0].getMessage()
    return records[0]


def test_another_secret_key_gives_empty_and_one_clear_error(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    token = plane_encrypt("the-key-plane-really-has", PASSWORD)
    assert config.decrypt_value(SECRET_KEY, token, "EMAIL_HOST_PASSWORD") == ""
    message = only_error(caplog).getMessage()
    assert message.startswith(
        "EMAIL_HOST_PASSWORD in instance_configurations cannot be decrypted with this SECRET_KEY "
        "(is it Plane's?)"
    )
    assert "invalid token" in message
    leaked = secrets_in(
        caplog.records,
        PASSWORD,
        token,
        SECRET_KEY,
        "the-key-plane-really-has",
        config.derive_key(SECRET_KEY).decode(),
    )
    assert leaked == []


def test_empty_secret_key_with_an_encrypted_value(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    token = plane_encrypt(SECRET_KEY, PASSWORD)
    assert config.decrypt_value("", token, "EMAIL_HOST_PASSWORD") == ""
    message = only_error(caplog).getMessage()
    assert "EMAIL_HOST_PASSWORD in instance_configurations cannot be decrypted" in message
    assert "SECRET_KEY is empty" in message
    assert secrets_in(caplog.records, PASSWORD, token) == []


@pytest.mark.parametrize("token", ["plain-text-not-encrypted", "gAAAAA-truncated", "ünïcode"])
def test_not_a_token_gives_empty_and_one_error(token: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    assert config.decrypt_value(SECRET_KEY, token, "EMAIL_HOST_USER") == ""
    assert only_error(caplog).getMessage().startswith("EMAIL_HOST_USER in instance_configurations")
    assert secrets_in(caplog.records, token) == []


def test_plaintext_that_is_not_utf8_is_reported_by_class_only(caplog: pytest.LogCaptureFixture) -> None:
    """Plane decodes the plaintext as UTF-8 and returns "" where that fails; the reason we log is the
    error's class, since UnicodeDecodeError's text quotes bytes of the value."""
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    token = Fernet(spec_key(SECRET_KEY)).encrypt(b"pw\xff\xfe-secret").decode()
    assert config.decrypt_value(SECRET_KEY, token, "EMAIL_HOST_PASSWORD") == ""
    message = only_error(caplog).getMessage()
    assert "UnicodeDecodeError" in message
    assert "0xff" not in message and "secret" not in message.replace("SECRET_KEY", "")
