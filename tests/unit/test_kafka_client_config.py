"""Kafka TLS and SASL come from settings (KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_*, KAFKA_SSL_*) and
reach librdkafka as its own property names: checked on the config dicts, and by librdkafka itself,
which loads the CA, certificate and (encrypted) key when a client is created."""

from __future__ import annotations

from pathlib import Path

import pytest
import trustme
from confluent_kafka import KafkaException, Producer
from cryptography.hazmat.primitives import serialization

from shared.kafka.config import client_config, consumer_config, producer_config
from shared.settings import Settings, markdown_table, secret_values

BROKERS = {"KAFKA_BOOTSTRAP_SERVERS": "kafka-0.kafka:9093,kafka-1.kafka:9093"}


def settings(**env: str) -> Settings:
    return Settings.from_env(BROKERS | env)


def test_plaintext_by_default_with_no_tls_or_sasl_keys() -> None:
    config = client_config(settings())
    assert config["security.protocol"] == "PLAINTEXT"
    assert not [key for key in config if key.startswith(("ssl.", "sasl."))]


def test_sasl_ssl_with_a_private_ca() -> None:
    config = client_config(
        settings(
            KAFKA_SECURITY_PROTOCOL="SASL_SSL",
            KAFKA_SASL_MECHANISM="SCRAM-SHA-512",
            KAFKA_SASL_USERNAME="plane-workers",
            KAFKA_SASL_PASSWORD="scram-secret",
            KAFKA_SSL_CA_LOCATION="/etc/kafka-tls/ca.crt",
        )
    )
    assert config == {
        "bootstrap.servers": BROKERS["KAFKA_BOOTSTRAP_SERVERS"],
        "security.protocol": "SASL_SSL",
        "client.id": "plane-workers",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "plane-workers",
        "sasl.password": "scram-secret",
        "ssl.ca.location": "/etc/kafka-tls/ca.crt",
    }


def test_mutual_tls_reaches_consumers_and_producers_and_the_key_password_is_secret() -> None:
    s = settings(
        KAFKA_SECURITY_PROTOCOL="SSL",
        KAFKA_SSL_CA_LOCATION="/tls/ca.crt",
        KAFKA_SSL_CERTIFICATE_LOCATION="/tls/tls.crt",
        KAFKA_SSL_KEY_LOCATION="/tls/tls.key",
        KAFKA_SSL_KEY_PASSWORD="key-passphrase",
    )
    tls = {
        "security.protocol": "SSL",
        "ssl.ca.location": "/tls/ca.crt",
        "ssl.certificate.location": "/tls/tls.crt",
        "ssl.key.location": "/tls/tls.key",
        "ssl.key.password": "key-passphrase",
    }
    for config in (
        client_config(s),
        producer_config(s),
        consumer_config(s, "g"),
        consumer_config(s, "g", retry_tier=True),
    ):
        assert tls.items() <= config.items()
    assert "sasl.mechanism" not in client_config(s)
    assert "key-passphrase" in secret_values(s)
    assert "key-passphrase" not in repr(s)


def test_the_settings_table_lists_the_tls_variables() -> None:
    table = markdown_table()
    for name in ("CA_LOCATION", "CERTIFICATE_LOCATION", "KEY_LOCATION"):
        assert f"`KAFKA_SSL_{name}`" in table
    [row] = [line for line in table.splitlines() if "`KAFKA_SSL_KEY_PASSWORD`" in line]
    assert row.endswith("Secret. |")


@pytest.fixture
def tls_files(tmp_path: Path) -> dict[str, str]:
    """A CA, and a client certificate whose key is encrypted with a passphrase, as PEM files."""
    ca = trustme.CA()
    client = ca.issue_cert("plane-workers")
    key = serialization.load_pem_private_key(client.private_key_pem.bytes(), password=None)
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"key-passphrase"),
    )
    files = {
        "ca.crt": ca.cert_pem.bytes(),
        "tls.crt": client.cert_chain_pems[0].bytes(),
        "tls.key": encrypted,
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    return {name: str(tmp_path / name) for name in files}


def tls_settings(files: dict[str, str], password: str) -> Settings:
    return settings(
        KAFKA_SECURITY_PROTOCOL="SSL",
        KAFKA_SSL_CA_LOCATION=files["ca.crt"],
        KAFKA_SSL_CERTIFICATE_LOCATION=files["tls.crt"],
        KAFKA_SSL_KEY_LOCATION=files["tls.key"],
        KAFKA_SSL_KEY_PASSWORD=password,
    )


def test_librdkafka_loads_the_ca_certificate_and_encrypted_key(tls_files: dict[str, str]) -> None:
    Producer(producer_config(tls_settings(tls_files, "key-passphrase"))).flush(0)
    with pytest.raises(KafkaException, match=r"ssl\.key"):
        Producer(producer_config(tls_settings(tls_files, "wrong")))
