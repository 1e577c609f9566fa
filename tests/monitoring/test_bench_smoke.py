"""Every benchmark runs end to end at a tiny scale (``BENCH_SCALE``): its own database, the real services, real
workers on Redis. Figures at scale are ``make bench``'s; these only check every measurement is produced and
recorded (in a temporary results folder, so a tiny run never overwrites a real one)."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from django.db import connection, connections
from psycopg import sql

from tests.live_database import database_url

ROOT = Path(__file__).resolve().parents[2]
BROKER_URL = os.environ.get("MONITORING_TEST_BROKER_URL", "redis://127.0.0.1:6379/5")
EVALUATION_BROKER_URL = os.environ.get("MONITORING_TEST_EVALUATION_BROKER_URL", "redis://127.0.0.1:6379/14")

pytestmark = [pytest.mark.celery_worker, pytest.mark.django_db]


@pytest.fixture(scope="module")
def migrated_template(django_db_setup, django_db_blocker) -> Iterator[str | None]:
    """A copy of the (migrated, otherwise empty) test database for the benchmarks to copy in turn, instead of each
    migrating its own. None when the test database cannot be copied now (another session is on it, e.g. a live
    server thread): the benchmarks then migrate as ``make bench`` does."""
    with django_db_blocker.unblock():
        source = connection.settings_dict["NAME"]
        name = f"{source}_bench_tpl_{uuid.uuid4().hex[:8]}"
        connections.close_all()
        admin_dsn = database_url("postgres")
        try:
            with psycopg.connect(admin_dsn, autocommit=True) as admin:
                admin.execute(
                    sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(source))
                )
        except psycopg.errors.ObjectInUse:
            yield None
            return
        yield name
        with psycopg.connect(admin_dsn, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _needs_redis(url: str) -> None:
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except redis.exceptions.ConnectionError:
        pytest.skip(f"no Redis at {url}")


def _run_bench(
    script: str, tmp_path: Path, scale: str, template: str | None, *args: str, broker: str = BROKER_URL
) -> subprocess.CompletedProcess[str]:
    _needs_redis(broker)
    env = {
        **os.environ,
        "BENCH_SCALE": scale,
        "BENCH_RESULTS_DIR": str(tmp_path),
        "BENCH_REDIS_URL": broker,
        "BENCH_WEB_WORKERS": "2",
        "DATABASE_URL": database_url(),
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
    }
    if template:
        env["BENCH_TEMPLATE_DATABASE"] = template
    run = subprocess.run(
        [sys.executable, script, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return run


def test_bench_verdicts_runs_at_a_tiny_scale(tmp_path, migrated_template):
    run = _run_bench("benchmarks/bench_verdicts.py", tmp_path, "0.01", migrated_template)
    out = run.stdout
    assert re.search(r"A/A vs control.*: \d+/3 releases", out), out
    assert re.search(r"absolute bound at the true rate.*: \d+/3 releases", out), out
    assert re.search(r"power 0\.20 → 0\.26 within 24 h: \d+/1", out), out
    latency = re.search(r"breach → incident, real worker on Redis, 2 trials: median ([0-9.]+) s", out)
    assert latency is not None and float(latency.group(1)) < 30, out  # finite: every breach became an incident
    recorded = json.loads((tmp_path / "latest.json").read_text())
    assert recorded["sections"]["verdicts"]["bench_scale"] == 0.01
    assert 0 <= recorded["aa_false_alarm_rate"] <= 1
    assert recorded["idle_detection_latency_median_s"] == pytest.approx(float(latency.group(1)), abs=0.01)


def test_bench_ingest_runs_at_a_tiny_scale(tmp_path, migrated_template):
    run = _run_bench("benchmarks/bench_ingest.py", tmp_path, "0.001", migrated_template)
    out = run.stdout
    assert re.search(r"HTTP ingest, 4 senders → \d+ gunicorn workers: [0-9.]+ s = [0-9,]+ rows/s", out), out
    assert re.search(r"baseline psycopg COPY, one stream, .*: [0-9,]+ rows/s .*; ratio [0-9.]+ \(target", out), out
    assert re.search(r"breach → incident under ingest load .*, 2 trials: median [0-9.]+ s", out), out
    recorded = json.loads((tmp_path / "latest.json").read_text())
    assert recorded["sections"]["ingest"]["bench_scale"] == 0.001
    assert recorded["ingest_rows"] == 1_000
    assert recorded["ingest_ratio_vs_copy"] > 0 and recorded["ingest_resend_ratio_vs_copy"] > 0
    assert recorded["web_worker_peak_rss_mb"] > 0
    assert math.isfinite(recorded["detection_latency_median_s"])  # every breach became an incident
    assert math.isfinite(recorded["detection_latency_p95_s"])


def test_bench_api_runs_at_a_tiny_scale(tmp_path, migrated_template):
    run = _run_bench("benchmarks/bench_api.py", tmp_path, "0.001", migrated_template)
    assert re.search(r"GET /api/v1/releases/: [0-9,]+ req/s .* 0 errors", run.stdout), run.stdout
    recorded = json.loads((tmp_path / "latest.json").read_text())
    assert recorded["sections"]["api"]["bench_scale"] == 0.001
    assert recorded["api_list_ratio_vs_bare"] > 0
    assert recorded["api_list_errors"] == recorded["api_post_errors"] == recorded["api_bare_errors"] == 0
    # The release list's queries do not grow with the page.
    assert recorded["api_list_queries_50"] <= recorded["api_list_queries_10"]
    # The in-process cost per request, beside the throughput, says how far the ratio could go.
    assert re.search(r"in process \(test client, no HTTP\): bare view [0-9.]+ ms, list [0-9.]+ ms", run.stdout)
    assert recorded["api_list_in_process_ms"] > recorded["api_bare_in_process_ms"] > 0


def test_bench_evaluate_runs_at_a_tiny_scale_with_one_and_two_workers(tmp_path, migrated_template):
    run = _run_bench("benchmarks/bench_evaluate.py", tmp_path, "0.002", migrated_template, broker=EVALUATION_BROKER_URL)
    assert re.search(r"cycle: 20 releases, 360 looks, 2160 samples: [0-9.]+ s in \d+ queries", run.stdout), run.stdout
    assert re.search(r"fan-out to 2 Celery worker\(s\) on Redis: [0-9.]+ s", run.stdout), run.stdout
    recorded = json.loads((tmp_path / "latest.json").read_text())
    assert recorded["sections"]["evaluation"]["bench_scale"] == 0.002
    for key in (
        "evaluation_ratio_vs_sql",
        "evaluation_cycle_s",
        "evaluation_sql_baseline_s",
        "evaluation_speedup_2_workers",
    ):
        assert recorded[key] > 0, key
    assert recorded["evaluation_queries_10k"] >= recorded["evaluation_queries_1k"] > 0


def test_bench_pages_runs_at_a_tiny_scale(tmp_path, migrated_template):
    run = _run_bench("benchmarks/bench_pages.py", tmp_path, "0.002", migrated_template, "--requests", "3")
    assert re.search(r"incident page +[0-9.]+ +[0-9.]+ +\d+ +\d+", run.stdout), run.stdout
    recorded = json.loads((tmp_path / "latest.json").read_text())
    assert recorded["sections"]["pages"]["bench_scale"] == 0.002
    assert recorded["pages_home_oncall_median_ms"] > 0
    pages = [key.removesuffix("_queries_10k") for key in recorded if key.endswith("_queries_10k")]
    assert len(pages) == 10, pages  # five homes, the release list and page, the incident list and page, the API
    for page in pages:
        # Every page is counted (a capture that reads 0 measured nothing), the same at both scales.
        assert recorded[f"{page}_queries_10k"] > 0, page
        assert recorded[f"{page}_queries_10k"] == recorded[f"{page}_queries_1k"], page
    assert recorded["pages_queries_constant"] is True
