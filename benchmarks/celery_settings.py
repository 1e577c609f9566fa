"""Settings of the Celery worker ``bench_verdicts.py`` starts: the test settings plus this run's own queue and
Redis keys for unacknowledged messages (the run id comes from ``ROLLGATE_BENCH_CELERY_RUN``), so a benchmark never
takes another run's tasks, nor a test run's."""

import os

from config.settings.test import *  # noqa: F403
from config.settings.test import CELERY_BROKER_TRANSPORT_OPTIONS

CELERY_BENCH_RUN = os.environ["ROLLGATE_BENCH_CELERY_RUN"]
CELERY_TASK_DEFAULT_QUEUE = f"rollgate-bench-{CELERY_BENCH_RUN}"
CELERY_BROKER_TRANSPORT_OPTIONS = {
    **CELERY_BROKER_TRANSPORT_OPTIONS,
    "unacked_key": f"unacked-bench-{CELERY_BENCH_RUN}",
    "unacked_index_key": f"unacked_index-bench-{CELERY_BENCH_RUN}",
    "unacked_mutex_key": f"unacked_mutex-bench-{CELERY_BENCH_RUN}",
}
