"""The Kafka security settings against a real broker that wants them: a broker of its own (the
local stack's jars, KRaft, one node) with only a SASL_SSL listener, SCRAM-SHA-512 logins and a
certificate from a CA made here, as Strimzi's TLS listener in deploy/k8s has. A service's
settings connect, provision topics, produce and consume through it; a wrong password, a client
that does not trust the CA and a plain-text client do not get in."""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import os
import secrets
import shutil
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ccshared.kafka import (
    PLAINTEXT,
    KafkaSecurity,
    ensure_topics,
    kafka_reachable,
    make_producer,
)
from ccshared.settings import ServiceSettings
from tests.helpers import wait_until

ROOT = Path(__file__).resolve().parents[3]
KAFKA_LIBS = Path(os.environ.get("CC_KAFKA_LIBS", ROOT / ".local" / "kafka" / "libs"))
LOG4J = ROOT / "deploy" / "local" / "kafka" / "log4j.properties"


class _Settings(ServiceSettings):
    service_name: str = "router"


@dataclass
class Broker:
    bootstrap: str
    cafile: str
    password: str
    process: subprocess.Popen[bytes]
    log: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _certificates(directory: Path) -> tuple[Path, Path]:
    """A CA (its certificate: the clients' CA file) and the broker's key and certificate for
    localhost, signed by it, in one PEM file (Kafka's PEM key store)."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test cluster CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    cafile = directory / "ca.crt"
    cafile.write_bytes(_pem(ca))
    keystore = directory / "broker.pem"
    keystore.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        + _pem(cert)
        + _pem(ca)
    )
    return cafile, keystore


def _java() -> list[str]:
    java = shutil.which("java")
    if java is None or not KAFKA_LIBS.is_dir():
        pytest.fail(f"needs java and the local stack's Kafka jars in {KAFKA_LIBS} (make install)")
    return [
        java,
        "-Xms64m",
        "-Xmx256m",
        "-XX:-UsePerfData",
        f"-Dlog4j.configuration=file:{LOG4J}",
        "-Dlog4j2.loggerContextFactory=org.apache.logging.log4j.simple.SimpleLoggerContextFactory",
        "-cp",
        f"{KAFKA_LIBS}/*",
    ]


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    directory = tmp_path_factory.mktemp("sasl-broker")
    cafile, keystore = _certificates(directory)
    port, controller = _free_port(), _free_port()
    admin_password, router_password = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    jaas = (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="admin" password="{admin_password}";'
    )
    props = directory / "server.properties"
    props.write_text(
        f"""process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{controller}
controller.listener.names=CONTROLLER
listeners=SASL_SSL://localhost:{port},CONTROLLER://127.0.0.1:{controller}
advertised.listeners=SASL_SSL://localhost:{port}
inter.broker.listener.name=SASL_SSL
listener.security.protocol.map=SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config={jaas}
ssl.keystore.type=PEM
ssl.keystore.location={keystore}
ssl.truststore.type=PEM
ssl.truststore.location={cafile}
ssl.client.auth=none
log.dirs={directory / "data"}
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
"""
    )
    cluster_id = base64.urlsafe_b64encode(b"k" + secrets.token_bytes(15)).decode().rstrip("=")
    java = _java()
    subprocess.run(  # noqa: S603 - java on the stack's own jars and a config made here
        [
            *java,
            "kafka.tools.StorageTool",
            "format",
            "-t",
            cluster_id,
            "-c",
            str(props),
            "--add-scram",
            f"SCRAM-SHA-512=[name=admin,password={admin_password}]",
            "--add-scram",
            f"SCRAM-SHA-512=[name=router,password={router_password}]",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    log = (directory / "kafka.log").open("wb")
    process = subprocess.Popen(  # noqa: S603 - as above
        [*java, "kafka.Kafka", str(props)], stdout=log, stderr=subprocess.STDOUT
    )
    try:
        yield Broker(
            f"localhost:{port}", str(cafile), router_password, process, directory / "kafka.log"
        )
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()


def _security(broker: Broker, **overrides: str) -> KafkaSecurity:
    values = {
        "kafka_security_protocol": "SASL_SSL",
        "kafka_sasl_mechanism": "SCRAM-SHA-512",
        "kafka_sasl_username": "router",
        "kafka_sasl_password": broker.password,
        "kafka_ssl_cafile": broker.cafile,
        **overrides,
    }
    return _Settings(**values).kafka_security  # type: ignore[arg-type]


async def _up(broker: Broker) -> None:
    async def answers() -> bool:
        if broker.process.poll() is not None:
            tail = broker.log.read_text(errors="replace").splitlines()[-15:]
            pytest.fail("the broker exited:\n" + "\n".join(tail))
        return await kafka_reachable(broker.bootstrap, 5.0, security=_security(broker))

    await wait_until(answers, timeout=90, interval=0.5)


async def test_a_service_with_its_scram_login_provisions_produces_and_consumes(
    broker: Broker,
) -> None:
    await _up(broker)
    security = _security(broker)
    topic = f"sasl-{secrets.token_hex(4)}"
    assert await ensure_topics(
        broker.bootstrap, [topic], partitions=1, replication_factor=1, security=security
    ) == [topic]
    producer = make_producer(broker.bootstrap, "router", security=security)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"over TLS", key=b"k")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=broker.bootstrap,
        group_id="router.sasl-test",
        auto_offset_reset="earliest",
        **security.client_options(),
    )
    await consumer.start()
    try:
        record = await consumer.getone()
        assert record.value == b"over TLS"
    finally:
        await consumer.stop()


async def test_a_wrong_password_an_untrusted_ca_or_plain_text_do_not_get_in(
    broker: Broker, tmp_path: Path
) -> None:
    await _up(broker)
    other_ca, _ = _certificates(tmp_path)
    for refused in (
        _security(broker, kafka_sasl_password="not-the-password"),
        _security(broker, kafka_ssl_cafile=str(other_ca)),
        PLAINTEXT,
    ):
        assert not await kafka_reachable(broker.bootstrap, 5.0, security=refused), refused
