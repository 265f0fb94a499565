"""Kafka authentication and encryption: the settings reach every kind of client the services
make (producer, consumer, admin), PLAINTEXT stays the local stack's default, and SASL without
credentials or a CA file without TLS is refused at start."""

from __future__ import annotations

import datetime as dt
import ssl
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import ValidationError

from ccshared import dlq
from ccshared.consumer import IdempotentConsumer
from ccshared.dlq import DeadLetters
from ccshared.kafka import KafkaSecurity, make_producer
from ccshared.settings import ServiceSettings
from router.settings import RouterSettings


class _Settings(ServiceSettings):
    service_name: str = "probe"


def _ca_file(tmp_path: Path) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-ca")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path = tmp_path / "ca.crt"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return str(path)


def _sasl_ssl(tmp_path: Path) -> _Settings:
    return _Settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_username="router",
        kafka_sasl_password="s3cr3t-from-the-kafkauser",
        kafka_ssl_cafile=_ca_file(tmp_path),
    )


def test_the_local_stack_default_is_plaintext_without_credentials() -> None:
    settings = _Settings()
    assert settings.kafka_security.client_options() == {"security_protocol": "PLAINTEXT"}
    assert settings.kafka_provision_topics


def test_sasl_ssl_settings_give_scram_credentials_and_a_verifying_tls_context(
    tmp_path: Path,
) -> None:
    options = _sasl_ssl(tmp_path).kafka_security.client_options()
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == (
        "router",
        "s3cr3t-from-the-kafkauser",
    )
    context: ssl.SSLContext = options["ssl_context"]
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    assert [c["subject"] for c in context.get_ca_certs()] == [((("commonName", "test-ca"),),)]


def test_the_password_is_never_in_the_security_objects_repr(tmp_path: Path) -> None:
    security = _sasl_ssl(tmp_path).kafka_security
    assert "s3cr3t" not in repr(security)
    assert "s3cr3t" not in str(security)


@pytest.mark.parametrize("protocol", ["SASL_SSL", "SASL_PLAINTEXT"])
def test_sasl_without_a_username_or_password_is_refused(protocol: str) -> None:
    with pytest.raises(ValidationError, match="kafka_sasl_username and kafka_sasl_password"):
        _Settings(kafka_security_protocol=protocol, kafka_sasl_username="router")


def test_a_ca_file_without_tls_is_refused() -> None:
    with pytest.raises(ValidationError, match="uses no TLS"):
        _Settings(kafka_security_protocol="PLAINTEXT", kafka_ssl_cafile="/ca.crt")


def test_the_settings_read_the_kafka_security_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ROUTER_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("ROUTER_KAFKA_SASL_USERNAME", "router")
    monkeypatch.setenv("ROUTER_KAFKA_SASL_PASSWORD", "from-the-secret")
    monkeypatch.setenv("ROUTER_KAFKA_SSL_CAFILE", _ca_file(tmp_path))
    monkeypatch.setenv("ROUTER_KAFKA_PROVISION_TOPICS", "false")
    settings = RouterSettings()
    assert settings.kafka_security.username == "router"
    assert settings.kafka_security.password == "from-the-secret"
    assert not settings.kafka_provision_topics


async def test_producers_consumers_and_dead_letter_clients_all_authenticate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    security = _sasl_ssl(tmp_path).kafka_security
    clients = []
    producer = make_producer("127.0.0.1:1", "probe", security=security)
    clients.append(producer.client)
    clients.append(DeadLetters("127.0.0.1:1", security=security)._consumer._client)

    made: list[AIOKafkaConsumer] = []

    async def refuse_to_start() -> None:
        raise ConnectionError("not started in a unit test")

    def recording(*args: Any, **kwargs: Any) -> AIOKafkaConsumer:
        consumer = AIOKafkaConsumer(*args, **kwargs)
        consumer.start = refuse_to_start
        made.append(consumer)
        return consumer

    monkeypatch.setattr("ccshared.consumer.AIOKafkaConsumer", recording)
    consumer = IdempotentConsumer(
        engine=None,  # type: ignore[arg-type]  # start() fails before any database work
        bootstrap="127.0.0.1:1",
        group_id="probe.tickets",
        topics=["t"],
        handler=None,  # type: ignore[arg-type]
        producer_factory=lambda: producer,
        security=security,
    )
    with pytest.raises(ConnectionError):
        await consumer.start()
    clients.append(made[0]._client)
    await producer.stop()
    for client in clients:
        assert client._security_protocol == "SASL_SSL"
        assert client._sasl_mechanism == "SCRAM-SHA-512"
        assert client._sasl_plain_username == "router"
        assert client._ssl_context is not None


def test_the_dead_letter_command_logs_in_with_the_dlq_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`python -m ccshared.dlq` is an operator's tool: its own login (DLQ_...), not a
    service's, since replaying writes to any topic."""
    monkeypatch.setenv("DLQ_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("DLQ_KAFKA_SASL_USERNAME", "dlq-admin")
    monkeypatch.setenv("DLQ_KAFKA_SASL_PASSWORD", "operator-password")
    monkeypatch.setenv("DLQ_KAFKA_SSL_CAFILE", _ca_file(tmp_path))
    seen: list[KafkaSecurity] = []

    class Refused(Exception):
        pass

    def recording(bootstrap: str, *, group: str, security: KafkaSecurity) -> None:
        seen.append(security)
        raise Refused

    monkeypatch.setattr(dlq, "DeadLetters", recording)
    with pytest.raises(Refused):
        dlq.main(["--bootstrap", "127.0.0.1:1", "list"])
    [security] = seen
    assert (security.protocol, security.username, security.password) == (
        "SASL_SSL",
        "dlq-admin",
        "operator-password",
    )


def test_the_dead_letter_command_refuses_sasl_without_a_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DLQ_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    with pytest.raises(ValidationError, match="kafka_sasl_password"):
        dlq.main(["--bootstrap", "127.0.0.1:1", "list"])
