"""The verdict benchmark runs end to end at a tiny scale (``BENCH_SCALE``): its own database, the real services,
a real worker on Redis. Figures at scale are ``make bench``'s; this only checks every measurement is produced."""

from __future__ import annotations

import json
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


def _bench_env(tmp_path: Path) -> dict[str, str]:
    db = connection.settings_dict
    return {
        **os.environ,
        "BENCH_SCALE": "0.002",
        "BENCH_RESULTS_DIR": str(tmp_path),
        "BENCH_REDIS_URL": EVALUATION_BROKER_URL,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
    }


EVALUATION_BROKER_URL = os.environ.get("MONITORING_TEST_EVALUATION_BROKER_URL", "redis://127.0.0.1:6379/14")


def test_bench_evaluate_runs_at_a_tiny_scale_with_one_and_two_workers(tmp_path):
    import redis

    try:
        redis.Redis.from_url(EVALUATION_BROKER_URL, socket_connect_timeout=1).ping()
    except redis.exceptions.ConnectionError:
        pytest.skip(f"no Redis at {EVALUATION_BROKER_URL}")
    run = subprocess.run(
        [sys.executable, "benchmarks/bench_evaluate.py"],
        cwd=ROOT, env=_bench_env(tmp_path), capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
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


def test_bench_pages_runs_at_a_tiny_scale(tmp_path):
    run = subprocess.run(
        [sys.executable, "benchmarks/bench_pages.py", "--requests", "3"],
        cwd=ROOT, env=_bench_env(tmp_path), capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
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
