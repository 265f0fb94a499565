"""Service settings read from the environment, one prefix per service (INTAKE_, ROUTER_, ...)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PostgresDsn, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

LOCAL_PG = "postgresql+asyncpg://contactcenter:contactcenter@127.0.0.1:55432"
LOCAL_KAFKA = "127.0.0.1:19092"


class ServiceSettings(BaseSettings):
    """What every service needs; subclasses set `env_prefix` and add their own fields.

    Defaults run against the local stack that `make run` starts.
    """

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

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
    shutdown_grace_s: float = Field(default=10.0, ge=0, le=300)
    # Signs and checks the UI users' tokens (ccshared.auth) on the router's, SLA's and
    # feedback's APIs; the same value everywhere, shared with the identity provider that issues
    # them. Set a long random one in production: this default is for development only.
    auth_secret: SecretStr = SecretStr("local-dev-router-auth-secret-change-me")
    # Young-generation collection threshold (ccshared.gc); 0 keeps CPython's default of 700.
    gc_gen0_threshold: int = Field(default=50_000, ge=0, le=10_000_000)

    @field_validator("database_url")
    @classmethod
    def _postgres_url(cls, value: SecretStr) -> SecretStr:
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
        return value

    @field_validator("auth_secret")
    @classmethod
    def _secret_long_enough(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < 32:
            raise ValueError("must be at least 32 characters (HS256 wants a 256-bit key)")
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
