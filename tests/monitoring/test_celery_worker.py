"""Real Celery workers on a real Redis broker: breaching samples → incident opened → release paused → webhook;
and a worker SIGKILLed mid-batch → the unacknowledged task is redelivered to a fresh worker, which completes it.

Run alone with ``pytest -m celery_worker``. The broker defaults to Redis database 5; set
``MONITORING_TEST_BROKER_URL`` to use another. Each run has its own queue (``rollgate-test-<run id>``) and its own
Redis keys for unacknowledged messages (``celery_settings.py``), for the workers, the producers and this process, so
two runs on one machine never take (or restore) each other's tasks.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import psycopg
import pytest
from django.utils import timezone

from monitoring.choices import GuardrailAction, IncidentEventKind, IncidentStatus
from monitoring.models import Evaluation, Guardrail, Incident, MetricDefinition, NotificationEndpoint
from monitoring.services import guardrails_evaluate
from releases.choices import ReleaseStatus
from releases.models import Release
from tests.factories import SolutionFactory, UserFactory, make_release
from tests.live_database import database_url, raw_connection

from .conftest import make_guardrail, put_live

BROKER_URL = os.environ.get("MONITORING_TEST_BROKER_URL", "redis://127.0.0.1:6379/5")
ROOT = Path(__file__).resolve().parents[2]
RUN_ID = uuid.uuid4().hex[:12]
QUEUE = f"rollgate-test-{RUN_ID}"
UNACKED_KEY, UNACKED_INDEX_KEY = f"unacked-{RUN_ID}", f"unacked_index-{RUN_ID}"

pytestmark = [pytest.mark.celery_worker, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def _broker_available() -> bool:
    import redis

    try:
        # Never flushed: another run may be using the same database; this run's keys are its own.
        return bool(redis.Redis.from_url(BROKER_URL, socket_connect_timeout=1).ping())
    except redis.exceptions.ConnectionError:
        return False


@pytest.fixture(autouse=True)
def run_queue(settings):
    """Whatever this process enqueues goes to the run's queue too; the run's Redis keys go at the end."""
    import redis

    from config.celery import app

    settings.CELERY_TASK_DEFAULT_QUEUE = QUEUE
    previous = app.conf.task_default_queue
    app.conf.task_default_queue = QUEUE
    yield QUEUE
    app.conf.task_default_queue = previous
    if _broker_available():
        redis.Redis.from_url(BROKER_URL).delete(
            QUEUE,
            UNACKED_KEY,
            UNACKED_INDEX_KEY,
            f"unacked_mutex-{RUN_ID}",
            f"_kombu.binding.{QUEUE}",  # the queue's exchange, named after it
            f"_kombu.binding_permanent.{QUEUE}",
        )


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.monitoring.celery_settings",
        "ROLLGATE_TEST_CELERY_RUN": RUN_ID,
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": BROKER_URL,
        "PYTHONUNBUFFERED": "1",
    }


def _start_worker(log_path: Path, *, pool: str = "solo", **env: str) -> subprocess.Popen[bytes]:
    """``celery -A config worker`` in its own process group (so the whole group can be killed), logging to a file."""
    log = log_path.open("w")
    try:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                f"--pool={pool}",
                "--concurrency=1",
                "--without-mingle",
                "--without-gossip",
                "--without-heartbeat",
                "--loglevel=INFO",
                f"--queues={QUEUE}",
            ],
            cwd=ROOT,
            env={**_env(), **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    finally:
        log.close()  # the child has its own copy of the descriptor


def _stop_worker(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@pytest.fixture
def worker(tmp_path):
    if not _broker_available():
        pytest.skip(f"no Redis at {BROKER_URL}")
    process = _start_worker(tmp_path / "worker.log")
    yield process
    _stop_worker(process)


class _Receiver(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Receiver.received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver():
    _Receiver.received = []
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/rollgate"
    server.shutdown()
    server.server_close()


def _wait_for(predicate, timeout: float = 45.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    return predicate()


def test_breaching_samples_open_an_incident_pause_the_release_and_call_the_webhook(worker, receiver, tmp_path):
    Guardrail.objects.filter(scope="risk_level").delete()
    author = UserFactory(username="ana.author", groups=["Authors"])
    release = put_live(make_release(author=author, solution=SolutionFactory()))
    make_guardrail(
        release, MetricDefinition.objects.get(key="error_rate"), action=GuardrailAction.PAUSE, severity="sev2"
    )
    NotificationEndpoint.objects.create(name="local receiver", channel="webhook", target=receiver)

    start = (timezone.now().replace(minute=0, second=0, microsecond=0)) - timezone.timedelta(hours=2)
    end = start + timezone.timedelta(hours=1)
    csv_path = tmp_path / "breach.csv"
    csv_path.write_text(
        "release,metric,market,window_start,window_end,numerator,denominator\n"
        f"{release.pk},error_rate,US,{start.isoformat()},{end.isoformat()},250,1000\n",
        encoding="utf-8",
    )
    # The metrics pipeline's path: the CSV command stores the samples and enqueues an evaluation on commit.
    subprocess.run(
        [sys.executable, "manage.py", "ingest_metrics", str(csv_path)],
        cwd=ROOT,
        env=_env(),
        check=True,
        capture_output=True,
        timeout=60,
    )

    incident = _wait_for(lambda: Incident.objects.filter(release=release).first())
    assert incident is not None, (tmp_path / "worker.log").read_text()[-4000:]
    assert incident.status == IncidentStatus.TRIGGERED
    paused = _wait_for(lambda: Release.objects.get(pk=release.pk).status == ReleaseStatus.PAUSED)
    assert paused, (tmp_path / "worker.log").read_text()[-4000:]
    assert _wait_for(lambda: len(_Receiver.received) >= 1), (tmp_path / "worker.log").read_text()[-4000:]
    events = {payload["event"] for payload in _Receiver.received}
    assert "opened" in events
    assert all(payload["incident"]["id"] == incident.pk for payload in _Receiver.received)


# --- a worker killed mid-cycle ----------------------------------------------------------------------------------

VISIBILITY_TIMEOUT = 2  # seconds; the second worker takes back what the killed one never acknowledged
# The per-release lock an evaluation takes (monitoring/services/evaluation.py, _lock_releases): the release's
# EvaluationLock row, created if missing, held until the transaction ends.
TAKE_EVALUATION_LOCK = (
    "INSERT INTO monitoring_evaluationlock (release_id) VALUES (%s) "
    "ON CONFLICT (release_id) DO UPDATE SET release_id = EXCLUDED.release_id"
)


def _ingest_csv(path: Path, rows: list[tuple[int, str, int]]) -> None:
    """The metrics pipeline's path: the CSV command stores the samples and enqueues ``evaluate_releases``."""
    start = timezone.now().replace(minute=0, second=0, microsecond=0) - timezone.timedelta(hours=2)
    end = start + timezone.timedelta(hours=1)
    lines = ["release,metric,market,window_start,window_end,numerator,denominator"]
    lines += [f"{pk},error_rate,{market},{start.isoformat()},{end.isoformat()},{num},1000" for pk, market, num in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    subprocess.run(
        [sys.executable, "manage.py", "ingest_metrics", str(path)],
        cwd=ROOT,
        env=_env(),
        check=True,
        capture_output=True,
        timeout=60,
    )


def _evaluation_blocked_on_lock(observer: psycopg.Connection, holder_pid: int) -> int | None:
    """The backend of a worker that waits for the evaluation lock the test holds: mid-batch, its other releases'
    locks taken."""
    row = observer.execute(
        "SELECT pid FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid)) AND query LIKE %s",
        [holder_pid, "%monitoring_evaluationlock%"],
    ).fetchone()
    return row[0] if row else None


def _backend_alive(observer: psycopg.Connection, pid: int) -> bool:
    return observer.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone() is not None


def _unacked(redis_client) -> dict[str, float]:
    """Messages this run's workers took and have not acknowledged (kombu's Redis ack emulation, under the run's
    own keys), by delivery tag: age."""
    now = time.time()
    return {tag.decode(): now - score for tag, score in redis_client.zrange(UNACKED_INDEX_KEY, 0, -1, withscores=True)}


def test_a_worker_killed_mid_cycle_leaves_nothing_half_done_and_the_redelivered_task_completes_it(tmp_path):
    """SIGKILL a worker while its evaluation batch holds the release locks, then start another worker.

    The batch is made to stop mid-way without touching production code: the test holds the evaluation lock of the
    batch's last release, so the worker locks the others, then waits inside its transaction. The kill loses that
    transaction; the message, never acknowledged (``acks_late``), is redelivered to the fresh worker once the
    visibility timeout has passed, and the redelivered batch writes every evaluation and the incident once.
    """
    import redis

    if not _broker_available():
        pytest.skip(f"no Redis at {BROKER_URL}")
    broker = redis.Redis.from_url(BROKER_URL)
    Guardrail.objects.filter(scope="risk_level").delete()
    author = UserFactory(username="ana.author", groups=["Authors"])
    error_rate = MetricDefinition.objects.get(key="error_rate")
    done, breaching, last = (put_live(make_release(author=author, solution=SolutionFactory())) for _ in range(3))
    assert done.pk < breaching.pk < last.pk  # the batch locks in id order: it will hold `breaching`, wait on `last`
    guardrails = {r.pk: make_guardrail(r, error_rate).pk for r in (done, breaching, last)}
    expected_keys = {(guardrails[r.pk], r.pk, market) for r in (done, breaching, last) for market in ("US", "DE")}

    first_log, second_log = tmp_path / "worker-killed.log", tmp_path / "worker-fresh.log"

    def logs() -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in (first_log, second_log) if p.exists())

    observer, holder = raw_connection(), raw_connection()
    first = _start_worker(first_log, pool="prefork")
    second = None
    try:
        # A batch that completes before the kill: it must not be evaluated again.
        _ingest_csv(tmp_path / "done.csv", [(done.pk, "US", 2), (done.pk, "DE", 2)])
        assert _wait_for(lambda: Evaluation.objects.filter(release=done).count() == 2), logs()
        assert _unacked(broker) == {}, "the completed batch was acknowledged"

        holder_pid = holder.info.backend_pid
        holder.execute("BEGIN")
        holder.execute(TAKE_EVALUATION_LOCK, [last.pk])
        _ingest_csv(
            tmp_path / "breach.csv",
            [(breaching.pk, "US", 300), (breaching.pk, "DE", 2), (last.pk, "US", 2), (last.pk, "DE", 2)],
        )
        orphan = _wait_for(lambda: _evaluation_blocked_on_lock(observer, holder_pid), timeout=30)
        assert orphan, f"the worker never started the batch of {breaching.pk}, {last.pk}\n{logs()}"

        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
        unacked = _unacked(broker)
        assert len(unacked) == 1, f"the killed batch should be left unacknowledged in Redis, found {unacked}"

        # PostgreSQL rolls the dead worker's transaction back once its backend finds the client gone.
        holder.execute("ROLLBACK")
        assert _wait_for(lambda: not _backend_alive(observer, orphan), timeout=15), (
            f"backend {orphan} of the killed worker is still connected"
        )
        assert not Evaluation.objects.filter(release__in=[breaching, last]).exists(), "half a batch was written"
        assert not Incident.objects.exists()

        # Redis hands the message to a worker once it has been unacknowledged for the visibility timeout.
        time.sleep(max(0.0, VISIBILITY_TIMEOUT + 0.5 - max(unacked.values())))
        second = _start_worker(second_log, CELERY_BROKER_VISIBILITY_TIMEOUT=str(VISIBILITY_TIMEOUT))
        assert _wait_for(lambda: Evaluation.objects.filter(release__in=[breaching, last]).count() == 4), (
            f"the killed batch was not redelivered and completed\n{logs()}"
        )
        acknowledged = _wait_for(lambda: _unacked(broker) == {}, timeout=15)
        assert acknowledged, f"the redelivered batch was not acknowledged\n{logs()}"
        assert "evaluate_releases" in second_log.read_text()
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        holder.close()
        observer.close()

    rows = list(Evaluation.objects.values_list("guardrail_id", "release_id", "market", "window_end"))
    assert len(rows) == len(set(rows)) == 6, rows  # one per (guardrail, release, market, window end)
    assert {row[:3] for row in rows} == expected_keys
    incident = Incident.objects.open().get()
    assert (incident.release_id, incident.market, incident.trigger_count) == (breaching.pk, "US", 1)
    assert incident.events.filter(kind=IncidentEventKind.OPENED).count() == 1

    # The next beat cycle (the service the task calls) completes the latest window and adds no duplicate.
    window_end = max(row[3] for row in rows)
    guardrails_evaluate(now=window_end)
    latest = list(Evaluation.objects.filter(window_end=window_end).values_list("guardrail_id", "release_id", "market"))
    assert sorted(latest) == sorted(expected_keys)
    incident.refresh_from_db()
    assert incident.trigger_count == 1 and Incident.objects.count() == 1
