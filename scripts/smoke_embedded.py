"""Smoke test of the embedded default, as `make run` uses it: a fresh SQLite file and Celery's filesystem transport.

Migrates, loads the demo data, answers real requests, then starts a real worker with embedded beat and checks that
a breaching metric batch posted to the API is evaluated by it and opens an incident.
"""

import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
var_dir = tempfile.mkdtemp(prefix="rollgate-smoke-")
os.environ["ROLLGATE_VAR_DIR"] = var_dir
os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.local"
for name in ("DATABASE_URL", "CELERY_BROKER_URL"):
    os.environ.pop(name, None)

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402
from django.utils import timezone  # noqa: E402

from demo.management.commands.seed_demo import DEMO_PASSWORD  # noqa: E402
from monitoring.models import Incident  # noqa: E402
from releases.choices import ReleaseStatus  # noqa: E402
from releases.models import Release  # noqa: E402

assert settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"), settings.DATABASES["default"]["ENGINE"]
assert settings.CELERY_BROKER_URL == "filesystem://"
call_command("migrate", verbosity=0, interactive=False)
call_command("seed_demo")
call_command("audit_verify")

client = Client()
assert client.login(username="pm", password=DEMO_PASSWORD)
pages = ["/admin/", "/admin/releases/release/", "/api/v1/releases/", "/api/schema/"]
for url in pages:
    response = client.get(url, HTTP_HOST="127.0.0.1")
    assert response.status_code == 200, (url, response.status_code)
print(f"smoke: embedded default migrated, seeded, {len(pages)} pages answered 200")

log_path = Path(var_dir) / "celery.log"
worker = subprocess.Popen(
    [
        str(Path(sys.executable).with_name("celery")),
        "-A",
        "config",
        "worker",
        "-B",
        "--without-mingle",
        "--without-gossip",
        "--without-heartbeat",
        "--pool=solo",
        "--loglevel=INFO",
        f"--logfile={log_path}",
    ],
    cwd=ROOT,
    env=os.environ.copy(),
    stdout=subprocess.DEVNULL,
    start_new_session=True,
)
try:
    release = Release.objects.get(status=ReleaseStatus.ROLLING_OUT)
    oncall = Client()
    assert oncall.login(username="oncall", password=DEMO_PASSWORD)
    start = timezone.now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
    rows = [
        {
            "release": release.pk,
            "metric": "error_rate",
            "market": "US",
            "window_start": start.isoformat(),
            "window_end": (start + timedelta(hours=1)).isoformat(),
            # Heavy enough to push the demo's day of ~1% errors over the medium-risk 3% bound.
            "numerator": 900,
            "denominator": 3000,
        }
    ]
    response = oncall.post("/api/v1/metric-samples/", rows, content_type="application/json", HTTP_HOST="127.0.0.1")
    assert response.status_code == 201, (response.status_code, response.content[:500])
    posted_at = time.monotonic()
    deadline = posted_at + 120
    # The demo already has this canary's escalation incident; the smoke waits for the error-rate one.
    breach = Incident.objects.filter(release=release, guardrail__metric__key="error_rate")
    while not breach.exists():
        if worker.poll() is not None:
            raise SystemExit(f"smoke: the embedded worker exited ({worker.returncode}); see {log_path}")
        if time.monotonic() > deadline:
            raise SystemExit(f"smoke: no incident two minutes after the breaching batch; see {log_path}")
        time.sleep(1)
    incident = breach.get()
    print(
        f"smoke: embedded worker evaluated the batch and opened incident {incident.dedup_key} "
        f"({incident.severity}) {time.monotonic() - posted_at:.1f}s after the POST"
    )
finally:
    os.killpg(worker.pid, signal.SIGTERM)
    try:
        worker.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(worker.pid, signal.SIGKILL)
print(f"smoke: embedded default OK ({settings.DATABASES['default']['NAME']})")
