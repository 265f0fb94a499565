#!/usr/bin/env python3
"""Readiness probe for the local Kafka broker (used by deploy/local/stack.sh).

An open port is not enough: for a few seconds after start the broker answers
"coordinator not available" to consumer-group requests. This probe only
succeeds once a full round trip works the way the services use Kafka:

  1. create the topic ``__cc_ready`` (1 partition) if it is missing (admin client),
  2. produce one message with a fresh token (acks=all),
  3. join a fresh consumer group subscribed to the topic and read that message back.

Each attempt is retried until ``--timeout`` seconds have passed. Exit status 0 when
ready, 1 on timeout, 2 when the broker process given by ``--pid`` died meanwhile.
Needs aiokafka (the repo venv, or any interpreter given to stack.sh as CC_PYTHON).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
import uuid

try:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError, for_code
except ImportError as exc:  # pragma: no cover - environment problem
    print(
        f"kafka_ready: cannot import aiokafka ({exc}); "
        "install it in the repo venv or point CC_PYTHON at an interpreter that has it",
        file=sys.stderr,
    )
    sys.exit(3)

TOPIC = "__cc_ready"
GROUP_PREFIX = "__cc_ready-"


class BrokerDied(Exception):
    pass


def _check_pid(pid: int | None) -> None:
    if pid is not None and not os.path.exists(f"/proc/{pid}"):
        raise BrokerDied(f"broker process {pid} is gone")


async def _ensure_topic(bootstrap: str, timeout_ms: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=timeout_ms)
    await admin.start()
    try:
        if TOPIC in await admin.list_topics():
            return
        resp = await admin.create_topics(
            [
                NewTopic(
                    TOPIC,
                    num_partitions=1,
                    replication_factor=1,
                    topic_configs={"retention.ms": "3600000"},
                )
            ],
            timeout_ms=timeout_ms,
        )
        for entry in getattr(resp, "topic_errors", []):
            code = entry[1]
            if code and for_code(code) is not TopicAlreadyExistsError:
                msg = entry[2] if len(entry) > 2 else ""
                raise for_code(code)(f"create topic {TOPIC}: {msg}")
    finally:
        await admin.close()


async def _produce(bootstrap: str, token: bytes, timeout_ms: int) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", request_timeout_ms=timeout_ms
    )
    await producer.start()
    try:
        await producer.send_and_wait(TOPIC, value=token)
    finally:
        await producer.stop()


async def _consume(bootstrap: str, token: bytes, deadline: float, pid: int | None) -> None:
    consumer = AIOKafkaConsumer(
        TOPIC,
        bootstrap_servers=bootstrap,
        group_id=GROUP_PREFIX + uuid.uuid4().hex[:12],
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=10000,
        heartbeat_interval_ms=1000,
    )
    await consumer.start()
    try:
        while time.monotonic() < deadline:
            _check_pid(pid)
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                if any(r.value == token for r in records):
                    return
        raise TimeoutError("message not read back through the consumer group in time")
    finally:
        await consumer.stop()


async def _attempt(bootstrap: str, deadline: float, pid: int | None) -> None:
    remaining_ms = max(1000, int((deadline - time.monotonic()) * 1000))
    req_ms = min(10000, remaining_ms)
    token = f"ready-{uuid.uuid4().hex}".encode()
    await asyncio.wait_for(_ensure_topic(bootstrap, req_ms), remaining_ms / 1000)
    _check_pid(pid)
    remaining = max(1.0, deadline - time.monotonic())
    await asyncio.wait_for(_produce(bootstrap, token, req_ms), remaining)
    _check_pid(pid)
    # Joining may take a while right after start (coordinator loading); allow up to 30 s
    # per attempt, bounded by the overall deadline.
    await _consume(bootstrap, token, min(deadline, time.monotonic() + 30), pid)


async def probe(bootstrap: str, timeout: float, pid: int | None, quiet: bool) -> int:
    start = time.monotonic()
    deadline = start + timeout
    attempt = 0
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        attempt += 1
        try:
            _check_pid(pid)
            await _attempt(bootstrap, deadline, pid)
        except BrokerDied as exc:
            print(f"kafka_ready: {exc}", file=sys.stderr)
            return 2
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready yet"
            last_error = exc
            if not quiet:
                print(
                    f"kafka_ready: attempt {attempt} not ready yet: {type(exc).__name__}: {exc}",
                    file=sys.stderr,
                )
            await asyncio.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
            continue
        print(
            f"kafka_ready: {bootstrap} ready after {time.monotonic() - start:.1f}s "
            f"(attempt {attempt})"
        )
        return 0
    print(
        f"kafka_ready: {bootstrap} not ready after {timeout:.0f}s; last error: "
        f"{type(last_error).__name__ if last_error else 'none'}: {last_error}",
        file=sys.stderr,
    )
    return 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bootstrap", default="127.0.0.1:19092")
    ap.add_argument("--timeout", type=float, default=90.0, help="overall deadline, seconds")
    ap.add_argument(
        "--pid", type=int, default=None, help="give up early if this process (the broker) exits"
    )
    ap.add_argument("--quiet", action="store_true", help="no per-attempt messages")
    args = ap.parse_args(argv)
    # aiokafka logs every refused connection / coordinator error at ERROR/WARNING;
    # the probe reports its own progress instead.
    logging.basicConfig(level=logging.CRITICAL)
    return asyncio.run(probe(args.bootstrap, args.timeout, args.pid, args.quiet))


if __name__ == "__main__":
    sys.exit(main())
