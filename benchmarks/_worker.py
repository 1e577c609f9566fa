"""A real Celery worker on Redis for a benchmark: its own queue and unacknowledged-message keys (named by the run
id), pointed at the benchmark's database; this process's Celery app publishes to that queue while it runs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from _monitoring_setup import ROOT


def bench_queue(run_id: str) -> str:
    return f"rollgate-bench-{run_id}"


def unacked_keys(run_id: str) -> dict[str, str]:
    return {
        "unacked_key": f"unacked-bench-{run_id}",
        "unacked_index_key": f"unacked_index-bench-{run_id}",
        "unacked_mutex_key": f"unacked_mutex-bench-{run_id}",
    }


def database_url() -> str:
    """The benchmark database as a URL for child processes (the worker, gunicorn)."""
    from django.db import connection

    db = connection.settings_dict
    return f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@contextmanager
def celery_worker(*, run_id: str, redis_url: str, count: int = 1) -> Iterator[None]:
    """Start ``count`` processes of ``celery worker --pool=solo`` on the run's queue (settings
    ``benchmarks.celery_settings``) and wait until each is ready, route this process's tasks there, stop them and
    delete the run's Redis keys afterwards."""
    import redis
    from django.conf import settings

    from config.celery import app

    redis.Redis.from_url(redis_url, socket_connect_timeout=2).ping()
    queue = bench_queue(run_id)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "benchmarks.celery_settings",
        "ROLLGATE_BENCH_CELERY_RUN": run_id,
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": redis_url,
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": str(ROOT),
    }
    # Closed in the ``finally`` below, with the workers that write them.
    logs = [tempfile.NamedTemporaryFile("w+", prefix=f"bench-worker-{run_id}-", suffix=".log") for _ in range(count)]  # noqa: SIM115
    command = [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=solo", "--concurrency=1"]
    command += ["--without-mingle", "--without-gossip", "--without-heartbeat", "--loglevel=INFO", f"--queues={queue}"]
    workers = [
        subprocess.Popen(
            [*command, f"--hostname=bench{index}-{run_id}@%h"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        for index, log in enumerate(logs)
    ]
    app.conf.broker_url = redis_url
    app.conf.task_default_queue = queue
    app.conf.broker_transport_options = {**settings.CELERY_BROKER_TRANSPORT_OPTIONS, **unacked_keys(run_id)}
    try:
        deadline = time.monotonic() + 120
        while not all(" ready." in Path(log.name).read_text() for log in logs):
            if time.monotonic() > deadline or any(worker.poll() is not None for worker in workers):
                raise RuntimeError("a worker did not start: " + " | ".join(Path(log.name).read_text() for log in logs))
            time.sleep(0.2)
        yield
    finally:
        for worker in workers:
            os.killpg(worker.pid, signal.SIGTERM)
        for worker in workers:
            try:
                worker.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait()
        for log in logs:
            log.close()
        redis.Redis.from_url(redis_url).delete(
            queue, *unacked_keys(run_id).values(), f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}"
        )
