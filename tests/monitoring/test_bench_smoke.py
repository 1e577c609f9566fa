"""The verdict benchmark runs end to end at a tiny scale (``BENCH_SCALE``): its own database, the real services,
a real worker on Redis. Figures at scale are ``make bench``'s; this only checks every measurement is produced."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]
BROKER_URL = os.environ.get("MONITORING_TEST_BROKER_URL", "redis://127.0.0.1:6379/5")

pytestmark = [pytest.mark.celery_worker, pytest.mark.django_db]


def test_bench_verdicts_runs_at_a_tiny_scale(tmp_path):
    import redis

    try:
        redis.Redis.from_url(BROKER_URL, socket_connect_timeout=1).ping()
    except redis.exceptions.ConnectionError:
        pytest.skip(f"no Redis at {BROKER_URL}")
    db = connection.settings_dict
    env = {
        **os.environ,
        "BENCH_SCALE": "0.01",
        "BENCH_RESULTS_DIR": str(tmp_path),
        "BENCH_REDIS_URL": BROKER_URL,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
    }
    run = subprocess.run(
        [sys.executable, "benchmarks/bench_verdicts.py"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
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


def _run_bench(script: str, tmp_path: Path, scale: str) -> subprocess.CompletedProcess[str]:
    db = connection.settings_dict
    env = {
        **os.environ,
        "BENCH_SCALE": scale,
        "BENCH_RESULTS_DIR": str(tmp_path),
        "BENCH_REDIS_URL": BROKER_URL,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
    }
    return subprocess.run(
        [sys.executable, script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False
    )


def _needs_redis() -> None:
    import redis

    try:
        redis.Redis.from_url(BROKER_URL, socket_connect_timeout=1).ping()
    except redis.exceptions.ConnectionError:
        pytest.skip(f"no Redis at {BROKER_URL}")


def test_bench_ingest_runs_at_a_tiny_scale(tmp_path):
    _needs_redis()
    run = _run_bench("benchmarks/bench_ingest.py", tmp_path, "0.001")
    assert run.returncode == 0, run.stderr[-3000:]
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


def test_bench_api_runs_at_a_tiny_scale(tmp_path):
    _needs_redis()
    run = _run_bench("benchmarks/bench_api.py", tmp_path, "0.001")
    assert run.returncode == 0, run.stderr[-3000:]
    assert re.search(r"GET /api/v1/releases/: [0-9,]+ req/s .* 0 errors", run.stdout), run.stdout
    recorded = json.loads((tmp_path / "latest.json").read_text())
    assert recorded["sections"]["api"]["bench_scale"] == 0.001
    assert recorded["api_list_ratio_vs_bare"] > 0
    assert recorded["api_list_errors"] == recorded["api_post_errors"] == recorded["api_bare_errors"] == 0
    # The release list's queries do not grow with the page.
    assert recorded["api_list_queries_50"] <= recorded["api_list_queries_10"]
