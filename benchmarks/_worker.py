"""A real Celery worker on Redis for a benchmark: its own queue and unacknowledged-message keys (named by the run
id), pointed at the benchmark's database; this process's Celery app publishes to that queue while it runs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

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
def celery_worker(*, run_id: str, redis_url: str) -> Iterator[None]:
    """Start ``celery worker --pool=solo`` on the run's queue (settings ``benchmarks.celery_settings``), route this
    process's tasks there, stop it and delete the run's Redis keys afterwards."""
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
    log = open(os.path.join(tempfile.gettempdir(), f"bench-worker-{run_id}.log"), "w")  # noqa: SIM115
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=solo", "--concurrency=1",
         "--without-mingle", "--without-gossip", "--without-heartbeat", "--loglevel=WARNING", f"--queues={queue}"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    app.conf.broker_url = redis_url
    app.conf.task_default_queue = queue
    app.conf.broker_transport_options = {**settings.CELERY_BROKER_TRANSPORT_OPTIONS, **unacked_keys(run_id)}
    try:
        yield
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
        log.close()
        redis.Redis.from_url(redis_url).delete(
            queue, *unacked_keys(run_id).values(), f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}"
        )
