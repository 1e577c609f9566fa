"""Exactly one Celery beat schedules: two real ``celery beat`` processes on a real Redis broker contend for the
PostgreSQL advisory lock; the standby sends nothing until the holder is killed, then takes over.

The broker defaults to Redis database 12 (``BEAT_TEST_BROKER_URL`` to change it); each run sends to its own queue,
deleted at the end. The lock lives in the test database, which only this run uses.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from django.db import connection

from core.beat import BeatLock
from tests.live_database import database_url

BROKER_URL = os.environ.get("BEAT_TEST_BROKER_URL", "redis://127.0.0.1:6379/12")
ROOT = Path(__file__).resolve().parents[2]
WAIT_SECONDS = 60  # a deadline for slow machines, never a measurement


def _broker() -> redis.Redis:
    return redis.Redis.from_url(BROKER_URL, socket_connect_timeout=1)


def _broker_available() -> bool:
    try:
        return bool(_broker().ping())
    except redis.exceptions.ConnectionError:
        return False


@pytest.fixture
def probe_queue() -> Iterator[str]:
    if not _broker_available():
        pytest.skip(f"no Redis at {BROKER_URL}")
    queue = f"rollgate-test-beat-{uuid.uuid4().hex[:12]}"
    yield queue
    _broker().delete(queue, f"_kombu.binding.{queue}")


def _start_beat(name: str, queue: str, tmp_path: Path) -> subprocess.Popen[bytes]:
    log = (tmp_path / f"{name}.log").open("w")
    try:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "beat",
                "--loglevel=INFO",
                # Each beat its own schedule file, as on two machines.
                f"--schedule={tmp_path / f'{name}-schedule'}",
            ],
            cwd=ROOT,
            env={
                **os.environ,
                "DJANGO_SETTINGS_MODULE": "tests.core.beat_settings",
                "ROLLGATE_TEST_BEAT_QUEUE": queue,
                "DATABASE_URL": database_url(),
                "CELERY_BROKER_URL": BROKER_URL,
                "PYTHONUNBUFFERED": "1",
            },
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    finally:
        log.close()


def _stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if process.poll() is None:
        os.killpg(process.pid, sig)
        process.wait(timeout=30)


def _senders(queue: str) -> list[int]:
    """The process id of the sender of every message in the queue, oldest first (Celery's ``origin`` header is
    ``gen<pid>@<host>`` for a producer that is not a worker)."""
    messages = [json.loads(raw) for raw in _broker().lrange(queue, 0, -1)]
    # LPUSH puts the newest at the head.
    return [int(m["headers"]["origin"].split("@")[0].removeprefix("gen")) for m in reversed(messages)]


def _wait_until(predicate, what: str, *logs: Path) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + WAIT_SECONDS
    while not predicate():
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {log.name}\n{log.read_text()[-3000:]}" for log in logs if log.exists())
            pytest.fail(f"gave up waiting for {what}\n{tails}")
        time.sleep(0.1)


@pytest.mark.celery_beat
@pytest.mark.django_db
def test_a_second_beat_stands_by_and_takes_over_when_the_first_dies(probe_queue, tmp_path):
    first = _start_beat("first", probe_queue, tmp_path)
    second = None
    try:
        logs = (tmp_path / "first.log", tmp_path / "second.log")
        _wait_until(lambda: len(_senders(probe_queue)) >= 2, "the first beat to schedule", *logs)

        second = _start_beat("second", probe_queue, tmp_path)
        _wait_until(lambda: "standing by" in logs[1].read_text(), "the second beat to stand by", *logs)
        sent_before = len(_senders(probe_queue))
        # Ten more probes (2.5 seconds of schedule) with both beats running: a second scheduler would be in them.
        _wait_until(lambda: len(_senders(probe_queue)) >= sent_before + 10, "ten more probes", *logs)
        assert set(_senders(probe_queue)) == {first.pid}

        _stop(first, signal.SIGKILL)  # no clean shutdown: PostgreSQL ends the session, and with it the lock
        sent_by_first = len(_senders(probe_queue))
        _wait_until(lambda: len(_senders(probe_queue)) >= sent_by_first + 5, "the second beat to take over", *logs)

        senders = _senders(probe_queue)
        assert set(senders[:sent_by_first]) == {first.pid}
        assert set(senders[sent_by_first:]) == {second.pid}
        assert "takes over the schedule" in logs[1].read_text()
    finally:
        _stop(first, signal.SIGKILL)
        if second is not None:
            _stop(second)
    assert second.returncode == 0  # a standby or holder stops cleanly on SIGTERM


@pytest.mark.django_db
def test_the_lock_has_one_holder_until_its_session_ends():
    holder, contender = BeatLock(), BeatLock()
    try:
        assert holder.try_acquire()
        assert not contender.try_acquire()
        assert holder.still_held()

        # The holder's connection is cut (a database restart, a network partition noticed by the server).
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_locks "
                "WHERE locktype = 'advisory' AND granted AND pid <> pg_backend_pid() AND database = "
                "(SELECT oid FROM pg_database WHERE datname = current_database())"
            )
        assert not holder.still_held()
        assert contender.try_acquire()
        assert not holder.try_acquire()

        contender.release()
        assert holder.try_acquire()
    finally:
        holder.release()
        contender.release()
