"""Service settings read from the environment, one prefix per service (INTAKE_, ROUTER_, ...)."""

from __future__ import annotations

import itertools
import re
from typing import Literal

from pydantic import (
    Field,
    PostgresDsn,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from ccshared.auth import (
    DEFAULT_ISSUER,
    DEV_KEY_FINGERPRINT,
    DEV_PUBLIC_KEY_PEM,
    TokenVerifier,
    load_public_key,
    verifier_for,
)
from ccshared.auth import fingerprint as key_fingerprint
from ccshared.kafka import KafkaSecurity

LOCAL_PG = "postgresql+asyncpg://contactcenter:contactcenter@127.0.0.1:55432"
LOCAL_KAFKA = "127.0.0.1:19092"


class KafkaClientSettings(BaseSettings):
    """How a Kafka client connects: every service's clients (ServiceSettings, with the
    service's prefix), and the dead-letter command's (`python -m ccshared.dlq`, DLQ_...)."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    # PLAINTEXT (the local stack), SSL, SASL_PLAINTEXT or SASL_SSL; SASL needs a username and
    # password (deploy/k8s: a Strimzi KafkaUser's, SCRAM-SHA-512 over TLS). The CA file (PEM)
    # verifies the brokers' certificates; unset, the system's CAs do (a managed Kafka with a
    # public CA).
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-512"
    kafka_sasl_username: str = Field(default="", max_length=256)
    kafka_sasl_password: SecretStr = SecretStr("")
    kafka_ssl_cafile: str | None = None

    @model_validator(mode="after")
    def _sasl_has_credentials(self) -> KafkaClientSettings:
        protocol = self.kafka_security_protocol
        if protocol.startswith("SASL_") and not (
            self.kafka_sasl_username and self.kafka_sasl_password.get_secret_value()
        ):
            raise ValueError(
                f"kafka_security_protocol {protocol} needs kafka_sasl_username and "
                "kafka_sasl_password"
            )
        if self.kafka_ssl_cafile is not None and protocol not in ("SSL", "SASL_SSL"):
            raise ValueError(f"kafka_ssl_cafile is set but {protocol} uses no TLS")
        return self

    @property
    def kafka_security(self) -> KafkaSecurity:
        return KafkaSecurity(
            protocol=self.kafka_security_protocol,
            sasl_mechanism=self.kafka_sasl_mechanism,
            username=self.kafka_sasl_username,
            password=self.kafka_sasl_password.get_secret_value(),
            cafile=self.kafka_ssl_cafile,
        )


class ServiceSettings(KafkaClientSettings):
    """What every service needs; subclasses set `env_prefix` and add their own fields.

    Defaults run against the local stack that `make run` starts.
    """

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    # The one development switch of the whole system, CC_DEVELOPMENT=1 (no service prefix):
    # only with it on do the services accept the shipped development keys and secrets.
    # `make run`, `make test` and the benchmarks set it; a deployment never does.
    development: bool = Field(default=False, validation_alias="CC_DEVELOPMENT")
    service_name: str
    database_url: SecretStr = SecretStr(f"{LOCAL_PG}/postgres")
    database_pool_size: int = Field(default=10, ge=1, le=200)
    kafka_bootstrap: str = LOCAL_KAFKA
    kafka_client_id: str | None = None
    topic_partitions: int = Field(default=6, ge=1, le=1024)
    # Put before every topic name on Kafka (not in the outbox or the catalog): deployments or
    # benchmarks sharing one cluster keep their events apart, e.g. "bench." or "staging.".
    kafka_topic_prefix: str = Field(default="", pattern=r"^[A-Za-z0-9._-]*$", max_length=64)
    # Replication of the topics a service creates: -1 and None take the broker's defaults
    # (default.replication.factor, min.insync.replicas). Production on three brokers: 3 and 2,
    # so that losing one broker loses no acknowledged event (the producers use acks=all).
    # 0 is refused by the broker when the topics are created.
    topic_replication_factor: int = Field(default=-1, ge=-1, le=32)
    topic_min_insync_replicas: int | None = Field(default=None, ge=1, le=32)
    # false: the service creates no topic at start (nor changes a dead-letter twin's retention)
    # and so needs no Create/DescribeConfigs/AlterConfigs right on the cluster: the topics are
    # made by their owner, e.g. Strimzi's KafkaTopics in deploy/k8s.
    kafka_provision_topics: bool = True
    # How often a service counts the dead letters waiting in the twins of the topics it
    # consumes, and logs them at WARNING while there are any.
    dlq_check_interval_s: float = Field(default=60.0, gt=0, le=3600)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_json: bool = True
    # How long the outbox relay sleeps without a NOTIFY before looking anyway.
    outbox_poll_interval_s: float = Field(default=2.0, gt=0, le=60)
    outbox_batch_size: int = Field(default=500, ge=1, le=10_000)
    # Publish latency traded for fewer, larger Kafka batches under load.
    outbox_linger_s: float = Field(default=0.01, ge=0, le=1)
    # The relay vacuums the outbox itself after deleting this many rows (0: leave it to
    # autovacuum, which visits a database about once a minute: at thousands of events a second
    # the table would carry hundreds of thousands of dead rows between visits).
    outbox_vacuum_every: int = Field(default=20_000, ge=0)
    # Appended to every consumer group id: lets tests and side-by-side deployments read a topic
    # without taking over the service's own group.
    consumer_group_suffix: str = Field(default="", pattern=r"^[A-Za-z0-9._-]*$", max_length=64)
    # Where a consumer group with no committed offset starts. "earliest" loses nothing; a new
    # group for tests or tools may start at the end instead.
    consumer_offset_reset: Literal["earliest", "latest"] = "earliest"
    consumer_max_attempts: int = Field(default=5, ge=1, le=100)
    # Records of one poll applied in one transaction (a savepoint each): more is cheaper per
    # record, but the transaction holds its row locks longer. A trade-off measured both ways on
    # the router: 20 doubled tickets assigned under the end-to-end benchmark's mixed load, but cut
    # its backlog drain (bench router) from 139/s to 10/s, the assigner now winning the ticket
    # locks the consumer waits for. 200 stays until the router's lock scope is fixed.
    consumer_max_batch: int = Field(default=200, ge=1, le=5_000)
    consumer_retry_base_s: float = Field(default=0.2, gt=0, le=60)
    # A consumer commits its offsets at most this often (at once on a stop or a rebalance):
    # fewer round trips and offset-log writes; a crash re-reads at most this much, passed over.
    consumer_commit_interval_s: float = Field(default=0.2, ge=0, le=60)
    shutdown_grace_s: float = Field(default=10.0, ge=0, le=300)
    # /metrics (ccshared.metrics): open to whoever reaches the pod's port (the in-cluster
    # scraper; the public ingress does not route it), or, when set, only with
    # `Authorization: Bearer <token>`.
    metrics_token: SecretStr | None = None
    # Traces (ccshared.tracing): off unless an OTLP/HTTP endpoint is given, e.g.
    # http://otel-collector:4318/v1/traces. The ratio of new traces kept (a trace continued
    # from a caller or an event follows its parent's choice).
    tracing_otlp_endpoint: str | None = Field(default=None, max_length=500)
    tracing_sample_ratio: float = Field(default=1.0, ge=0, le=1)
    # Young-generation collection threshold (ccshared.gc); 0 keeps CPython's default of 700.
    gc_gen0_threshold: int = Field(default=50_000, ge=0, le=10_000_000)

    # Migrations (ccshared.db.migrate). false: the service does not migrate at start but waits
    # (up to its start-up deadline) until `python -m <service>.migrate`, e.g. a deployment's
    # Job, has applied every migration it knows.
    migrate_on_start: bool = True
    # How long a migration waits for each lock before giving up, so the queries queued behind
    # its lock run again; retried `migration_lock_retries` times with backoff, then it fails.
    migration_lock_timeout_s: float = Field(default=5.0, gt=0, le=3_600)
    migration_lock_retries: int = Field(default=3, ge=0, le=100)
    # Longest a migration's statement may run (a table rewrite belongs in a maintenance window).
    migration_statement_timeout_s: float = Field(default=300.0, gt=0, le=86_400)

    @field_validator("database_url")
    @classmethod
    def _postgres_url(cls, value: SecretStr, info: ValidationInfo) -> SecretStr:
        raw = value.get_secret_value()
        # No host before the path means a Unix socket, its directory given as ?host=/dir
        # (PostgreSQL on the same machine: cheaper than TCP over loopback).
        if "@/" in raw and "host=/" not in raw:
            raise ValueError("a URL without a host must name the socket directory: ?host=/dir")
        PostgresDsn(raw.replace("@/", "@localhost/", 1))  # raises naming the field if malformed
        if not raw.startswith("postgresql+asyncpg://"):
            raise ValueError(
                "must use the asyncpg driver: postgresql+asyncpg://user:pass@host:port/db"
            )
        if placeholder_password(raw) and not info.data.get("development"):
            raise ValueError(
                "its password is a placeholder (change-me, password, ...): give the real one, "
                "or set CC_DEVELOPMENT=1 in development"
            )
        return value

    @field_validator("kafka_bootstrap")
    @classmethod
    def _bootstrap_servers(cls, value: str) -> str:
        servers = [s.strip() for s in value.split(",") if s.strip()]
        if not servers:
            raise ValueError("needs at least one host:port")
        for server in servers:
            host, sep, port = server.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"{server!r} is not host:port")
        return ",".join(servers)

    @property
    def client_id(self) -> str:
        return self.kafka_client_id or self.service_name


class UserTokenSettings(ServiceSettings):
    """A service whose API the UI's users call with a token (ccshared.auth, ccshared.user_auth):
    it holds the token issuer's public key only, so it can check tokens but never mint one."""

    # The issuer's Ed25519 public key: PEM text, or the path of a PEM file. The default is the
    # development key, refused unless CC_DEVELOPMENT=1.
    auth_public_key: str = DEV_PUBLIC_KEY_PEM
    # The `iss` every token must carry: the identity provider's name for itself.
    auth_issuer: str = Field(default=DEFAULT_ISSUER, min_length=1, max_length=200)

    @field_validator("auth_public_key")
    @classmethod
    def _real_public_key(cls, value: str, info: ValidationInfo) -> str:
        key = load_public_key(value)  # ValueError names what is wrong with it
        if key_fingerprint(key) == DEV_KEY_FINGERPRINT and not info.data.get("development"):
            raise ValueError(
                f"{env_name(cls, info)} is the development key, whose private half is public "
                "(deploy/local/): configure your token issuer's public key, or set "
                "CC_DEVELOPMENT=1 on a development machine"
            )
        return value

    @property
    def token_verifier(self) -> TokenVerifier:
        return verifier_for(self.auth_public_key, self.auth_issuer)


def env_name(settings: type[BaseSettings], info: ValidationInfo) -> str:
    """The environment variable of the field being validated, e.g. ROUTER_AUTH_PUBLIC_KEY."""
    prefix = settings.model_config.get("env_prefix") or ""
    return f"{prefix}{info.field_name}".upper()


# Shapes of a value nobody generated at random: the shipped defaults and the placeholders of
# examples and tutorials.
_PLACEHOLDER = re.compile(
    r"change.?me|changeit|placeholder|example|replace|dev.?only|local.?dev|insecure|"
    r"secret|password|default|xxx|\.\.\.|<|>",
    re.IGNORECASE,
)
# xxx is left to the check for runs: random base64 holds xXx about once in 300 strings.
_PLACEHOLDER_IN_SECRET = re.compile(_PLACEHOLDER.pattern.replace("xxx|", ""), re.IGNORECASE)
SECRET_MIN_BYTES = 32
GENERATE_HINT = (
    'generate one with `python -c "import secrets;print(secrets.token_urlsafe(32))"` '
    "(or `openssl rand -base64 48`), or set CC_DEVELOPMENT=1 in development"
)
_HEX = re.compile(r"[0-9a-fA-F]+")
_BASE64 = re.compile(r"[A-Za-z0-9+/_-]+={0,2}")


def _stretch(value: str) -> str | None:
    """A stretch no random generator makes (in practice, even in hex): 8 characters running up
    or down (abcdefgh, 76543210) or the same, or 8 that come again."""
    up = down = same = 1
    for before, after in itertools.pairwise(value):
        step = ord(after) - ord(before)
        up = up + 1 if step == 1 else 1
        down = down + 1 if step == -1 else 1
        same = same + 1 if step == 0 else 1
        if max(up, down, same) >= 8:
            return "a run of characters in sequence"
    seen: set[str] = set()
    for i in range(len(value) - 7):
        if value[i : i + 8] in seen:
            return f"a repeated stretch ({value[i : i + 8]!r}...)"
        seen.add(value[i : i + 8])
    return None


def require_random_secret(value: str, name: str, development: bool) -> None:
    """ValueError unless `value` is plainly random: base64, base64url or hex of at least
    SECRET_MIN_BYTES bytes, with no placeholder word, no stretch in sequence or repeated, and
    about as many different characters as random ones hold. Anything goes with
    CC_DEVELOPMENT=1."""
    if development:
        return
    if _HEX.fullmatch(value):
        size, alphabet = len(value) // 2, "hex"
    elif _BASE64.fullmatch(value):
        size, alphabet = len(value.rstrip("=")) * 6 // 8, "base64"
    else:
        raise ValueError(f"{name} must be base64, base64url or hex: {GENERATE_HINT}")
    if size < SECRET_MIN_BYTES:
        raise ValueError(
            f"{name} holds {size} bytes of {alphabet}, at least {SECRET_MIN_BYTES} random bytes "
            f"are needed: {GENERATE_HINT}"
        )
    if _PLACEHOLDER_IN_SECRET.search(value):
        raise ValueError(
            f"{name} is a default or placeholder, not a random secret: {GENERATE_HINT}"
        )
    flaw = _stretch(value)
    # An entropy estimate: the different characters used, against those expected of as many
    # drawn at random (hex 16, base64 64 symbols). Random strings of 32+ bytes score 0.67 or
    # more (lowest of 600,000 drawn); a phrase of words in CamelCase about 0.62.
    symbols = 16 if alphabet == "hex" else 64
    expected = symbols * (1 - ((symbols - 1) / symbols) ** len(value))
    if flaw is None and len(set(value)) < 0.64 * expected:
        flaw = f"only {len(set(value))} different characters"
    if flaw is not None:
        raise ValueError(f"{name} is not random ({flaw}): {GENERATE_HINT}")


def placeholder_password(url: str) -> bool:
    """True when the database URL's password is a placeholder (change-me, password, ...)."""
    match = re.match(r"[^:/]+://[^:@/]*:([^@/]*)@", url)
    if not match:
        return False
    password = match.group(1)
    # xxx only as the whole password: a random one holds xXx about once in 300.
    return bool(_PLACEHOLDER_IN_SECRET.search(password) or re.fullmatch(r"x+", password, re.I))
