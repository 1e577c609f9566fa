"""Settings of the beat processes ``test_beat_lock.py`` starts: the test settings, with one probe entry due every
quarter second and sent to this run's own queue (nothing consumes it; the test reads the queue)."""

import os

from config.settings.test import *  # noqa: F403

BEAT_LOCK_POLL_SECONDS = 0.2
CELERY_BEAT_SCHEDULE = {
    "beat-lock-probe": {
        "task": "rollgate.tests.beat_probe",  # never registered: beat sends it by name
        "schedule": 0.25,
        "options": {"queue": os.environ["ROLLGATE_TEST_BEAT_QUEUE"]},
    }
}
