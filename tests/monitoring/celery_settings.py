"""Settings of the real Celery workers (and the ``manage.py`` producers) that ``test_celery_worker.py`` starts.

The test settings, plus this run's own queue and its own Redis keys for unacknowledged messages: two test runs on
one Redis (two worktrees, two CI jobs) never take each other's tasks, and a worker's visibility-timeout sweep only
restores this run's messages. The run id comes from ``ROLLGATE_TEST_CELERY_RUN``, set by the test module.
"""

import os

from config.settings.test import *  # noqa: F403
from config.settings.test import CELERY_BROKER_TRANSPORT_OPTIONS

CELERY_TEST_RUN = os.environ["ROLLGATE_TEST_CELERY_RUN"]
CELERY_TASK_DEFAULT_QUEUE = f"rollgate-test-{CELERY_TEST_RUN}"
CELERY_BROKER_TRANSPORT_OPTIONS = {
    **CELERY_BROKER_TRANSPORT_OPTIONS,
    "unacked_key": f"unacked-{CELERY_TEST_RUN}",
    "unacked_index_key": f"unacked_index-{CELERY_TEST_RUN}",
    "unacked_mutex_key": f"unacked_mutex-{CELERY_TEST_RUN}",
}
